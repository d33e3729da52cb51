"""Cost of the audio denoiser candidates on CPU: parameters and seconds per training step
(forward + backward, batch 32 of 1.024 s log-mel clips, 64 mel x 64 frames), one thread.

    .venv/bin/python benchmarks/audio_architecture.py [PRESET ...]   (default: all but 2D-M, ~1 min a step)
"""

from __future__ import annotations

import platform
import time

import torch

from diffsuite.domains.audio.unet import PRESETS


def step_seconds(name: str, batch: int = 32, repeats: int = 5) -> tuple[int, float]:
    net = PRESETS[name](10, 64)
    x, c = torch.randn(batch, 1, 64, 64), torch.randn(batch)
    cond = {"class": torch.randint(0, 10, (batch,)), "drop": torch.rand(batch) < 0.1}
    net(x, c, cond).square().mean().backward()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        net(x, c, cond).square().mean().backward()
    return sum(p.numel() for p in net.parameters()), (time.perf_counter() - t) / repeats


def main() -> None:
    import sys

    names = sys.argv[1:] or [k for k in PRESETS if k != "2D-M"]
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print("| preset | layout | parameters | s / step (batch 32) |")
    print("|---|---|---|---|")
    for name in names:
        n, s = step_seconds(name)
        print(f"| {name} | {PRESETS[name](10, 64).layout} | {n / 1e6:.2f} M | {s:.3f} |", flush=True)


if __name__ == "__main__":
    main()

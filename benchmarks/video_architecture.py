"""Video: what a training step costs on this CPU for each tubelet patch and width, so the shipped
recipe is sized by measurement (quality per CPU hour starts with steps per CPU hour).

    OMP_NUM_THREADS=1 python benchmarks/video_architecture.py [--steps 6] [--batch 16] [--frames 8] [--no-record]
    OMP_NUM_THREADS=1 python benchmarks/video_architecture.py --quality-cpu-seconds 120 [--only 0,1,4]

For every candidate: parameters, tokens per clip, seconds per training step (forward + backward +
AdamW, frame-conditioned batch from the domain's own collate, EDM loss), in float32 and under CPU
bfloat16 autocast, and the steps a 50-minute run would make. Appends a table under
``## Video architecture`` in benchmarks/RESULTS.md.

``--quality-cpu-seconds S`` instead trains each candidate for S seconds of this process's CPU
time (``time.process_time``, so other jobs on a shared machine do not change the budget) and
reports the held-out prediction loss: the x0 error on the 4 frames after 4 given ones of 64
held-out clips, averaged over the noise levels 0.1, 0.3, 1 and 3 (fixed noise, the same for
every candidate), beside the copy-last-frame error in the same units. Lower at equal CPU time
is more quality per CPU hour, at the very start of training only.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import time

import torch

from diffsuite.core.precond import DenoisingLoss, EDMPrecond
from diffsuite.core.schedules import LogNormalLaw
from diffsuite.domains.video import VideoDomain
from diffsuite.domains.video.transformer import VideoDiT

from _results import machine, record

# (label, patch, dim, depth, heads)
CANDIDATES = [
    ("XS, 2x8x8 (first shipped)", (2, 8, 8), 128, 4, 4),
    ("XS, 2x4x4", (2, 4, 4), 128, 4, 4),
    ("XS, 1x4x4", (1, 4, 4), 128, 4, 4),
    ("M, 2x4x4", (2, 4, 4), 192, 6, 6),
    ("M, 2x8x8", (2, 8, 8), 192, 6, 6),
    ("L, 2x8x8", (2, 8, 8), 256, 8, 8),
]


def step_seconds(net: VideoDiT, batch, steps: int, bf16: bool) -> float:
    den = EDMPrecond(net, 0.5)
    loss_fn = DenoisingLoss(LogNormalLaw(-1.2, 1.2), "edm", 0.5)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    times = []
    for i in range(steps + 1):  # the first step warms up kernels and allocators
        t0 = time.perf_counter()
        with ctx():
            out = loss_fn(den, batch.x, batch.cond, batch.mask, generator=g)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def heldout_prediction_error(net: VideoDiT, domain: VideoDomain, frames: int, clips: int = 64) -> tuple[float, float]:
    """(mean x0 MSE on the frames after frames // 2 given ones, copy-last-frame MSE), model space."""
    den = EDMPrecond(net, 0.5).eval()
    data = domain.dataset("test", frames=frames)
    x = torch.stack([data[i]["video"] for i in range(clips)]) * 2 - 1
    k = frames // 2
    given = torch.zeros(clips, 1, frames, 1, 1)
    given[:, :, :k] = 1
    cond = {"class": torch.full((clips,), -1), "frames": x * given, "given": given}
    g = torch.Generator().manual_seed(123)
    errs = []
    for sigma in (0.1, 0.3, 1.0, 3.0):
        eps = torch.randn(x.shape, generator=g)
        d = den(x + sigma * eps, torch.full((clips,), sigma), cond)
        errs.append((d - x)[:, :, k:].pow(2).mean().item())
    copy = (x[:, :, k - 1:k] - x[:, :, k:]).pow(2).mean().item()
    net.train()
    return sum(errs) / len(errs), copy


def train_for(net: VideoDiT, domain: VideoDomain, cpu_seconds: float, batch: int, lr: float = 2e-3) -> int:
    """AdamW steps on fresh frame-conditioned batches until `cpu_seconds` of process CPU time are spent."""
    den = EDMPrecond(net, 0.5)
    loss_fn = DenoisingLoss(LogNormalLaw(-1.2, 1.2), "edm", 0.5)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.99))
    data = domain.dataset("train")
    g = torch.Generator().manual_seed(0)
    t0, step = time.process_time(), 0
    while time.process_time() - t0 < cpu_seconds:
        b = domain.collate([data[(step * batch + i) % len(data)] for i in range(batch)])
        for group in opt.param_groups:  # short linear warm-up, then constant
            group["lr"] = lr * min(1.0, (step + 1) / 50)
        out = loss_fn(den, b.x, b.cond, b.mask, generator=g)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
    return step


def quality(a, domain: VideoDomain) -> str:
    rows = []
    pick = [int(i) for i in a.only.split(",")] if a.only else range(len(CANDIDATES))
    for i in pick:
        label, patch, dim, depth, heads = CANDIDATES[i]
        torch.manual_seed(0)
        net = VideoDiT(channels=1, patch=patch, dim=dim, depth=depth, heads=heads, num_classes=10, context=True)
        steps = train_for(net, domain, a.quality_cpu_seconds, a.batch)
        err, copy = heldout_prediction_error(net, domain, a.frames)
        rows.append(f"| {label} | {dim} x {depth} | {steps} | {err:.4f} | {copy:.4f} |")
        print(rows[-1], flush=True)
    return (f"### {datetime.date.today().isoformat()}: held-out prediction error after {a.quality_cpu_seconds:g} s of "
            f"CPU time per candidate, batch {a.batch} of {a.frames}x32x32\n\nmachine: {machine()}\n\n"
            "| model | width x depth | steps | x0 MSE, frames after 4 given (4 noise levels) | copy-last-frame MSE |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--minutes", type=float, default=50.0, help="run length the steps column is sized for")
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--quality-cpu-seconds", type=float, default=0.0)
    p.add_argument("--only", default="", help="comma-separated candidate indices")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    load = os.getloadavg()[0]
    domain = VideoDomain(frames=a.frames, pretrained=None)
    if a.quality_cpu_seconds > 0:
        table = quality(a, domain)
        print(table)
        if not a.no_record:
            record("## Video architecture", table)
        return
    data = domain.dataset("train")
    batch = domain.collate([data[i] for i in range(a.batch)])
    rows = []
    pick = [int(i) for i in a.only.split(",")] if a.only else range(len(CANDIDATES))
    for label, patch, dim, depth, heads in (CANDIDATES[i] for i in pick):
        torch.manual_seed(0)
        net = VideoDiT(channels=1, patch=patch, dim=dim, depth=depth, heads=heads, num_classes=10, context=True)
        params = sum(p.numel() for p in net.parameters())
        tokens = (a.frames // patch[0]) * (32 // patch[1]) * (32 // patch[2])
        f32 = step_seconds(net, batch, a.steps, bf16=False)
        b16 = float("nan") if a.no_bf16 else step_seconds(net, batch, a.steps, bf16=True)
        best = min(f32, b16) if b16 == b16 else f32
        rows.append(f"| {label} | {dim} x {depth} | {params / 1e6:.2f} M | {tokens} | {f32:.3f} | {b16:.3f} | "
                    f"{a.minutes * 60 / best:,.0f} |")
        print(rows[-1], flush=True)
    head = (f"### {datetime.date.today().isoformat()}: training step cost by patch and width, batch {a.batch} of "
            f"{a.frames}x32x32 frame-conditioned clips\n\nmachine: {machine()} (at the end), load average "
            f"{load:.1f} at start; median of {a.steps} steps after one warm-up\n\n"
            "| model | width x depth | parameters | tokens / clip | s / step fp32 | s / step bf16 autocast | "
            f"steps in {a.minutes:g} min (faster of the two) |\n|---|---|---|---|---|---|---|\n")
    table = head + "\n".join(rows) + "\n"
    print(table)
    if not a.no_record:
        record("## Video architecture", table)


if __name__ == "__main__":
    main()

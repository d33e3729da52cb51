"""Video: sampling time per clip on this machine, and the quality figures of the shipped
checkpoint (prediction PSNR/SSIM beside the copy-last-frame baseline; classifier accuracy and
classifier Frechet distance of class-conditioned samples beside held-out real clips).

    python benchmarks/video_sampling.py [--checkpoint PATH] [--n 8] [--steps 24] [--no-record]

Appends a table under ``## Video`` in benchmarks/RESULTS.md, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path

import torch

from diffsuite.core.generate import generate
from diffsuite.core.training.export import build_from_export
from diffsuite.domains.video.domain import DEFAULT_WEIGHTS

from _results import RESULTS, machine, record


def timed_generate(domain, denoiser, n, **kw):
    t0 = time.perf_counter()
    samples, _ = generate(domain, denoiser, n, **kw)
    return samples, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--sampler", default="heun")
    p.add_argument("--given", type=int, default=4, help="first frames given for the prediction figures")
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=None, help="clip length (default: the checkpoint's)")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    load = os.getloadavg()[0]
    domain, denoiser, config = build_from_export(a.checkpoint, "cpu", expect_domain="video")
    T, H, W = a.frames or domain.frames, *domain.size
    kw = dict(sampler=a.sampler, steps=a.steps, batch_size=a.n, frames=T)
    generate(domain, denoiser, 1, sampler="euler", steps=2, frames=T, given=1)  # warm-up: data, kernels
    with tempfile.TemporaryDirectory() as tmp:
        pred_dir, gen_dir = Path(tmp) / "prediction", Path(tmp) / "generation"
        pred, t_pred = timed_generate(domain, denoiser, a.n, given=a.given, **kw)
        domain.write(pred, pred_dir)
        pred_fig = domain.evaluate(pred_dir)
        classes = [i % 10 for i in range(a.n)]
        gen, t_gen = timed_generate(domain, denoiser, a.n, guidance=a.guidance, **kw, **{"class": classes})
        domain.write(gen, gen_dir)
        gen_fig = domain.evaluate(gen_dir)
    net_evals = (2 * a.steps - 1) if a.sampler == "heun" else a.steps
    rows = [
        ("sampling time per clip, unguided (prediction)", f"{t_pred / a.n:.2f} s"),
        (f"sampling time per clip, CFG {a.guidance} (2 passes)", f"{t_gen / a.n:.2f} s"),
        (f"prediction PSNR (given {a.given} of {T} frames)", f"{pred_fig['prediction_psnr']:.2f} dB"),
        ("copy-last-frame PSNR (baseline)", f"{pred_fig['copy_last_frame_psnr']:.2f} dB"),
        ("prediction SSIM / copy-last-frame SSIM", f"{pred_fig['prediction_ssim']:.3f} / {pred_fig['copy_last_frame_ssim']:.3f}"),
        ("classifier accuracy, conditioned samples", f"{gen_fig.get('classifier_accuracy_conditioned', float('nan')):.3f}"),
        ("classifier accuracy, held-out real clips", f"{gen_fig.get('classifier_accuracy_real_heldout', float('nan')):.3f}"),
        (f"classifier Frechet distance, {a.n} samples vs held-out", f"{gen_fig.get('classifier_frechet_distance', float('nan')):.3g}"),
        (f"classifier Frechet distance, {a.n} real held-out clips (reference)",
         f"{gen_fig.get('classifier_frechet_distance_real_heldout', float('nan')):.3g}"),
    ]
    head = (f"### {datetime.date.today().isoformat()}: {a.checkpoint.name} (step {config.get('step')}, preset "
            f"{domain.preset}, patch {domain.patch}), {a.n} clips of {T}x{H}x{W}, {a.sampler} {a.steps} steps "
            f"({net_evals} network evaluations)\n\nmachine: {machine()}, load average {load:.1f} at start\n\n| figure | value |\n|---|---|\n")
    note = (f"\nThe classifier Frechet distance of {a.n} clips is dominated by small-sample bias (rank-deficient "
            "covariances); compare it only with the real reference of the same size. GPU targets (90% recognition, "
            "MFU with bf16 / compile / flash SDPA) not measured: no GPU was lent to this task.\n")
    table = head + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n" + note
    print(table)
    if not a.no_record:
        record("## Video", table)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()

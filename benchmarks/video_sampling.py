"""Video: the issue-14 targets for a checkpoint, on this machine.

* class-conditioned samples (``--n``, cycling through the classes, CFG ``--guidance``): the
  project classifier's accuracy, beside its accuracy on real held-out clips; the classifier
  Frechet distance and KID (unbiased at any count, with its standard error) against held-out
  clips, beside the same figures for as many other real held-out clips;
* prediction from ``--given`` frames of ``--n-pred`` held-out clips: PSNR and SSIM of the
  generated frames beside the copy-last-frame baseline, and of the point prediction (one
  evaluation from pure noise: the denoiser's posterior mean, which PSNR favours over any sharp
  sample that is slightly off);
* optionally (``--rollout-frames``) an autoregressive rollout past the training length;
* throughput: training steps per second of the checkpoint's network (batch ``--train-batch``,
  float32 and CPU bfloat16 autocast) and sampling seconds per clip.

    python benchmarks/video_sampling.py [--checkpoint PATH] [--n 200] [--n-pred 200] [--steps 24] [--no-record]
    python benchmarks/video_sampling.py --n 20 --n-pred 20 --no-record      # a quick check

Appends a table under ``## Video`` in benchmarks/RESULTS.md, with the machine and the date.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from diffsuite.core.consistency import consistency_sigmas
from diffsuite.core.generate import generate
from diffsuite.core.precond import DenoisingLoss
from diffsuite.core.schedules import LogNormalLaw
from diffsuite.core.training.export import build_from_export
from diffsuite.domains.video.domain import DEFAULT_WEIGHTS

from _results import RESULTS, machine, record


def timed_generate(domain, denoiser, n, **kw):
    t0 = time.perf_counter()
    samples, _ = generate(domain, denoiser, n, **kw)
    return samples, time.perf_counter() - t0


def train_step_seconds(domain, denoiser, batch_size: int, steps: int, bf16: bool) -> float:
    """Median seconds of one training step (forward, backward, AdamW) of a copy of the network."""
    import copy

    den = copy.deepcopy(denoiser).train()
    loss_fn = DenoisingLoss(LogNormalLaw(-1.2, 1.2), "edm", domain.sigma_data)
    opt = torch.optim.AdamW(den.parameters(), lr=1e-5)
    data = domain.dataset("train")
    g = torch.Generator().manual_seed(0)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        b = domain.collate([data[i * batch_size + j] for j in range(batch_size)])
        with ctx():
            out = loss_fn(den, b.x, b.cond, b.mask, generator=g)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def fmt(fig: dict, key: str, spec: str = ".3f") -> str:
    v = fig.get(key, float("nan"))
    return format(v, spec) if isinstance(v, float) and math.isfinite(v) else "n/a"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--n", type=int, default=200, help="class-conditioned samples (>= 128 for a Frechet figure)")
    p.add_argument("--n-pred", type=int, default=200, help="held-out clips for the prediction figures")
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--sampler", default="heun")
    p.add_argument("--batch", type=int, default=50, help="clips per sampling batch")
    p.add_argument("--given", type=int, default=4, help="first frames given for the prediction figures")
    p.add_argument("--guidance", type=float, default=None, help="default: diffsuite sample's for video (default_guidance)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=None, help="clip length (default: the checkpoint's)")
    p.add_argument("--rollout-frames", type=int, default=0, help="also predict this many frames by rollout")
    p.add_argument("--n-rollout", type=int, default=50)
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--train-steps", type=int, default=5, help="timed training steps (0: skip)")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.guidance is None:
        from diffsuite.core.api import compose_config

        a.guidance = float(compose_config("sample", ["domain=video"]).guidance)
    load = os.getloadavg()[0]
    domain, denoiser, config = build_from_export(a.checkpoint, "cpu", expect_domain="video")
    T, H, W = a.frames or domain.frames, *domain.size
    grid = consistency_sigmas if a.sampler == "consistency" else None  # a consistency model's own grid
    kw = dict(sampler=a.sampler, steps=a.steps, batch_size=a.batch, frames=T, grid=grid)
    generate(domain, denoiser, 1, sampler="euler", steps=2, frames=T, given=1)  # warm-up: data, kernels
    domain.eval_clips = max(domain.eval_clips, a.n_pred, a.n, a.n_rollout)  # enough held-out clips
    domain._datasets.clear()
    with tempfile.TemporaryDirectory() as tmp:
        pred_dir, gen_dir, roll_dir = Path(tmp) / "prediction", Path(tmp) / "generation", Path(tmp) / "rollout"
        pred, t_pred = timed_generate(domain, denoiser, a.n_pred, given=a.given, **kw)
        domain.write(pred, pred_dir)
        pred_fig = domain.evaluate(pred_dir)
        # the point prediction: one evaluation from pure noise returns the denoiser's posterior mean
        # E[future | given frames] (the MSE-optimal prediction, blurred where the future is uncertain)
        point, _ = timed_generate(domain, denoiser, a.n_pred, given=a.given, **{**kw, "sampler": "euler", "steps": 1, "grid": None})
        domain.write(point, Path(tmp) / "point")
        point_fig = domain.evaluate(Path(tmp) / "point")
        classes = [i % domain.num_classes() for i in range(a.n)]
        gen, t_gen = timed_generate(domain, denoiser, a.n, guidance=a.guidance, **kw, **{"class": classes})
        domain.write(gen, gen_dir)
        gen_fig = domain.evaluate(gen_dir, reference_clips=max(256, a.n))
        roll_fig = {}
        if a.rollout_frames:
            roll, _ = timed_generate(domain, denoiser, a.n_rollout, given=a.given,
                                     **{**kw, "frames": a.rollout_frames})
            domain.write(roll, roll_dir)
            roll_fig = domain.evaluate(roll_dir)
    f32 = b16 = float("nan")
    if a.train_steps:
        f32 = train_step_seconds(domain, denoiser, a.train_batch, a.train_steps, bf16=False)
        b16 = train_step_seconds(domain, denoiser, a.train_batch, a.train_steps, bf16=True)
    net_evals = (2 * a.steps - 1) if a.sampler == "heun" else a.steps
    gain = pred_fig.get("prediction_psnr", float("nan")) - pred_fig.get("copy_last_frame_psnr", float("nan"))
    rows = [
        (f"prediction PSNR, {fmt(pred_fig, 'prediction_samples', '.0f')} held-out clips (given {a.given} of {T} frames)",
         f"{fmt(pred_fig, 'prediction_psnr', '.2f')} dB"),
        ("copy-last-frame PSNR (baseline)", f"{fmt(pred_fig, 'copy_last_frame_psnr', '.2f')} dB"),
        ("prediction PSNR - copy-last-frame PSNR (target >= 1 dB)", f"{gain:+.2f} dB"),
        ("prediction SSIM / copy-last-frame SSIM",
         f"{fmt(pred_fig, 'prediction_ssim')} / {fmt(pred_fig, 'copy_last_frame_ssim')}"),
        ("point prediction (posterior mean, 1 evaluation): PSNR, SSIM",
         f"{fmt(point_fig, 'prediction_psnr', '.2f')} dB, {fmt(point_fig, 'prediction_ssim')}"),
        (f"classifier accuracy, {a.n} class-conditioned samples, CFG {a.guidance} (target >= 0.90)",
         fmt(gen_fig, "classifier_accuracy_conditioned")),
        ("classifier accuracy, held-out real clips", fmt(gen_fig, "classifier_accuracy_real_heldout")),
        (f"classifier KID, {a.n} samples vs held-out (+- s.e.)",
         f"{fmt(gen_fig, 'classifier_kid', '.4f')} +- {fmt(gen_fig, 'classifier_kid_std', '.4f')}"),
        (f"classifier KID, {a.n} real held-out clips (reference)",
         f"{fmt(gen_fig, 'classifier_kid_real_heldout', '.4f')} +- {fmt(gen_fig, 'classifier_kid_std_real_heldout', '.4f')}"),
        (f"classifier Frechet distance, {a.n} samples vs held-out", fmt(gen_fig, "classifier_frechet_distance", ".3g")),
        (f"classifier Frechet distance, {a.n} real held-out clips (reference)",
         fmt(gen_fig, "classifier_frechet_distance_real_heldout", ".3g")),
    ]
    if roll_fig:
        rows += [(f"rollout to {a.rollout_frames} frames from {a.given} given, {a.n_rollout} clips: PSNR / copy-last",
                  f"{fmt(roll_fig, 'prediction_psnr', '.2f')} / {fmt(roll_fig, 'copy_last_frame_psnr', '.2f')} dB"),
                 ("rollout SSIM / copy-last-frame SSIM",
                  f"{fmt(roll_fig, 'prediction_ssim')} / {fmt(roll_fig, 'copy_last_frame_ssim')}")]
    rows += [
        ("sampling time per clip, prediction (1 pass per step)", f"{t_pred / a.n_pred:.2f} s"),
        (f"sampling time per clip, CFG {a.guidance} (2 passes per step)", f"{t_gen / a.n:.2f} s"),
        (f"training, batch {a.train_batch}: s / step fp32, bf16 autocast",
         f"{f32:.3f}, {b16:.3f} ({a.train_batch / min(f32, b16):.1f} clips/s at the faster)" if a.train_steps else "n/a"),
    ]
    params = sum(p.numel() for p in denoiser.parameters())
    head = (f"### {datetime.date.today().isoformat()}: {a.checkpoint.name} (step {config.get('step')}, preset "
            f"{domain.preset}, patch {domain.patch}, {params / 1e6:.2f} M parameters, context "
            f"{getattr(domain, 'context', False)}), clips of {T}x{H}x{W}, {a.sampler} {a.steps} steps "
            f"({net_evals} network evaluations)\n\nmachine: {machine()}, load average {load:.1f} at start\n\n"
            "`python benchmarks/video_sampling.py " + " ".join(sys.argv[1:]) + "`\n\n| figure | value |\n|---|---|\n")
    table = head + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"
    print(table)
    if not a.no_record:
        record("## Video", table)
        print(f"recorded in {RESULTS}")


if __name__ == "__main__":
    main()

"""Periodic evaluation during training: every ``trainer.eval_every`` steps (and at the last step)
draw a small seeded batch from the EMA weights with the run's sampler, write it through the
domain's ``write`` into ``<run_dir>/evals/step_<N>/``, score that folder with the domain's
``evaluate``, and log every figure beside the loss: ``evals.csv`` and TensorBoard scalars
(``eval/<figure>``), the written files as TensorBoard media (``samples/<file>``), and one summary
line in the log (step, loss, main metric).

Domain-agnostic by construction: the only things used are ``write`` and ``evaluate`` (the same
calls as ``diffsuite sample`` followed by ``diffsuite evaluate``), and media are chosen by file
extension. An evaluation that fails is reported as a warning and the run goes on. It runs in the
calling process only; under DDP/FSDP the trainer calls it on rank 0 while the others wait.

Every evaluation uses the same seed, so successive figures compare the same noise, and it runs
under its own random state: a run with evaluations trains exactly as one without.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .curves import is_bookkeeping, is_reference

log = logging.getLogger("diffsuite.train")

EVALS_DIR = "evals"
# columns every evaluation row carries before the domain's figures
EVAL_COLUMNS = ["step", "wall_s", "loss", "eval_s", "nfe", "n"]


@dataclass
class Evaluation:
    step: int
    figures: dict[str, float]  # the domain's evaluate(), as floats
    files: list[Path]  # what domain.write wrote
    out_dir: Path
    eval_s: float  # wall seconds for sampling, writing and scoring
    nfe: int  # network evaluations per sample
    n: int  # samples drawn
    row: dict[str, Any] = field(default_factory=dict)  # the evals.csv row (filled by the logger)


class _CountCalls:
    """A forward pre-hook counting the denoiser's calls (network evaluations)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, module, args):
        self.calls += 1


def evaluate_now(domain: Any, make_denoiser: Callable[[nn.Module], nn.Module], weights: dict[str, torch.Tensor],
                 out_dir: Path, *, step: int, n: int, steps: int, sampler: str, seed: int,
                 device: torch.device | str, grid=None, sampler_options: dict | None = None,
                 options: dict | None = None, evaluate_options: dict | None = None) -> Evaluation:
    """Sample `n` examples from `weights` (one batch, seed `seed`), write them to `out_dir` and
    score them with ``domain.evaluate(out_dir)``. Raises on any failure; `PeriodicEval` reports it."""
    from ..generate import generate

    device = torch.device(device)
    t0 = time.perf_counter()
    fork = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork):  # building the network draws from the global RNG
        denoiser: nn.Module = make_denoiser(domain.network())
        denoiser.load_state_dict(weights)
        denoiser.to(device).eval()
        counter = _CountCalls()
        hook = denoiser.register_forward_pre_hook(counter)
        try:
            with torch.no_grad():
                samples, _ = generate(domain, denoiser, n, sampler=sampler, steps=steps, grid=grid, seed=seed,
                                      sampler_options=sampler_options, device=str(device), batch_size=n,
                                      **(options or {}))
        finally:
            hook.remove()
        del denoiser
        files = list(domain.write(samples, out_dir))
        raw = domain.evaluate(out_dir, **(evaluate_options or {}))
    figures = _as_floats(raw, out_dir)
    with open(out_dir / "figures.json", "x") as f:
        json.dump({"step": step, "nfe": counter.calls, **figures}, f, indent=2)
    return Evaluation(step=step, figures=figures, files=files, out_dir=out_dir, eval_s=time.perf_counter() - t0,
                      nfe=counter.calls, n=n)


def _as_floats(raw: Any, where: Path) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise TypeError(f"domain.evaluate({where}) returned {type(raw).__name__}, not a dict of figures")
    out: dict[str, float] = {}
    for k, v in raw.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            log.warning("evaluation at %s: figure %r is not a number (%r); not logged", where, k, v)
    bad = [k for k, v in out.items() if not math.isfinite(v)]
    if bad:
        log.warning("evaluation at %s: non-finite figure(s) %s (logged as they are)", where,
                    ", ".join(f"{k}={out[k]}" for k in bad))
    return out


def main_metric(figures: dict[str, float], domain: Any = None, preferred: str | None = None) -> str | None:
    """The figure a summary line shows: `preferred` (trainer.eval_metric), else the domain's
    ``main_metric`` attribute, else the first figure that is not bookkeeping or a reference."""
    for name in (preferred, getattr(domain, "main_metric", None)):
        if name and name in figures:
            return name
    for k in figures:
        if not is_bookkeeping(k) and not is_reference(k):
            return k
    return None


def free_eval_dir(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name.2``, ``.3``... when a resumed run evaluates a step again
    (``domain.write`` never overwrites, and earlier files are kept)."""
    path, k = root / name, 1
    while path.exists():
        k += 1
        path = root / f"{name}.{k}"
    return path


# --- TensorBoard media ---------------------------------------------------------------------

IMAGE_EXT = {".png", ".jpg", ".jpeg"}
AUDIO_EXT = {".wav", ".flac", ".ogg"}
ANIMATION_EXT = {".gif"}


def media_files(files: list[Path], limit: int) -> list[Path]:
    """The first `limit` written files of each media kind (audio, image, animation), by name."""
    chosen: list[Path] = []
    for kind in (AUDIO_EXT, IMAGE_EXT, ANIMATION_EXT):
        chosen += sorted((f for f in files if f.suffix.lower() in kind), key=lambda f: f.name)[:limit]
    return chosen


def add_media(tb: Any, files: list[Path], step: int, *, limit: int, prefix: str = "samples") -> list[str]:
    """Log sample files as TensorBoard media: audio as audio, PNG/JPEG (spectrograms, frame
    grids, molecule grids, the toy's scatter plot) as images, GIF as an animated image (what
    TensorBoard's add_video writes, without moviepy; MP4 is skipped, its GIF twin is shown).
    Returns the tags written; a file that cannot be read is reported and skipped."""
    tags = []
    for f in media_files(files, limit):
        tag = f"{prefix}/{f.name}"
        try:
            ext = f.suffix.lower()
            if ext in AUDIO_EXT:
                import soundfile as sf

                wave, sr = sf.read(str(f), dtype="float32", always_2d=True)  # (L, C)
                mono = np.clip(wave.mean(axis=1), -1.0, 1.0)
                tb.add_audio(tag, torch.from_numpy(mono)[None], step, sample_rate=int(sr))
            elif ext in IMAGE_EXT:
                from PIL import Image

                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
                tb.add_image(tag, arr, step, dataformats="HWC")
            elif ext in ANIMATION_EXT:
                _add_gif(tb, tag, f, step)
            else:
                continue
            tags.append(tag)
        except Exception as e:  # noqa: BLE001 -- a media file never stops logging
            log.warning("TensorBoard media %s skipped: %s: %s", f, type(e).__name__, e)
    return tags


def _add_gif(tb: Any, tag: str, path: Path, step: int) -> None:
    from PIL import Image
    from tensorboard.compat.proto.summary_pb2 import Summary

    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=data)
    tb._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)


# --- the trainer's side ----------------------------------------------------------------------


@dataclass
class EvalSettings:
    every: int  # 0: never
    n: int
    steps: int
    sampler: str
    seed: int
    grid: Any = None
    sampler_options: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # sample options (configs/domain: sample_options)
    evaluate_options: dict = field(default_factory=dict)
    metric: str | None = None  # the summary's main metric; None: chosen by main_metric()
    media: int = 4  # media files of each kind per evaluation in TensorBoard (0: none)


class PeriodicEval:
    """Decides when to evaluate, runs `evaluate_now`, and logs the result through a RunLog;
    never raises out of `__call__`."""

    def __init__(self, domain: Any, make_denoiser: Callable, run_dir: Path, settings: EvalSettings, *,
                 total_steps: int, device: torch.device | str):
        self.domain, self.make_denoiser, self.run_dir = domain, make_denoiser, Path(run_dir)
        self.settings, self.total_steps, self.device = settings, total_steps, device
        self.failures = 0

    def due(self, step: int) -> bool:
        every = self.settings.every
        return bool(every) and step > 0 and (step % every == 0 or step == self.total_steps)

    def __call__(self, step: int, weights: dict[str, torch.Tensor], runlog: Any = None) -> Evaluation | None:
        s = self.settings
        from .checkpoint import checkpoint_name

        out_dir = free_eval_dir(self.run_dir / EVALS_DIR, checkpoint_name(step))
        try:
            ev = evaluate_now(self.domain, self.make_denoiser, weights, out_dir, step=step, n=s.n, steps=s.steps,
                              sampler=s.sampler, seed=s.seed, device=self.device, grid=s.grid,
                              sampler_options=s.sampler_options, options=s.options,
                              evaluate_options=s.evaluate_options)
        except Exception as e:  # noqa: BLE001 -- an evaluation never ends a run
            self.failures += 1
            log.warning("evaluation at step %d failed (%s: %s); training continues. Files so far: %s", step,
                        type(e).__name__, str(e).splitlines()[0] if str(e) else "", out_dir)
            return None
        loss = None
        if runlog is not None:
            try:
                loss = runlog.evaluation(ev, media=s.media)
            except Exception as e:  # noqa: BLE001
                log.warning("logging the evaluation at step %d failed: %s: %s", step, type(e).__name__, e)
        log.info(summary_line(ev, loss, self.total_steps, main_metric(ev.figures, self.domain, s.metric)))
        return ev


def make_periodic_eval(domain: Any, make_denoiser: Callable, run_dir: Path, opts: Any, *, sample_settings: dict,
                       evaluate_options: dict, seed: int, device: torch.device | str) -> PeriodicEval | None:
    """The trainer's evaluator from its options (``trainer.eval_*``), or None when
    ``trainer.eval_every`` is 0. `sample_settings` are the run's sampler, grid, sampler options and
    sample options (as previews use them); `evaluate_options` the domain config's
    ``evaluate_options``, under ``trainer.eval_options``."""
    if not opts.eval_every:
        return None
    settings = EvalSettings(every=opts.eval_every, n=opts.eval_n, steps=opts.eval_steps, seed=seed,
                            sampler=sample_settings["sampler"], grid=sample_settings.get("grid"),
                            sampler_options=dict(sample_settings.get("sampler_options") or {}),
                            options=dict(sample_settings.get("options") or {}),
                            evaluate_options={**evaluate_options, **(opts.eval_options or {})},
                            metric=opts.eval_metric, media=opts.eval_media)
    return PeriodicEval(domain, make_denoiser, run_dir, settings, total_steps=opts.steps, device=device)


def summary_line(ev: Evaluation, loss: float | None, total_steps: int, metric: str | None) -> str:
    """``eval step 200/1000 | loss 0.0812 | fd 12.3 | 16 samples, 63 NFE, 4.1 s | runs/.../evals/step_00000200``"""
    parts = [f"eval step {ev.step}/{total_steps}", f"loss {loss:.4g}" if loss is not None else "loss -"]
    if metric is not None:
        parts.append(f"{metric} {ev.figures[metric]:.4g}")
    parts.append(f"{ev.n} samples, {ev.nfe} NFE, {ev.eval_s:.1f} s")
    parts.append(str(ev.out_dir))
    return " | ".join(parts)

"""The video domain: spatio-temporal patch diffusion on clips (B, C, T, H, W).

Model space: pixels in [0, 1] mapped to [-1, 1]. Class conditioning through ``cond["class"]``
(classifier-free guidance through ``cond["drop"]``).

Frame conditioning (``context=True``, the default; MCVD-style, Voleti et al. 2022): ``collate``
gives each training clip a random set of clean frames (none, the first k, the first and last
few, or a random subset), handed to the network in ``cond["frames"]`` with the marker
``cond["given"]``, and sets ``Batch.mask`` to 0 on them so they never count in the loss. One
model so generates, predicts and interpolates. Sampling with ``given=4`` (the first 4 frames) or
``given=[0, 7]`` (any frames), taken from held-out clips or a video file (``given_from=clip.mp4``),
feeds the given frames exactly as in training, and the core's known-region wrapper keeps them
exact in the output; the true frames are kept beside each sample for ``evaluate``. ``frames=``
longer than the training clips rolls out autoregressively (``sample_loop``): window after window
of the training length, each conditioned on the last frames already made. With
``context=False`` (the first shipped checkpoint) given frames go through known-region
replacement only.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from diffsuite.core.domain import Batch, ConfigFromInit, gaussian_noise_fn
from diffsuite.core.errors import UserError
from diffsuite.core.noise import check_finite
from diffsuite.core.options import check_known, parse_classes, whole
from diffsuite.core.pretrained import shipped_weights

from .moving_digits import DIGIT_SOURCES, NUM_CLASSES, MovingDigits
from .transformer import PRESETS
from .video_files import VideoFolder, clip_from_file
from .writing import VideoSample, read_sample, write_sample

log = logging.getLogger(__name__)

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_WEIGHTS = PRETRAINED_DIR / "video_moving_digits.safetensors"
DEFAULT_CLASSIFIER = PRETRAINED_DIR / "classifier_moving_digits.safetensors"


def context_frames(n: int, frames: int, rng: np.random.Generator, p: float = 0.65) -> np.ndarray:
    """Random given-frame patterns (n, frames) of 0/1 for frame-conditioned training, never all given.

    With probability 1 - p none (generation); otherwise, as in MCVD's random past/future masking:
    the first k frames (half the time k = frames // 2, the usual prediction task, else any k from 1
    to frames - 1), 60% of conditioned clips; the first a and the last b (interpolation), 20%; or an
    independent half of the frames, 20%.
    """
    out = np.zeros((n, frames), dtype=np.float32)
    if frames < 2:
        return out
    for i in range(n):
        if rng.random() >= p:
            continue
        u = rng.random()
        if u < 0.6:
            k = frames // 2 if rng.random() < 0.5 else int(rng.integers(1, frames))
            out[i, :k] = 1
        elif u < 0.8 and frames >= 3:
            a = int(rng.integers(1, frames - 1))
            b = int(rng.integers(1, frames - a))
            out[i, :a] = 1
            out[i, frames - b:] = 1
        else:
            out[i] = rng.random(frames) < 0.5
            if out[i].all():
                out[i, rng.integers(frames)] = 0
    return out


def _index_list(value: Any, name: str) -> list[int]:
    """3 -> [3]; "0,2" / [0, 2] / (0, 2) -> [0, 2]."""
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, (int, np.integer)):
        return [int(value)]
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError) as e:
        raise UserError(f"{name}={value!r} is not an integer or a list of integers") from e


class VideoDomain(ConfigFromInit):
    name = "video"

    def __init__(self, *, sigma_data: float = 0.5, preset: str = "XS", data: str = "moving_digits",
                 frames: int = 16, size: int | list[int] = 32, channels: int = 1, patch: list[int] = (2, 4, 4),
                 attention: str = "factorised", stride: int = 8, labels: str | None = None,
                 classes: list[str] | None = None, train_clips: int = 100000, eval_clips: int = 256, seed: int = 0,
                 fps: int = 8, cache_dir: str | None = None, classifier: str | None = None,
                 pretrained: str | None = "auto", digits: str = "mnist", context: bool = True,
                 context_p: float = 0.65, rollout_context: int | None = None):
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        if digits not in DIGIT_SOURCES:
            raise UserError(f"unknown digits={digits!r}; expected one of {DIGIT_SOURCES}")
        if not 0 <= float(context_p) <= 1:
            raise UserError(f"context_p={context_p} is a probability; expected a value in [0, 1]")
        self.digits, self.context, self.context_p = str(digits), bool(context), float(context_p)
        self.rollout_context = None if rollout_context is None else int(rollout_context)
        size = [int(size), int(size)] if isinstance(size, (int, float)) else [int(s) for s in size]
        self.sigma_data, self.preset, self.data = float(sigma_data), preset, str(data)
        self.frames, self.size, self.patch = int(frames), size, [int(p) for p in patch]
        self.channels = 1 if self.data == "moving_digits" else int(channels)
        self.attention, self.stride, self.labels = attention, int(stride), labels
        self.classes = list(classes) if classes else None
        self.train_clips, self.eval_clips, self.seed, self.fps = int(train_clips), int(eval_clips), int(seed), int(fps)
        self.cache_dir, self.classifier = cache_dir, classifier
        self._pretrained_arg = pretrained
        self.check_size(self.frames, *self.size)
        if self.rollout_context is not None and not 0 < self.rollout_context < self.frames:
            raise UserError(f"rollout_context={self.rollout_context} frames must be between 1 and frames-1="
                             f"{self.frames - 1}")
        shipped = DEFAULT_WEIGHTS.name if self.data == "moving_digits" else None  # default (or auto): this file
        self.pretrained = shipped_weights(pretrained, PRETRAINED_DIR, shipped)
        self._datasets: dict[str, Any] = {}

    # --- data ---------------------------------------------------------------------------------
    def check_size(self, frames: int, height: int, width: int) -> None:
        bad = [f"{n}={v}" for n, v, p in zip(("frames", "height", "width"), (frames, height, width), self.patch)
               if v < p or v % p]
        if bad:
            raise UserError(f"{', '.join(bad)} must be positive multiples of the tubelet patch "
                             f"(pt, ph, pw) = {tuple(self.patch)}")

    def _folder(self, split: str, frames: int, size: list[int]) -> VideoFolder:
        return VideoFolder(root=self.data, frames=frames, stride=self.stride, size=tuple(size), channels=self.channels,
                           labels=self.labels, classes=self.classes, split=split, cache_dir=self.cache_dir)

    def dataset(self, split: str, *, frames: int | None = None, size: list[int] | None = None):
        frames, size = frames or self.frames, list(size or self.size)
        key = (split, frames, tuple(size))
        if key not in self._datasets:
            if self.data == "moving_digits":
                clips = self.train_clips if split == "train" else self.eval_clips
                if size[0] != size[1]:
                    raise ValueError(f"moving digits are square; got size {size}")
                self._datasets[key] = MovingDigits(split=split, clips=clips, frames=frames, size=size[0],
                                                   digit=max(4, size[0] // 2), seed=self.seed, digits=self.digits)
            else:
                self._datasets[key] = self._folder(split, frames, size)
        return self._datasets[key]

    def num_classes(self) -> int:
        if self.data == "moving_digits":
            return NUM_CLASSES
        if self.classes is None:
            self.classes = self._folder("all", self.frames, self.size).class_names()
        return len(self.classes)

    def collate(self, items: list[dict]) -> Batch:
        x = torch.stack([it["video"] for it in items]) * 2 - 1  # (B, C, T, H, W) in [-1, 1]
        labels = torch.tensor([it["label"] for it in items], dtype=torch.long)
        names = [it["name"] for it in items]
        batch = Batch(x=x, cond={"class": labels}, meta={"names": names})
        if self.context:
            # the draw depends on the clips' names only: the same batch gets the same frames, on resume too
            rng = np.random.default_rng(zlib.crc32("\n".join(names).encode()))
            given = torch.from_numpy(context_frames(len(items), x.shape[2], rng, self.context_p))
            given = given.to(x.dtype)[:, None, :, None, None]  # (B, 1, T, 1, 1)
            batch.cond.update(frames=x * given, given=given)
            batch.mask = 1 - given  # given frames never count in the loss
        return batch

    # --- model --------------------------------------------------------------------------------
    def network(self) -> nn.Module:
        return PRESETS[self.preset](channels=self.channels, patch=tuple(self.patch), num_classes=self.num_classes(),
                                    attention=self.attention, context=self.context)

    def noise_fn(self, batch: Batch, generator: torch.Generator | None = None):
        return gaussian_noise_fn(generator)

    # --- sampling -----------------------------------------------------------------------------
    def sampling_batch(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> Batch:
        """Options: ``class`` (int, list or None), ``frames``, ``height``, ``width``, ``given`` (k for
        the first k frames, or a list of frame indices), ``given_from`` (a video file or frame
        folder; default: held-out clips of the data), ``given_start`` (first frame in that file)."""
        check_known(options, ("class", "frames", "height", "width", "given", "given_from", "given_start"), "video sampling")
        T, H, W = (default if options.get(key) is None else whole(options[key], key, low=1)  # frames=0 is an error
                   for key, default in (("frames", self.frames), ("height", self.size[0]), ("width", self.size[1])))
        self.check_size(T, H, W)
        labels = self._labels(n, options.get("class"))
        meta: dict[str, Any] = {"labels": labels.tolist(), "given": [], "truth": None, "truth_labels": [-1] * n,
                                "sources": [""] * n}
        batch = Batch(x=torch.zeros(n, self.channels, T, H, W), cond={"class": labels}, meta=meta)
        given = options.get("given")
        if given is None or given == [] or given == 0:
            for key in ("given_from", "given_start"):
                if options.get(key) is not None:
                    raise UserError(f"{key}={options[key]!r} needs given=K (the first K frames) or given=[i, j, ...]")
            return batch
        if options.get("given_start") is not None and not options.get("given_from"):
            raise UserError(f"given_start={options['given_start']!r} is a frame of given_from=FILE; give given_from too")
        if isinstance(given, (int, np.integer)) or (isinstance(given, str) and given.strip().isdigit()):
            k = int(given)
            if not 0 < k < T:
                raise UserError(f"given={k} first frames must be between 1 and frames-1={T - 1}")
            idx = list(range(k))
        else:
            idx = sorted(set(_index_list(given, "given")))
            if not idx or idx[0] < 0 or idx[-1] >= T:
                raise UserError(f"given frame indices {idx} must lie in [0, {T - 1}]")
            if len(idx) == T:
                raise UserError(f"given={idx} gives every frame; nothing is left to generate")
        truth, truth_labels, sources = self._given_clips(n, T, [H, W], options.get("given_from"),
                                                        whole(options.get("given_start") or 0, "given_start", low=0))
        mask = torch.zeros(n, 1, T, 1, 1)
        mask[:, :, idx] = 1
        batch.known, batch.known_mask = truth * 2 - 1, mask
        if self.context:  # the network sees the given frames clean, with their marker, as in training
            batch.cond.update(frames=batch.known * mask, given=mask)
        meta.update(given=idx, truth=truth, truth_labels=truth_labels, sources=sources)
        return batch

    def sample_loop(self, batch: Batch, solve_batch: Callable[[Batch], Tensor]) -> Tensor:
        """One solve for clips up to the training length; longer clips (``frames=`` above it) roll out
        autoregressively: windows of the training length, each new window starting where the last
        one ends less ``rollout_context`` frames (default half a window), with every frame already
        made (and every frame the user gave) in it given clean, the rest generated."""
        T, W = batch.x.shape[2], self.frames
        if not self.context or T <= W:
            return solve_batch(batch)
        keep = self.rollout_context or W // 2
        B = len(batch)
        known = batch.known if batch.known is not None else torch.zeros_like(batch.x)
        user = (batch.known_mask if batch.known_mask is not None else torch.zeros(B, 1, T, 1, 1)).to(known)
        out, done = known.clone(), 0
        while done < T:
            start = max(0, min(done - keep, T - W)) if done else 0
            window = slice(start, start + W)
            mask = user[:, :, window].clone()
            mask[:, :, : done - start] = 1  # frames already made
            vals = out[:, :, window]
            cond = {k: v for k, v in (batch.cond or {}).items() if k not in ("frames", "given")}
            sub = Batch(x=torch.zeros_like(vals), cond=cond, meta=batch.meta)
            if mask.any():
                sub.known, sub.known_mask = vals.clone(), mask
                cond.update(frames=vals * mask, given=mask)
            out[:, :, window] = solve_batch(sub).to(out.dtype)
            done = start + W
        return out

    def _labels(self, n: int, value: Any) -> Tensor:
        """class=: None (unconditional), an index or name, or one per sample (core.options.parse_classes)."""
        names = self.classes if self.classes else self.num_classes()
        labels = parse_classes(None if value == "" else value, names, n)
        return torch.full((n,), -1, dtype=torch.long) if labels is None else torch.tensor(labels, dtype=torch.long)

    def _given_clips(self, n: int, T: int, size: list[int], given_from: str | None, start: int):
        if given_from:
            clip = clip_from_file(given_from, frames=T, size=tuple(size), channels=self.channels, start=start)
            return clip[None].expand(n, *clip.shape).clone(), [-1] * n, [f"{given_from}@{start}"] * n
        data = self.dataset("test", frames=T, size=size)
        if len(data) < n:
            raise UserError(f"the held-out split has {len(data)} clips; asked for {n} given-frame samples")
        items = [data[i] for i in range(n)]
        return torch.stack([it["video"] for it in items]), [it["label"] for it in items], [it["name"] for it in items]

    def decode(self, x: Tensor, batch: Batch) -> list[VideoSample]:
        check_finite(x, "video decode: sampled clips")
        frames = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (B, C, T, H, W)
        frames = frames.permute(0, 2, 3, 4, 1).cpu().numpy()  # (B, T, H, W, C)
        meta = batch.meta
        truth = meta.get("truth")
        out = []
        for i in range(len(frames)):
            t = None if truth is None else (truth[i] * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
            out.append(VideoSample(frames=frames[i], label=int(meta.get("labels", [-1] * len(frames))[i]),
                                   given=list(meta.get("given", [])), truth=t,
                                   truth_label=int(meta.get("truth_labels", [-1] * len(frames))[i]),
                                   source=meta.get("sources", [""] * len(frames))[i], fps=self.fps))
        return out

    def write(self, samples: list[VideoSample], out_dir: Path) -> list[Path]:
        paths = []
        for i, s in enumerate(samples):  # sample_<i>, or sample_<i>_1 ... when taken (core.naming)
            paths += write_sample(s, Path(out_dir), index=i)
        return paths

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, samples: Path, **options: Any) -> dict[str, float]:
        from .evaluation import evaluate_samples

        return evaluate_samples(self, Path(samples), **options)

    def read_samples(self, samples: Path) -> list[VideoSample]:
        """Sidecars of a sample folder (or one ``.npz``); a broken one is reported and skipped."""
        samples = Path(samples)
        files = [samples] if samples.is_file() else sorted(samples.glob("*.npz"))
        if not files:
            raise FileNotFoundError(f"no sample sidecars (*.npz written by `diffsuite sample`) at {samples}")
        out = []
        for f in files:
            try:
                out.append(read_sample(f))
            except ValueError as e:
                log.warning("skipping %s", e)
        if not out:
            raise ValueError(f"none of the {len(files)} sidecars at {samples} could be read")
        return out

    def classifier_path(self) -> Path | None:
        shipped = DEFAULT_CLASSIFIER.name if self.data == "moving_digits" else None
        return shipped_weights(self.classifier or "default", PRETRAINED_DIR, shipped)  # null: the shipped one

    def settled_config(self) -> dict[str, Any]:
        return {"cache_dir": None}  # decoded videos are cached per machine

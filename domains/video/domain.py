"""The video domain: spatio-temporal patch diffusion on clips (B, C, T, H, W).

Model space: pixels in [0, 1] mapped to [-1, 1]. Class conditioning through ``cond["class"]``
(classifier-free guidance through ``cond["drop"]``); frame prediction and interpolation through
the core's known-region conditioning: ``given=4`` (the first 4 frames) or ``given=[0, 15]``
(any frames), taken from held-out clips of the domain's data or from a video file
(``given_from=clip.mp4``), whose true frames are kept beside each sample for ``evaluate``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from diffsuite.core.domain import Batch, gaussian_noise_fn
from diffsuite.core.errors import UserError
from diffsuite.core.noise import check_finite
from diffsuite.core.options import check_known, parse_classes, whole
from diffsuite.core.pretrained import shipped_weights

from .moving_digits import NUM_CLASSES, MovingDigits
from .transformer import PRESETS
from .video_files import VideoFolder, clip_from_file
from .writing import VideoSample, read_sample, write_sample

log = logging.getLogger(__name__)

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_WEIGHTS = PRETRAINED_DIR / "video_moving_digits.safetensors"
DEFAULT_CLASSIFIER = PRETRAINED_DIR / "classifier_moving_digits.safetensors"


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


class VideoDomain:
    name = "video"

    def __init__(self, *, sigma_data: float = 0.5, preset: str = "XS", data: str = "moving_digits",
                 frames: int = 16, size: int | list[int] = 32, channels: int = 1, patch: list[int] = (2, 4, 4),
                 attention: str = "factorised", stride: int = 8, labels: str | None = None,
                 classes: list[str] | None = None, train_clips: int = 100000, eval_clips: int = 256, seed: int = 0,
                 fps: int = 8, cache_dir: str | None = None, classifier: str | None = None,
                 pretrained: str | None = "auto"):
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
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
                                                   digit=max(4, size[0] // 2), seed=self.seed)
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
        return Batch(x=x, cond={"class": labels}, meta={"names": [it["name"] for it in items]})

    # --- model --------------------------------------------------------------------------------
    def network(self) -> nn.Module:
        return PRESETS[self.preset](channels=self.channels, patch=tuple(self.patch), num_classes=self.num_classes(),
                                    attention=self.attention)

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
        meta.update(given=idx, truth=truth, truth_labels=truth_labels, sources=sources)
        return batch

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

    def config(self) -> dict[str, Any]:
        return {"_target_": "diffsuite.domains.video.VideoDomain", "sigma_data": self.sigma_data, "preset": self.preset,
                "data": self.data, "frames": self.frames, "size": list(self.size), "channels": self.channels,
                "patch": list(self.patch), "attention": self.attention, "stride": self.stride, "labels": self.labels,
                "classes": self.classes, "train_clips": self.train_clips, "eval_clips": self.eval_clips,
                "seed": self.seed, "fps": self.fps, "cache_dir": self.cache_dir, "classifier": self.classifier,
                "pretrained": self._pretrained_arg}

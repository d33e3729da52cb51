"""AudioDomain: spectrogram diffusion for a folder of clips, or the embedded synthetic set."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from diffsuite.core.domain import Batch, ConfigFromInit, gaussian_noise_fn
from diffsuite.core.errors import UserError
from diffsuite.core.noise import check_finite
from diffsuite.core.options import check_known, number, parse_class, parse_classes, whole
from diffsuite.core.pretrained import shipped_weights
from diffsuite.core.training.distributed import derive_seed

from .classifier import classifier_meta
from .features import VOCODERS, FeatureSpec, LogMel, make_vocoder
from .folder import load_folder_features, read_audio, clip_features, scan_folder, split_of
from .synthetic import SYNTH_CLASSES, SYNTH_VERSION, synth_split
from .unet import PRESETS
from .writing import write_clips

log = logging.getLogger(__name__)
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
FSDD_WEIGHTS = "audio_fsdd.safetensors"  # the default checkpoint once it exists: spoken digits (FSDD)
FSDD_CLASSIFIER = "audio_fsdd_classifier.safetensors"  # its evaluation classifier + reference statistics


def default_weights(synthetic: bool) -> str | None:
    """What pretrained=default names with no data folder given (`diffsuite sample domain=audio`):
    the FSDD spoken-digit checkpoint when it is shipped (sampling reads the features and classes
    stored in the file), else the synthetic-set checkpoint. A folder of one's own has none."""
    if not synthetic:
        return None
    return FSDD_WEIGHTS if (PRETRAINED_DIR / FSDD_WEIGHTS).is_file() else "audio_default.safetensors"


def default_classifier(classes: list[str], spec: FeatureSpec) -> str | None:
    """What classifier=default names: the shipped classifier of the same classes and features."""
    for name in ("audio_classifier.safetensors", FSDD_CLASSIFIER):
        path = PRETRAINED_DIR / name
        if path.is_file():
            meta = classifier_meta(path)
            if meta.get("classes") == list(classes) and meta.get("feature_spec") == spec.as_dict():
                return name
    return None


def _split_key(value: Any) -> str:
    """A take as text, leading zeros dropped from numbers ('05' and 5 are the same take)."""
    text = str(value).strip()
    return str(int(text)) if text.isdigit() else text
MAX_SECONDS = 3600.0  # seconds= longer than an hour is a typo, not a clip


class ClipDataset(Dataset):
    """Log-mel clips cropped (train: random start; else the start) or padded to `frames`.

    A random crop is a function of (epoch, clip index) alone, never of a global or worker random
    state, so a resumed run reads exactly the crops an uninterrupted one would have."""

    def __init__(self, features: list[Tensor], labels: list[int], *, frames: int, silence: float, random_crop: bool):
        self.features, self.labels, self.frames = features, labels, frames
        self.silence, self.random_crop = silence, random_crop
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The training stream calls this at each epoch (and at a resume)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, Any]:
        f = self.features[i]  # (M, T)
        T = f.shape[-1]
        if T >= self.frames:
            start = 0
            if self.random_crop:
                g = torch.Generator().manual_seed(derive_seed(0xC809, self.epoch, i))
                start = int(torch.randint(0, T - self.frames + 1, (), generator=g))
            x = f[:, start:start + self.frames]
        else:
            x = torch.nn.functional.pad(f, (0, self.frames - T), value=self.silence)
        return {"x": x[None], "label": self.labels[i]}


class AudioDomain(ConfigFromInit):
    """Normalised log-mel (1, n_mels, frames) in model space; see configs/domain/audio.yaml."""

    name = "audio"

    def __init__(self, *, data: str = "synthetic", labels: str = "subfolder", label_pattern: str | None = None,
                 label_csv: str | None = None, classes: list[str] | None = None, sample_rate: int = 8000,
                 n_fft: int = 256, hop_length: int = 128, n_mels: int = 64, f_min: float = 20.0,
                 feature_offset: float = -9.4, feature_scale: float = 0.17, seconds: float = 1.024,
                 preset: str = "S", sigma_data: float = 0.5, synthetic_per_class: tuple[int, int, int] = (200, 10, 30),
                 val_fraction: float = 0.05, test_fraction: float = 0.1, cache_dir: str | None = None,
                 pretrained: str | None = "default", classifier: str | None = "default", griffin_lim_iters: int = 32,
                 f_max: float | None = None, power: float = 2.0, frame_centre: str = "start",
                 vocoder: str = "griffinlim", griffin_lim_init: str = "zero", hifigan_model: str = "universal",
                 label_map: dict[str, str] | None = None, split_pattern: str | None = None,
                 test_split: list[str] | None = None, val_split: list[str] | None = None, dropout: float = 0.0):
        if preset not in PRESETS:
            raise UserError(f"unknown audio preset {preset!r}; expected one of {sorted(PRESETS)}")
        self.data, self.labels, self.label_pattern, self.label_csv = data, labels, label_pattern, label_csv
        try:
            self.spec = FeatureSpec(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                                    f_min=f_min, offset=feature_offset, scale=feature_scale, f_max=f_max,
                                    power=float(power), frame_centre=frame_centre)
        except ValueError as e:
            raise UserError(f"audio features: {e}") from None
        if vocoder not in VOCODERS:
            raise UserError(f"unknown audio vocoder {vocoder!r}; expected one of {', '.join(VOCODERS)}")
        self.vocoder, self.griffin_lim_init, self.hifigan_model = vocoder, griffin_lim_init, hifigan_model
        self.label_map = None if label_map is None else {str(k): str(v) for k, v in dict(label_map).items()}
        self.split_pattern = split_pattern
        self.test_split = None if test_split is None else [_split_key(v) for v in test_split]
        self.val_split = None if val_split is None else [_split_key(v) for v in val_split]
        if split_pattern is not None:
            try:
                if re.compile(split_pattern).groups != 1:
                    raise UserError(f"split_pattern {split_pattern!r} must have exactly one group (the take)")
            except re.error as e:
                raise UserError(f"split_pattern {split_pattern!r} is not a regular expression ({e})") from None
            if not self.test_split:
                raise UserError("split_pattern needs test_split, the held-out values of its group (e.g. [5, 6, 7, 8, 9])")
        self.seconds, self.preset, self.sigma_data = seconds, preset, sigma_data
        if not 0.0 <= float(dropout) < 1.0:
            raise UserError(f"audio dropout must lie in [0, 1), got {dropout}")
        self.dropout = float(dropout)  # inside each residual block; consistency tuning (model=ect) wants some
        self.synthetic_per_class = tuple(synthetic_per_class)
        self.val_fraction, self.test_fraction, self.griffin_lim_iters = val_fraction, test_fraction, griffin_lim_iters
        self.cache_dir = Path(cache_dir or os.path.expanduser("~/.cache/diffsuite")) / "audio"
        self.synthetic = data == "synthetic"
        if classes is None:
            classes = list(SYNTH_CLASSES) if self.synthetic else self._scan_classes()
        self.classes = [str(c) for c in classes]
        self._pretrained_arg, self._classifier_arg = pretrained, classifier
        self.pretrained = self._resolve(pretrained, default_weights(self.synthetic))
        self.classifier_path = self._resolve(classifier, default_classifier(self.classes, self.spec))
        self._logmel = LogMel(self.spec)
        self._splits: dict[str, tuple[list[Tensor], list[int]]] = {}
        self._classifier = None
        self._reference: dict[str, Any] = {}
        self._vocoders: dict[str, nn.Module] = {}

    # --- construction helpers -------------------------------------------------------------
    @staticmethod
    def _resolve(arg: str | None, default_name: str | None) -> Path | None:
        """default / null / a shipped file's name / a path: core.pretrained's rule for every domain."""
        return shipped_weights(arg, PRETRAINED_DIR, default_name)

    def _scan(self) -> list[tuple[Path, str | None]]:
        """The folder's files with their labels (through label_map: a label it lacks is None)."""
        entries = scan_folder(self.data, labels=self.labels, pattern=self.label_pattern, csv_path=self.label_csv)
        if self.label_map is None:
            return entries
        out = []
        for p, y in entries:
            if y is not None and y not in self.label_map:
                log.warning("%s: label %r is not in label_map; skipped", p, y)
                continue
            out.append((p, None if y is None else self.label_map[y]))
        return out

    def _scan_classes(self) -> list[str]:
        if self.label_map is not None:  # the map's order: {"0": "zero", "1": "one", ...} gives zero=0, one=1
            return list(dict.fromkeys(self.label_map.values()))
        return sorted({y for _, y in self._scan() if y is not None})

    def split_of(self, path: Path, root: Path) -> str | None:
        """train / val / test: by split_pattern's group (the take) when given, else by a hash of the path."""
        if self.split_pattern is None:
            return split_of(path, root, self.val_fraction, self.test_fraction)
        m = re.search(self.split_pattern, path.name)
        if m is None:
            log.warning("%s: file name does not match split_pattern %r; skipped", path, self.split_pattern)
            return None
        key = _split_key(m.group(1))
        return "test" if key in self.test_split else "val" if key in (self.val_split or []) else "train"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def frames(self) -> int:
        return self.round_frames(self.spec.seconds_to_frames(self.seconds))

    def _stride(self) -> int:
        """The preset's time stride (read from a build of it on the meta device: no memory, no time)."""
        if not hasattr(self, "_stride_cache"):
            with torch.device("meta"):
                self._stride_cache = PRESETS[self.preset](max(self.num_classes, 1), self.spec.n_mels).time_stride
        return self._stride_cache

    def round_frames(self, frames: int) -> int:
        s = self._stride()
        return max(s, int(math.ceil(frames / s)) * s)

    def settled_config(self) -> dict[str, Any]:
        # the class names found in the data folder travel with the weights; the cache stays here
        return {"classes": list(self.classes), "cache_dir": None}

    # --- data -------------------------------------------------------------------------------
    def split_features(self, split: str) -> tuple[list[Tensor], list[int]]:
        """(features (M, T) per clip, labels) of a split, computed once and kept."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"unknown split {split!r}; expected train, val or test")
        if split not in self._splits:
            self._splits[split] = self._load_synthetic(split) if self.synthetic else self._load_folder(split)
        return self._splits[split]

    def _load_synthetic(self, split: str):
        per_class = dict(zip(("train", "val", "test"), self.synthetic_per_class))[split]
        n = self.frames * self.spec.hop_length
        key = hashlib.sha1(json.dumps([SYNTH_VERSION, split, per_class, n, self.spec.as_dict()]).encode()).hexdigest()[:16]
        cache = self.cache_dir / f"synthetic_{key}.pt"
        if cache.is_file():
            try:
                d = torch.load(cache, weights_only=True)
                return list(d["features"]), d["labels"].tolist()
            except Exception as e:  # a truncated cache is rebuilt, never trusted
                log.warning("%s: unreadable feature cache (%s); rebuilding", cache, e)
        waves, labels = synth_split(split, per_class, sample_rate=self.spec.sample_rate, num_samples=n)
        feats = self._logmel(torch.from_numpy(waves))  # (N, M, T)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"features": feats, "labels": torch.from_numpy(labels)}, tmp)
            tmp.replace(cache)
        except OSError as e:
            log.warning("cannot cache synthetic features in %s (%s)", self.cache_dir, e)
        return list(feats), labels.tolist()

    def _load_folder(self, split: str):
        root = Path(self.data)
        entries = self._scan()
        index = {c: i for i, c in enumerate(self.classes)}
        chosen = []
        for p, y in entries:
            if self.split_of(p, root) != split:
                continue
            if y is not None and y not in index:
                log.warning("%s: label %r is not one of the model's classes %s; skipped", p, y, self.classes)
                continue
            chosen.append((p, -1 if y is None else index[y]))
        if not chosen:
            raise UserError(f"{root}: the {split!r} split is empty (val_fraction={self.val_fraction}, "
                             f"test_fraction={self.test_fraction})")
        clips = load_folder_features(chosen, self.spec, self.cache_dir)
        return clips.features, clips.labels

    def dataset(self, split: str) -> Dataset:
        feats, labels = self.split_features(split)
        return ClipDataset(feats, labels, frames=self.frames, silence=self._logmel.silence, random_crop=split == "train")

    def labelled_tensors(self, split: str) -> tuple[Tensor, Tensor]:
        """All clips of a split at the training length, (N, 1, M, frames) and labels (N,); crops are
        the clips' starts, never random, so reference statistics are the same at every run."""
        feats, labels = self.split_features(split)
        ds = ClipDataset(feats, labels, frames=self.frames, silence=self._logmel.silence, random_crop=False)
        items = [ds[i] for i in range(len(ds))]
        return torch.stack([it["x"] for it in items]), torch.tensor([it["label"] for it in items])

    def collate(self, items: list[dict[str, Any]]) -> Batch:
        # No loss mask: the silence that pads a short clip to the window is a target like any other
        # frame. Generation always fills the whole window, so the model has to learn where a clip
        # ends; with the padding masked out of the loss (as before) it never did, and filled the end
        # of every window with unconstrained noise (measured on the FSDD model: 0.1% of generated
        # values at the silence level against 48% of padded real clips).
        x = torch.stack([it["x"] for it in items])  # (B, 1, M, T)
        labels = torch.tensor([it["label"] for it in items], dtype=torch.long)
        return Batch(x=x, cond={"class": labels})

    # --- model ------------------------------------------------------------------------------
    def network(self) -> nn.Module:
        return PRESETS[self.preset](self.num_classes, self.spec.n_mels, dropout=self.dropout)

    def noise_fn(self, batch: Batch, generator: torch.Generator | None = None):
        return gaussian_noise_fn(generator)

    # --- sampling ---------------------------------------------------------------------------
    def resolve_class(self, value: Any) -> int:
        """A class index from an index or a class name; -1 (or 'none') is unconditional."""
        return parse_class(value, self.classes)

    def clip_features(self, path: str | Path) -> Tensor:
        """(M, T) normalised log-mel of one audio file (errors name the file)."""
        return clip_features(read_audio(path, self.spec.sample_rate), self._logmel, str(path))

    def sampling_batch(self, n: int, *, generator: torch.Generator | None = None, **options: Any) -> Batch:
        """Options: class (index, name, or None for one of each class in turn; -1 unconditional),
        seconds (length; rounded up to the model's time stride), clip (an audio file) with either
        infill=[start, end] (seconds of the clip to regenerate) or keep=SECONDS (continuation: keep
        the clip's first SECONDS, default all of it, and generate up to `seconds`)."""
        check_known(options, ("class", "seconds", "clip", "infill", "keep", "vocoder"), "audio sampling")
        vocoder = options.get("vocoder")
        if vocoder is not None and vocoder not in VOCODERS:
            raise UserError(f"vocoder={vocoder!r} is not one of {', '.join(VOCODERS)}")
        n = whole(n, "n", low=1)
        cls = parse_classes(options.get("class"), self.classes, n)
        if cls is None:
            labels = torch.arange(n) % self.num_classes if self.num_classes else torch.full((n,), -1)
        else:
            labels = torch.tensor(cls)
        seconds = options.get("seconds")
        seconds = self.seconds if seconds is None else number(seconds, "seconds", low=0.0, low_open=True, high=MAX_SECONDS)
        frames = self.round_frames(self.spec.seconds_to_frames(seconds))
        known = known_mask = None
        clip, infill, keep = options.get("clip"), options.get("infill"), options.get("keep")
        if clip is None and (infill is not None or keep is not None):
            raise UserError("infill= and keep= need clip=PATH, the audio file to fill in or continue")
        if clip is not None:
            feats = self.clip_features(clip)  # (M, Tc)
            Tc = feats.shape[-1]
            if infill is not None:
                if keep is not None:
                    raise UserError("give either infill=[start, end] or keep=SECONDS, not both")
                start, end = (float(v) for v in infill)
                a, b = int(start * self.spec.sample_rate / self.spec.hop_length), self.spec.seconds_to_frames(end)
                if not 0 <= a < b <= Tc:
                    raise UserError(f"infill span [{start}, {end}] s is not inside {clip} "
                                     f"({self.spec.frames_to_seconds(Tc):.3f} s)")
                frames = self.round_frames(Tc)
                keep_mask = torch.ones(frames)
                keep_mask[a:b] = 0
                keep_mask[Tc:] = 0  # padding up to the stride is generated too
            else:
                k = Tc if keep is None else self.spec.seconds_to_frames(float(keep))
                if not 0 < k <= Tc:
                    raise UserError(f"keep={keep} s is not within {clip} ({self.spec.frames_to_seconds(Tc):.3f} s)")
                if k >= frames:
                    raise UserError(f"continuing {clip}: the kept {self.spec.frames_to_seconds(k):.3f} s is not shorter "
                                     f"than seconds={seconds}; ask for a longer result")
                keep_mask = torch.zeros(frames)
                keep_mask[:k] = 1
            full = torch.full((self.spec.n_mels, frames), self._logmel.silence)
            full[:, :min(Tc, frames)] = feats[:, :frames]
            known = full.expand(n, 1, -1, -1).clone()  # (n, 1, M, T)
            known_mask = keep_mask.reshape(1, 1, 1, frames).expand(n, 1, self.spec.n_mels, frames).clone()
        x = torch.zeros(n, 1, self.spec.n_mels, frames)
        meta = {"labels": labels.tolist(), "frames": frames, "clip": None if clip is None else str(clip), "vocoder": vocoder}
        return Batch(x=x, cond={"class": labels}, known=known, known_mask=known_mask, meta=meta)

    def decode(self, x: Tensor, batch: Batch) -> list[dict[str, Any]]:
        check_finite(x, "audio decode: sampled spectrograms")
        x = x.detach().float().cpu()
        with torch.no_grad():
            waves = self.vocode(x[:, 0], batch.meta.get("vocoder"))  # (B, T * hop)
        labels = batch.meta.get("labels") or batch.cond["class"].tolist()
        return [{"wave": w.numpy(), "sample_rate": self.spec.sample_rate, "label": int(y),
                 "class_name": self.classes[y] if 0 <= y < self.num_classes else "unconditional",
                 "features": f[0].numpy()} for w, f, y in zip(waves, x, labels)]

    def vocoder_module(self, name: str | None = None) -> nn.Module:
        """The features -> waveform module: the domain's `vocoder`, or `name` (griffinlim | hifigan)."""
        name = name or self.vocoder
        if name not in self._vocoders:
            try:
                self._vocoders[name] = make_vocoder(name, self.spec, griffin_lim_iters=self.griffin_lim_iters,
                                                    griffin_lim_init=self.griffin_lim_init, hifigan_model=self.hifigan_model)
            except ValueError as e:
                raise UserError(str(e)) from None
        return self._vocoders[name]

    def vocode(self, x: Tensor, name: str | None = None, batch_size: int = 16) -> Tensor:
        """(N, M, T) normalised log-mel -> (N, T * hop) waveforms, in batches."""
        net = self.vocoder_module(name)
        with torch.no_grad():
            return torch.cat([net(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def write(self, samples: list[Any], out_dir: Path) -> list[Path]:
        return write_clips(samples, out_dir)

    def evaluate(self, samples: Path, **options: Any) -> dict[str, float]:
        from .evaluation import evaluate_folder

        return evaluate_folder(self, Path(samples), **options)

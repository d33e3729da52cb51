"""A folder of clips in: WAV / FLAC / OGG read by soundfile at any sample rate, mixed to mono,
resampled with torchaudio, labelled from sub-folder names, a filename pattern or a CSV
(``path,label``), turned into log-mel features once and cached on disk.

A file that cannot be read (corrupt, empty, too short for one analysis frame) is reported with a
warning naming it and skipped, so one broken clip never ends a long run; reading that file alone
raises a ``UserError`` that names it. Labels from a CSV and the train/val/test split are the
core's (``core.labels``, ``core.splits``), as in every domain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from diffsuite.core.errors import MissingFileError, UserError
from diffsuite.core.labels import read_label_csv
from diffsuite.core.splits import path_key
from diffsuite.core.splits import split_of as split_of_key

from .features import FeatureSpec, LogMel

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
LabelSource = Literal["subfolder", "regex", "csv", "none"]


def read_audio(path: str | Path, sample_rate: int) -> Tensor:
    """A mono float32 waveform (samples,) at `sample_rate`; a clear error for a bad file."""
    path = Path(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError) as e:
        if not path.exists():
            raise MissingFileError(f"no audio file at {path}") from e
        raise UserError(f"{path}: cannot read audio ({' '.join(str(e).split())})") from e
    if data.shape[0] == 0:
        raise UserError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise UserError(f"{path}: the file holds non-finite samples")
    wave = torch.from_numpy(data.mean(axis=1))  # (samples,) mono mix-down
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave


def min_samples(spec: FeatureSpec) -> int:
    """The shortest clip that gives a frame: one hop, and more than half the FFT window (the STFT
    pads each end by half a window, by reflection, which needs that many samples)."""
    return max(spec.hop_length, spec.n_fft // 2 + 1)


def clip_features(wave: Tensor, logmel: LogMel, where: str) -> Tensor:
    """(samples,) -> (n_mels, frames); a clip too short for one frame is an error naming it."""
    need = min_samples(logmel.spec)
    if wave.shape[-1] < need:
        raise UserError(f"{where}: {wave.shape[-1]} samples at {logmel.spec.sample_rate} Hz is shorter than one frame; "
                        f"a clip needs at least {need} (one {logmel.spec.hop_length}-sample hop and over half the "
                        f"{logmel.spec.n_fft}-sample FFT window)")
    try:
        return logmel(wave)
    except RuntimeError as e:  # any other analysis failure still names the file
        raise UserError(f"{where}: cannot compute its spectrogram ({' '.join(str(e).split())})") from e


def scan_folder(root: str | Path, *, labels: LabelSource = "subfolder", pattern: str | None = None,
                csv_path: str | Path | None = None) -> list[tuple[Path, str | None]]:
    """Audio files under `root` (sorted) with their label names."""
    root = Path(root)
    if not root.is_dir():
        raise MissingFileError(f"audio data folder {root} does not exist")
    if labels == "csv":
        return _scan_csv(root, csv_path)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise UserError(f"{root} holds no {'/'.join(AUDIO_EXTENSIONS)} files")
    if labels == "none":
        return [(p, None) for p in files]
    if labels == "subfolder":
        out = [(p, p.parent.relative_to(root).parts[0]) for p in files if p.parent != root]
        if not out:
            raise UserError(f"{root}: labels='subfolder' but no file sits in a sub-folder")
        if len(out) < len(files):
            log.warning("%s: %d file(s) outside any sub-folder have no label and are skipped", root, len(files) - len(out))
        return out
    if labels == "regex":
        if not pattern:
            raise UserError("labels='regex' needs label_pattern, a regular expression with one group")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise UserError(f"label_pattern={pattern!r} is not a regular expression ({e})") from None
        if rx.groups != 1:
            raise UserError(f"label_pattern={pattern!r} must have exactly one (group), the label; it has {rx.groups}")
        out = []
        for p in files:
            m = rx.search(p.name)
            if m is None:
                log.warning("%s: file name does not match label pattern %r; skipped", p, pattern)
                continue
            out.append((p, m.group(1)))
        if not out:
            raise UserError(f"{root}: no file name matches label pattern {pattern!r}")
        return out
    raise UserError(f"labels={labels!r} is not a label source; expected subfolder, regex, csv or none")


def _scan_csv(root: Path, csv_path: str | Path | None) -> list[tuple[Path, str | None]]:
    """The files a label CSV lists (core.labels.read_label_csv); a listed file that is
    missing is reported and skipped."""
    if csv_path is None:
        raise UserError("labels='csv' needs label_csv, a file of 'path,label' rows")
    out = []
    for rel, label in read_label_csv(csv_path).items():  # in the order the CSV lists them
        p = Path(rel) if Path(rel).is_absolute() else root / rel
        if not p.is_file():
            log.warning("%s: %s does not exist; skipped", csv_path, p)
            continue
        out.append((p, label))
    if not out:
        raise UserError(f"{csv_path}: none of the files it lists exists under {root}")
    return out


def split_of(path: Path, root: Path, val_fraction: float, test_fraction: float) -> str:
    """The file's split: core.splits.split_of over its path relative to `root`."""
    try:
        key = path_key(path, root)
    except ValueError:  # a CSV may list a file outside the root: its absolute path is its key
        key = Path(path).as_posix()
    return split_of_key(key, val_fraction, test_fraction)


@dataclass
class ClipFeatures:
    features: list[Tensor]  # each (n_mels, frames)
    labels: list[int]  # -1 where unlabelled
    names: list[str]


def load_folder_features(entries: list[tuple[Path, int]], spec: FeatureSpec, cache_dir: Path) -> ClipFeatures:
    """Features of every readable file, cached under `cache_dir` by file list, sizes, times and spec."""
    key = hashlib.sha1(json.dumps([spec.as_dict()] + [[str(p), p.stat().st_size, p.stat().st_mtime_ns, y]
                                                       for p, y in entries]).encode()).hexdigest()[:16]
    cache = cache_dir / f"audio_features_{key}.pt"
    if cache.is_file():
        try:
            d = torch.load(cache, weights_only=True)
            return ClipFeatures(d["features"], d["labels"], d["names"])
        except Exception as e:  # a stale or truncated cache is rebuilt, never trusted
            log.warning("%s: unreadable feature cache (%s); rebuilding", cache, e)
    logmel = LogMel(spec)
    feats, labels, names, skipped = [], [], [], 0
    for p, y in entries:
        try:
            feats.append(clip_features(read_audio(p, spec.sample_rate), logmel, str(p)))
        except ValueError as e:  # UserError: the message names the file
            log.warning("skipping %s", e)
            skipped += 1
            continue
        labels.append(y)
        names.append(str(p))
    if not feats:
        raise UserError(f"none of the {len(entries)} audio files could be read (each is named in a warning above)")
    if skipped:
        log.warning("%d of %d audio files were unreadable and skipped", skipped, len(entries))
    try:  # a unique temp name per process, renamed into place: ranks building it at once never collide
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"features": feats, "labels": labels, "names": names}, tmp)
        tmp.replace(cache)
    except OSError as e:
        log.warning("cannot cache audio features in %s (%s)", cache_dir, e)
    return ClipFeatures(feats, labels, names)

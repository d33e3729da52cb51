"""A folder of clips in: WAV / FLAC / OGG read by soundfile at any sample rate, mixed to mono,
resampled with torchaudio, labelled from sub-folder names, a filename pattern or a CSV
(``path,label``), turned into log-mel features once and cached on disk.

A file that cannot be read (corrupt, empty, shorter than one frame) is reported with a warning
and skipped, so one broken clip never ends a long run; reading that file alone raises an error
that names it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

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
        raise ValueError(f"{path}: cannot read audio ({e})") from e
    if data.shape[0] == 0:
        raise ValueError(f"{path}: the file holds no samples")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: the file holds non-finite samples")
    wave = torch.from_numpy(data.mean(axis=1))  # (samples,) mono mix-down
    if sr != sample_rate:
        wave = AF.resample(wave, sr, sample_rate)
    return wave


def clip_features(wave: Tensor, logmel: LogMel, where: str) -> Tensor:
    """(samples,) -> (n_mels, frames); refuses a clip shorter than one frame."""
    hop = logmel.spec.hop_length
    if wave.shape[-1] < hop:
        raise ValueError(f"{where}: {wave.shape[-1]} samples is shorter than one frame ({hop} samples)")
    return logmel(wave)


def scan_folder(root: str | Path, *, labels: LabelSource = "subfolder", pattern: str | None = None,
                csv_path: str | Path | None = None) -> list[tuple[Path, str | None]]:
    """Audio files under `root` (sorted) with their label names."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio data folder {root} does not exist")
    if labels == "csv":
        return _scan_csv(root, csv_path)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise ValueError(f"{root} holds no {'/'.join(AUDIO_EXTENSIONS)} files")
    if labels == "none":
        return [(p, None) for p in files]
    if labels == "subfolder":
        out = [(p, p.parent.relative_to(root).parts[0]) for p in files if p.parent != root]
        if not out:
            raise ValueError(f"{root}: labels='subfolder' but no file sits in a sub-folder")
        if len(out) < len(files):
            log.warning("%s: %d file(s) outside any sub-folder have no label and are skipped", root, len(files) - len(out))
        return out
    if labels == "regex":
        if not pattern:
            raise ValueError("labels='regex' needs label_pattern, a regular expression with one group")
        rx = re.compile(pattern)
        out = []
        for p in files:
            m = rx.search(p.name)
            if m is None:
                log.warning("%s: file name does not match label pattern %r; skipped", p, pattern)
                continue
            out.append((p, m.group(1)))
        if not out:
            raise ValueError(f"{root}: no file name matches label pattern {pattern!r}")
        return out
    raise ValueError(f"unknown label source {labels!r}; expected subfolder, regex, csv or none")


def _scan_csv(root: Path, csv_path: str | Path | None) -> list[tuple[Path, str | None]]:
    if csv_path is None:
        raise ValueError("labels='csv' needs label_csv, a file of 'path,label' rows")
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"label CSV {csv_path} does not exist")
    out = []
    with open(csv_path, newline="") as f:
        for i, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].strip().lower() == "path":
                continue
            if len(row) < 2:
                log.warning("%s line %d: expected 'path,label', got %r; skipped", csv_path, i, row)
                continue
            p = Path(row[0].strip())
            p = p if p.is_absolute() else root / p
            if not p.is_file():
                log.warning("%s line %d: %s does not exist; skipped", csv_path, i, p)
                continue
            out.append((p, row[1].strip()))
    if not out:
        raise ValueError(f"{csv_path}: no usable 'path,label' rows")
    return out


def split_of(path: Path, root: Path, val_fraction: float, test_fraction: float) -> str:
    """A fixed split from a hash of the relative path: adding files never moves old ones."""
    u = zlib.crc32(str(path.relative_to(root)).encode()) / 2**32
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


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
        except ValueError as e:
            log.warning("skipping %s", e)
            skipped += 1
            continue
        labels.append(y)
        names.append(str(p))
    if not feats:
        raise ValueError(f"none of the {len(entries)} files could be read")
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

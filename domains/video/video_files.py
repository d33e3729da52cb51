"""Data adapters for real video: a folder of video files (MP4, WebM, AVI, MOV, MKV, GIF) and/or
folders of frame images, cut into clips of T frames with a stride, resized and centre-cropped.

Labels come from a CSV (``path,label`` with the path relative to the root) or from the first
sub-folder (``root/<class>/clip.mp4``, ``root/<class>/<clip>/0001.png``). A file that cannot
be read, or that is shorter than a clip, is reported with a warning and skipped; reading one
file directly (``read_video``) raises an error that names it.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif"}
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


def _as_rgb(frames: np.ndarray, where: str) -> np.ndarray:
    """Any (N, H, W[, C]) uint8-able array -> (N, H, W, 3) uint8."""
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{where}: frames of shape {frames.shape} are not (N, H, W, C) with C in 1, 3, 4")
    if frames.dtype != np.uint8:
        frames = np.clip(frames, 0, 255).astype(np.uint8)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return frames[..., :3]


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video file or a folder of frame images, as (N, H, W, 3) uint8."""
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
        if not files:
            raise ValueError(f"{path}: folder holds no frame images ({', '.join(sorted(FRAME_SUFFIXES))})")
        frames = []
        for f in files:
            try:
                frames.append(_as_rgb(np.asarray(iio.imread(f))[None], str(f))[0])
            except Exception as e:  # noqa: BLE001 -- any decoder failure names the file
                raise ValueError(f"cannot read frame {f}: {e}") from e
        if len({fr.shape for fr in frames}) > 1:
            raise ValueError(f"{path}: frames differ in size ({sorted({fr.shape for fr in frames})})")
        return np.stack(frames)
    if not path.is_file():
        raise FileNotFoundError(f"no video at {path}")
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"{path}: unknown video suffix {suffix!r}; expected one of {sorted(VIDEO_SUFFIXES)}")
    try:
        if suffix == ".gif":
            frames = iio.imread(path, index=None, plugin="pillow", mode="RGB")
        else:
            frames = iio.imread(path, index=None, plugin="pyav")
    except Exception as e:  # noqa: BLE001 -- PyAV and Pillow raise many types; all mean unreadable
        raise ValueError(f"cannot read video {path}: {type(e).__name__}: {e}") from e
    frames = np.asarray(frames)
    if frames.ndim == 3 and suffix == ".gif":  # a one-frame GIF
        frames = frames[None]
    if frames.shape[0] == 0:
        raise ValueError(f"{path}: video holds no frames")
    return _as_rgb(frames, str(path))


def resize_crop(frames: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (channels, N, h, w) uint8: scale so the frame covers `size`, crop the centre."""
    h, w = size
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    H, W = x.shape[-2:]
    scale = max(h / H, w / W)
    nh, nw = max(h, round(H * scale)), max(w, round(W * scale))
    if (nh, nw) != (H, W):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    top, left = (nh - h) // 2, (nw - w) // 2
    x = x[..., top:top + h, left:left + w]
    if channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).reshape(1, 3, 1, 1)).sum(1, keepdim=True)
    elif channels != 3:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 0, 2, 3).numpy()  # (C, N, h, w)


def find_videos(root: Path) -> list[Path]:
    """Video files and frame folders under `root`, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        d = Path(dirpath)
        if d != root and any(Path(f).suffix.lower() in FRAME_SUFFIXES for f in filenames):
            found.append(d)  # a folder of frames is one video
        found += [d / f for f in sorted(filenames) if Path(f).suffix.lower() in VIDEO_SUFFIXES]
    return found


def read_label_csv(path: Path) -> dict[str, str]:
    """``path,label`` rows (a header row is allowed) -> {relative path: label}."""
    out = {}
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise ValueError(f"{path}, line {n}: expected 'path,label', got {row!r}")
            if n == 1 and row[0].strip().lower() in ("path", "file", "filename", "video"):
                continue
            out[Path(row[0].strip()).as_posix()] = row[1].strip()
    return out


class VideoFolder(Dataset):
    """Clips from a folder of videos; items are ``{"video": (C, T, H, W) float in [0, 1],
    "label": int (-1 when unlabelled), "name": "relative/path@start"}``.

    The folder is scanned and each video decoded once, on first use; the resized frames are
    cached under ``cache_dir`` (keyed by path, size, mtime and the target size).
    """

    def __init__(self, *, root: str | Path, frames: int = 16, stride: int = 8, size: tuple[int, int] = (32, 32),
                 channels: int = 1, labels: str | Path | None = None, classes: list[str] | None = None,
                 split: str = "train", val_fraction: float = 0.1, cache_dir: str | Path | None = None):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"video folder {self.root} does not exist")
        if frames < 1 or stride < 1:
            raise ValueError(f"frames and stride must be >= 1, got frames={frames}, stride={stride}")
        self.frames, self.stride, self.size, self.channels = frames, stride, tuple(size), channels
        self.labels_csv = Path(labels).expanduser() if labels else None
        self.classes = list(classes) if classes else None
        self.split, self.val_fraction = split, val_fraction
        self.cache_dir = Path(cache_dir or "~/.cache/diffsuite").expanduser() / "video"
        self._index: list[tuple[Path, int, int]] | None = None  # (video, start, label)

    # --- labels ---------------------------------------------------------------------------
    def _label_names(self, videos: list[Path]) -> dict[Path, str | None]:
        if self.labels_csv is not None:
            table = read_label_csv(self.labels_csv)
            return {v: table.get(v.relative_to(self.root).as_posix()) for v in videos}
        names = {}
        for v in videos:
            parts = v.relative_to(self.root).parts
            names[v] = parts[0] if len(parts) >= 2 else None
        return names

    def class_names(self) -> list[str]:
        if self.classes is None:
            names = self._label_names(find_videos(self.root)).values()
            self.classes = sorted({n for n in names if n is not None})
        return self.classes

    # --- index and cache ------------------------------------------------------------------
    def _cached(self, video: Path) -> np.ndarray:
        st = video.stat()
        key = f"{video.resolve()}|{st.st_mtime_ns}|{st.st_size}|{self.size}|{self.channels}"
        file = self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"
        if file.is_file():
            return np.load(file)
        arr = resize_crop(read_video(video), self.size, self.channels)  # (C, N, H, W) uint8
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, file)
        return arr

    def _in_split(self, video: Path) -> bool:
        """Deterministic split by a hash of the relative path."""
        if self.split == "all":
            return True
        h = int(hashlib.sha1(video.relative_to(self.root).as_posix().encode()).hexdigest()[:8], 16) / 2**32
        if self.split == "val":  # the held-out range [0, val_fraction) is halved: val and test never share a file
            return h < self.val_fraction / 2
        if self.split == "test":
            return self.val_fraction / 2 <= h < self.val_fraction
        return h >= self.val_fraction

    def index(self) -> list[tuple[Path, int, int]]:
        if self._index is not None:
            return self._index
        videos = find_videos(self.root)
        names = self._label_names(videos)
        classes = self.class_names()
        out = []
        for v in videos:
            if not self._in_split(v):
                continue
            try:
                n = self._cached(v).shape[1]
            except (ValueError, OSError) as e:
                log.warning("skipping %s: %s", v, e)
                continue
            if n < self.frames:
                log.warning("skipping %s: %d frames, fewer than the %d a clip needs", v, n, self.frames)
                continue
            name = names[v]
            if name is not None and name not in classes:
                log.warning("skipping %s: label %r is not one of the classes %s", v, name, classes)
                continue
            label = -1 if name is None else classes.index(name)
            out += [(v, s, label) for s in range(0, n - self.frames + 1, self.stride)]
        if not out:
            raise ValueError(f"{self.root}: no readable video of at least {self.frames} frames in split {self.split!r}")
        self._index = out
        return out

    def __len__(self) -> int:
        return len(self.index())

    def __getitem__(self, i: int) -> dict:
        video, start, label = self.index()[i]
        arr = self._cached(video)[:, start:start + self.frames]  # (C, T, H, W) uint8
        name = f"{video.relative_to(self.root).as_posix()}@{start}"
        return {"video": torch.from_numpy(arr.astype(np.float32) / 255.0), "label": label, "name": name}


def clip_from_file(path: str | Path, *, frames: int, size: tuple[int, int], channels: int, start: int = 0) -> torch.Tensor:
    """One clip (C, T, H, W) in [0, 1] from a file; too short a file is an error that names it."""
    arr = resize_crop(read_video(path), tuple(size), channels)
    n = arr.shape[1]
    if start < 0 or start + frames > n:
        raise ValueError(f"{path}: has {n} frames; a clip of {frames} from frame {start} needs {start + frames}")
    return torch.from_numpy(arr[:, start:start + frames].astype(np.float32) / 255.0)

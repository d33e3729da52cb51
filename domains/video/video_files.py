"""Data adapters for real video: a folder of video files (MP4, WebM, AVI, MOV, MKV, GIF) and/or
folders of frame images, cut into clips of T frames with a stride, resized and centre-cropped.

Labels come from a CSV (``path,label`` with the path relative to the root) or from the first
sub-folder (``root/<class>/clip.mp4``, ``root/<class>/<clip>/0001.png``). A file that cannot
be read, or that is shorter than a clip, is reported with a warning and skipped; reading one
file directly (``read_video``) raises an error that names it.

Videos are decoded as a stream: each frame is scaled to [0, 1] by its own bit depth (8-bit,
16-bit PNG, float), resized and cropped at once, and only the small result is kept, so a long
1080p file needs the memory of one full-size frame, not of the whole file. A clip read from a
file (``given_from=``) stops decoding at its last frame.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from diffsuite.core.errors import MissingFileError, UserError
from diffsuite.core.labels import read_label_csv
from diffsuite.core.splits import path_key, split_of

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v", ".gif"}
FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


def to_unit_rgb(frame: np.ndarray, where: str) -> np.ndarray:
    """One frame (H, W[, C]) of any depth -> (H, W, 3) float32 in [0, 1]: 8-bit / 255, 16-bit
    / 65535 (any integer type by its full range), float kept (clipped to [0, 1]), bool as 0 / 1;
    grey is repeated to RGB, alpha dropped."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.ndim != 3 or frame.shape[-1] not in (1, 2, 3, 4):
        raise UserError(f"{where}: a frame of shape {frame.shape} is not (H, W) or (H, W, C) with C in 1-4")
    if frame.shape[-1] in (2, 4):  # grey + alpha, RGB + alpha
        frame = frame[..., :-1]
    if frame.dtype == np.bool_:
        x = frame.astype(np.float32)
    elif np.issubdtype(frame.dtype, np.integer):
        info = np.iinfo(frame.dtype)
        if info.min < 0:
            raise UserError(f"{where}: frames of signed type {frame.dtype} have no defined brightness range")
        x = frame.astype(np.float32)
        x /= float(info.max)  # in place: one float copy of the frame, not two
    elif np.issubdtype(frame.dtype, np.floating):
        x = np.clip(np.nan_to_num(frame.astype(np.float32), nan=0.0), 0.0, 1.0)
    else:
        raise UserError(f"{where}: frames of type {frame.dtype} are not images")
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


def _as_rgb(frames: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W[, C]) of any depth -> (N, H, W, 3) uint8, each frame scaled by its bit depth."""
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4):
        raise UserError(f"{where}: frames of shape {frames.shape} are not (N, H, W, C)")
    if frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[-1] == 3:
        return frames
    return np.stack([(to_unit_rgb(f, where) * 255).round().astype(np.uint8) for f in frames])


def _frame_files(path: Path) -> list[Path]:
    files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=_natural_key)
    if not files:
        raise UserError(f"{path}: folder holds no frame images ({', '.join(sorted(FRAME_SUFFIXES))})")
    return files


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file or a folder of frame images, one at a time, each (H, W, 3)
    float32 in [0, 1]; errors name the file (and the frame)."""
    import imageio.v3 as iio

    path = Path(path)
    if path.is_dir():
        shape = None
        for f in _frame_files(path):
            try:
                frame = to_unit_rgb(iio.imread(f), str(f))
            except UserError:
                raise
            except Exception as e:  # noqa: BLE001 -- any decoder failure names the file
                raise UserError(f"cannot read frame {f}: {type(e).__name__}: {' '.join(str(e).split())}") from e
            if shape is not None and frame.shape != shape:
                raise UserError(f"{path}: frames differ in size ({f.name} is {frame.shape[:2]}, the first {shape[:2]})")
            shape = frame.shape
            yield frame
        return
    if not path.is_file():
        raise MissingFileError(f"no video at {path}")
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise UserError(f"{path}: unknown video suffix {suffix!r}; expected one of {sorted(VIDEO_SUFFIXES)}")
    count = 0
    try:
        frames = (iio.imiter(path, plugin="pillow", mode="RGB") if suffix == ".gif"
                  else iio.imiter(path, plugin="pyav"))
        for frame in frames:
            count += 1
            yield to_unit_rgb(frame, f"{path} frame {count}")
    except UserError:
        raise
    except GeneratorExit:
        raise
    except Exception as e:  # noqa: BLE001 -- PyAV and Pillow raise many types; all mean unreadable
        raise UserError(f"cannot read video {path}: {type(e).__name__}: {' '.join(str(e).split())}") from e
    if count == 0:
        raise UserError(f"{path}: video holds no frames")


def read_video(path: str | Path) -> np.ndarray:
    """All frames of a video file or a folder of frame images, as (N, H, W, 3) uint8 at full size.
    For data, use ``read_clip``, which resizes as it decodes and holds only the small frames."""
    return np.stack([(f * 255).round().astype(np.uint8) for f in iter_frames(path)])


def _resize_crop_unit(x: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 255] -> (channels, N, h, w) uint8: scale to cover, crop the centre."""
    h, w = size
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
        raise UserError(f"channels must be 1 or 3, got {channels}")
    return x.round().clamp(0, 255).to(torch.uint8).permute(1, 0, 2, 3)  # (C, N, h, w)


def resize_crop(frames: np.ndarray, size: tuple[int, int], channels: int) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (channels, N, h, w) uint8: scale so the frame covers `size`, crop the centre."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # (N, 3, H, W)
    return _resize_crop_unit(x, tuple(size), channels).numpy()


def read_clip(path: str | Path, size: tuple[int, int], channels: int, *, start: int = 0,
              frames: int | None = None) -> np.ndarray:
    """(channels, N, h, w) uint8: frames `start` .. `start + frames` (all from `start` when None) of
    a file or frame folder, each resized as it is decoded; decoding stops after the last one."""
    out = []
    if frames is not None and frames < 1:
        raise UserError(f"frames={frames} must be >= 1")
    for i, frame in enumerate(iter_frames(path)):
        if i >= start:
            x = torch.from_numpy(frame).permute(2, 0, 1)[None] * 255.0  # (1, 3, H, W)
            out.append(_resize_crop_unit(x, tuple(size), channels)[:, 0])  # (C, h, w)
        if frames is not None and i + 1 >= start + frames:
            break  # nothing after the clip's last frame is decoded
    if not out:
        return np.zeros((channels if channels in (1, 3) else 3, 0, *size), dtype=np.uint8)
    return torch.stack(out, dim=1).numpy()  # (C, N, h, w)


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
            raise MissingFileError(f"video folder {self.root} does not exist")
        if frames < 1 or stride < 1:
            raise UserError(f"frames and stride must be >= 1, got frames={frames}, stride={stride}")
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
        key = f"{video.resolve()}|{st.st_mtime_ns}|{st.st_size}|{self.size}|{self.channels}|decode2"  # 2: bit depth kept
        file = self.cache_dir / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"
        if file.is_file():
            return np.load(file)
        arr = read_clip(video, self.size, self.channels)  # (C, N, H, W) uint8, decoded as a stream
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        os.replace(tmp, file)
        return arr

    def _in_split(self, video: Path) -> bool:
        """core.splits over the relative path; the held-out `val_fraction` is halved into val and test."""
        if self.split == "all":
            return True
        half = self.val_fraction / 2
        return split_of(path_key(video, self.root), half, half) == self.split

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
            except (ValueError, OSError) as e:  # UserError names the file (and the frame)
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
            raise UserError(f"{self.root}: no readable video of at least {self.frames} frames in split {self.split!r}")
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
    """One clip (C, T, H, W) in [0, 1] from a file; too short a file is an error that names it.
    Only frames up to ``start + frames`` are decoded."""
    if start < 0:
        raise UserError(f"given_start={start} must be >= 0")
    arr = read_clip(path, tuple(size), channels, start=start, frames=frames)
    n = arr.shape[1]
    if n < frames:
        raise UserError(f"{path}: has {start + n} frames; a clip of {frames} from frame {start} needs {start + frames}")
    return torch.from_numpy(arr.astype(np.float32) / 255.0)

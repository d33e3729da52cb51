"""Samples -> files a person opens: an MP4 (H.264), a GIF and a frame-grid PNG per sample, plus a
sidecar ``.npz`` with the exact frames (and, for prediction, the true clip and which frames were
given) that ``evaluate`` reads, since MP4 is lossy. Nothing existing is ever overwritten: each
sample takes the first free ``sample_NNNN`` stem in the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from diffsuite.core import naming

SUFFIXES = (".mp4", ".gif", ".png", ".npz", ".json")


@dataclass
class VideoSample:
    """One decoded sample: frames (T, H, W, C) uint8, and what is known about how it was made."""

    frames: np.ndarray
    label: int = -1  # the class it was conditioned on, -1 for none
    given: list[int] = field(default_factory=list)  # indices of the frames that were given
    truth: np.ndarray | None = None  # (T, H, W, C) uint8, the real clip the given frames came from
    truth_label: int = -1
    source: str = ""  # where the given frames came from
    fps: int = 8


def to_rgb(frames: np.ndarray) -> np.ndarray:
    return np.repeat(frames, 3, axis=-1) if frames.shape[-1] == 1 else frames


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling (T, H, W, C), so a 32-pixel clip is visible in a player."""
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def frame_grid(frames: np.ndarray, *, columns: int = 8, pad: int = 1, given: list[int] = ()) -> np.ndarray:
    """(T, H, W, C) -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, 3) image; given frames framed in green."""
    T, H, W, _ = frames.shape
    rgb = to_rgb(frames)
    cols = min(columns, T)
    rows = -(-T // cols)
    grid = np.full((rows * (H + pad) + pad, cols * (W + pad) + pad, 3), 64, dtype=np.uint8)
    for t in range(T):
        r, c = divmod(t, cols)
        y, x = pad + r * (H + pad), pad + c * (W + pad)
        if t in given and pad > 0:
            grid[y - pad:y + H + pad, x - pad:x + W + pad] = (0, 200, 0)
        grid[y:y + H, x:x + W] = rgb[t]
    return grid


def free_stem(out_dir: Path, prefix: str = "sample", index: int | None = None) -> Path:
    """``out_dir/prefix_NNNN`` for sample `index` under core.naming's rule (``prefix_NNNN_1``,
    ... when taken); without an index, the first ``prefix_NNNN`` with no file of any suffix."""
    if index is not None:
        return out_dir / naming.free_stem(out_dir, f"{prefix}_{index:04d}", SUFFIXES)
    i = 0
    while any((out_dir / f"{prefix}_{i:04d}{s}").exists() for s in SUFFIXES):
        i += 1
    return out_dir / f"{prefix}_{i:04d}"


def write_mp4(path: Path, frames: np.ndarray, fps: int) -> None:
    import imageio.v3 as iio

    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite")
    rgb = to_rgb(frames)
    H, W = rgb.shape[1:3]
    if H % 2 or W % 2:  # yuv420p needs even sides
        rgb = np.pad(rgb, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)), mode="edge")
    iio.imwrite(path, rgb, plugin="pyav", codec="libx264", fps=fps, out_pixel_format="yuv420p")


def write_gif(path: Path, frames: np.ndarray, fps: int) -> None:
    if path.exists():
        raise FileExistsError(f"{path} exists; refusing to overwrite")
    images = [Image.fromarray(f) for f in to_rgb(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def write_sample(sample: VideoSample, out_dir: Path, *, scale: int = 4, index: int | None = None) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = free_stem(out_dir, index=index)
    big = upscale(sample.frames, scale)
    paths = [stem.with_suffix(s) for s in (".mp4", ".gif", ".png", ".npz")]
    write_mp4(paths[0], big, sample.fps)
    write_gif(paths[1], big, sample.fps)
    grid = frame_grid(upscale(sample.frames, max(1, scale // 2)), given=list(sample.given))
    with open(paths[2], "xb") as f:  # "x": fail rather than overwrite
        Image.fromarray(grid).save(f, format="PNG")
    arrays = {"frames": sample.frames, "given": np.asarray(sample.given, dtype=np.int64)}
    if sample.truth is not None:
        arrays["truth"] = sample.truth
    info = {"label": sample.label, "truth_label": sample.truth_label, "source": sample.source, "fps": sample.fps}
    with open(paths[3], "xb") as f:
        np.savez_compressed(f, info=np.asarray(json.dumps(info)), **arrays)
    return paths


def read_sample(path: Path) -> VideoSample:
    """A sidecar ``.npz`` written by ``write_sample`` back to a VideoSample; errors name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            frames = z["frames"]
            given = z["given"].tolist()
            truth = z["truth"] if "truth" in z.files else None
    except Exception as e:  # noqa: BLE001 -- zip, key and JSON errors all mean "not our sidecar"
        raise ValueError(f"{path} is not a video sample sidecar: {type(e).__name__}: {e}") from e
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"{path}: frames must be (T, H, W, C) uint8, got {frames.shape} {frames.dtype}")
    return VideoSample(frames=frames, label=int(info.get("label", -1)), given=given, truth=truth,
                       truth_label=int(info.get("truth_label", -1)), source=info.get("source", ""),
                       fps=int(info.get("fps", 8)))

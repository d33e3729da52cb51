"""The embedded default data set: moving digits, built from the 1,797 8x8 digit images that ship
inside scikit-learn's wheel (``sklearn.datasets.load_digits``), so nothing is downloaded.

Each clip is one digit, upsampled to ``digit`` pixels, bouncing in a dark square frame with a
constant velocity; clip ``i`` of a split depends only on ``(seed, split, i)``. The digit images
themselves are split by index (``index % 10 == 0`` test, ``== 1`` val, the rest train), so a
held-out clip never shows a digit image the training clips use.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
NUM_CLASSES = 10


@functools.lru_cache(maxsize=4)
def digit_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """All sklearn digits upsampled to (N, size, size) float32 in [0, 1], and their labels (N,)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    up = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    return up[:, 0].clamp(0, 1).numpy(), d.target.astype(np.int64)


def split_indices(split: str) -> np.ndarray:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    n = len(digit_images()[1])
    r = np.arange(n) % 10
    keep = {"test": r == 0, "val": r == 1, "train": r >= 2}[split]
    return np.nonzero(keep)[0]


def bounce_positions(start: float, velocity: float, frames: int, span: int) -> np.ndarray:
    """Integer positions of a point moving at `velocity` in [0, span], reflecting off both ends."""
    if span <= 0:
        return np.zeros(frames, dtype=np.int64)
    p = start + velocity * np.arange(frames)
    p = np.mod(p, 2 * span)  # unfold the reflections: a triangle wave of period 2 * span
    p = np.where(p > span, 2 * span - p, p)
    return np.rint(p).astype(np.int64)


def moving_digit_clip(image: np.ndarray, rng: np.random.Generator, *, frames: int, size: int,
                      max_speed: float = 2.5) -> np.ndarray:
    """One clip (frames, size, size) float32 in [0, 1] of `image` bouncing in the frame."""
    d = image.shape[0]
    if d > size:
        raise ValueError(f"digit of {d} pixels does not fit a frame of {size}")
    span = size - d
    start = rng.uniform(0, span, size=2)
    speed = rng.uniform(1.0, max_speed)
    angle = rng.uniform(0, 2 * np.pi)
    ys = bounce_positions(start[0], speed * np.sin(angle), frames, span)
    xs = bounce_positions(start[1], speed * np.cos(angle), frames, span)
    clip = np.zeros((frames, size, size), dtype=np.float32)
    for t in range(frames):
        clip[t, ys[t]:ys[t] + d, xs[t]:xs[t] + d] = image
    return clip


class MovingDigits(Dataset):
    """Clips of one bouncing digit; items are ``{"video": (1, T, H, W) float in [0, 1], "label": int,
    "name": str}``. Clips are drawn on the fly (about 0.1 ms each), so nothing needs caching."""

    def __init__(self, *, split: str = "train", clips: int = 10000, frames: int = 16, size: int = 32,
                 digit: int = 16, seed: int = 0):
        self.indices = split_indices(split)
        self.split, self.clips, self.frames, self.size, self.digit, self.seed = split, clips, frames, size, digit, seed

    def __len__(self) -> int:
        return self.clips

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.clips:
            raise IndexError(f"clip {i} out of range for {self.clips} clips")
        split_code = zlib.crc32(self.split.encode())
        rng = np.random.default_rng([self.seed, split_code, i])
        images, labels = digit_images(self.digit)
        k = self.indices[rng.integers(len(self.indices))]
        clip = moving_digit_clip(images[k], rng, frames=self.frames, size=self.size)
        return {"video": torch.from_numpy(clip)[None], "label": int(labels[k]), "name": f"moving_digits/{self.split}/{i}"}

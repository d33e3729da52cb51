"""Frame metrics (PSNR, SSIM) and the Frechet distance between two sets of embeddings."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from diffsuite.core.metrics import frechet_distance  # noqa: F401  (re-exported: one implementation for every domain)


def psnr(a: Tensor, b: Tensor, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two videos in [0, peak] (any equal shapes)."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    mse = F.mse_loss(a.double(), b.double()).item()
    return float("inf") if mse == 0 else 10 * np.log10(peak**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]  # (size, size)


def ssim(a: Tensor, b: Tensor, *, peak: float = 1.0) -> float:
    """Mean structural similarity (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5) over all
    frames and channels of two videos (C, T, H, W) in [0, peak]. Frames smaller than the window
    use a window of their size."""
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"ssim needs two (C, T, H, W) videos of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    x = a.double().flatten(0, 1)[:, None]  # (C*T, 1, H, W)
    y = b.double().flatten(0, 1)[:, None]
    size = min(11, x.shape[-1], x.shape[-2])
    win = _gaussian_window(size)[None, None]
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return float(s.mean())

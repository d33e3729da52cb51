"""Noise-level and class embeddings."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class NoiseEmbedding(nn.Module):
    """c_noise -> vector: sinusoidal features (Vaswani et al.) then a two-layer MLP (as DiT).

    Tuned for labels of order one (every wrapper in ``core.precond`` feeds one): the features are
    sin/cos of 250 * c_noise * f with f from 1 down to 1/max_period, so the fastest turns 250 rad
    per unit label and neighbouring timesteps of a 1000-step chain (0.001 apart) stay distinct."""

    def __init__(self, dim: int, *, freq_dim: int = 256, max_period: float = 10000.0):
        super().__init__()
        self.freq_dim, self.max_period = freq_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: Tensor) -> Tensor:  # (B,) -> (B, dim)
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=c_noise.device) / half)
        angles = c_noise.float()[:, None] * freqs[None] * 1000 / 4  # c_noise ~ ln(sigma)/4 spans a few units
        return self.mlp(torch.cat([angles.cos(), angles.sin()], dim=-1).to(self.mlp[0].weight.dtype))


class ClassEmbedding(nn.Module):
    """Class label -> vector, with a learned null row used where ``cond["drop"]`` is True."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)  # the last row is the null class

    def forward(self, labels: Tensor, drop: Tensor | None = None) -> Tensor:  # (B,) -> (B, dim)
        if (labels >= self.num_classes).any() or (labels < -1).any():
            bad = labels[(labels >= self.num_classes) | (labels < -1)][0].item()
            raise ValueError(f"class {bad} is outside the model's {self.num_classes} classes")
        labels = torch.where(labels < 0, self.num_classes, labels)
        if drop is not None:
            labels = torch.where(drop, self.num_classes, labels)
        return self.table(labels)

"""Seeded noise, and the noise hook samplers and the loss take.

A noise hook is any callable ``noise(x) -> eps`` with ``eps`` shaped like ``x``. Grids use plain
Gaussian noise; structured domains supply their own (see ``core.domain.Domain.noise_fn``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

NoiseFn = Callable[[Tensor], Tensor]


class PerSampleNoise:
    """Gaussian noise from one generator per sample, so a sample depends on its own seed only,
    never on the batch size or on its position in the batch (as in NVlabs/edm ``generate.py``).
    """

    def __init__(self, seeds: Sequence[int], device: torch.device | str = "cpu"):
        self.generators = [torch.Generator(device).manual_seed(int(s)) for s in seeds]

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[0] != len(self.generators):
            raise ValueError(f"PerSampleNoise holds {len(self.generators)} seeds but the batch has {x.shape[0]} rows")
        rows = [torch.randn(x.shape[1:], generator=g, device=g.device, dtype=torch.float32) for g in self.generators]
        return torch.stack(rows).to(device=x.device, dtype=x.dtype)


def zero_mean_noise(mask: Tensor, generator: torch.Generator | None = None) -> NoiseFn:
    """Gaussian noise projected onto the zero-mean subspace over axis 1, zero where ``mask`` is 0.

    ``mask`` is ``(B, N, 1)``; the hook is for ``x`` of shape ``(B, N, D)`` (for example atom
    positions with zero centre of mass). The projected noise is standard normal within the
    ``(n - 1) * D``-dimensional subspace.
    """

    def noise(x: Tensor) -> Tensor:
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * mask
        return remove_mean(eps, mask)

    return noise


def remove_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Subtract the masked mean over axis 1 (the centre of mass of real elements)."""
    n = mask.sum(dim=1, keepdim=True).clamp_min(1)  # (B, 1, 1)
    mean = (x * mask).sum(dim=1, keepdim=True) / n  # (B, 1, D)
    return (x - mean) * mask


def all_finite(t: Tensor) -> bool:
    """Whether every value of t is finite, at the cost of one float32 sum: NaN and inf propagate through
    it, so a finite sum proves all values finite. Only a non-finite sum (a NaN or inf, or finite values
    whose sum overflows) pays for the exact check. At (4096, 64) float32 on one thread of the development
    CPU the sum cost 20-22 us, a float64-accumulated sum 79-119 us and isfinite().all() 681 us."""
    return math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


def check_finite(t: Tensor, where: str) -> Tensor:
    """Stop with a message naming `where` if `t` holds NaN or inf; never hide it."""
    if not all_finite(t):
        bad = (~torch.isfinite(t)).sum().item()
        raise FloatingPointError(f"{where}: {bad} non-finite value(s) of {t.numel()}")
    return t

"""Learning-rate schedule: linear warm-up, then constant, cosine, linear or 1/sqrt decay.

A pure function of the step, wrapped in LambdaLR so the optimizer sees it; a resumed run
recomputes it from the step stored in the checkpoint.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Decay = Literal["constant", "cosine", "linear", "rsqrt"]


def lr_factor(step: int, *, steps: int, warmup: int, decay: Decay, min_ratio: float) -> float:
    """Multiplier of the peak lr at `step` (0-based, applied to the update of that step)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if decay == "constant":
        return 1.0
    if decay == "rsqrt":  # EDM2 style: 1 / sqrt(max(step / warmup, 1))
        return 1.0 / math.sqrt(max((step + 1) / max(warmup, 1), 1.0))
    span = max(steps - warmup, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    if decay == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if decay == "linear":
        return min_ratio + (1 - min_ratio) * (1 - progress)
    raise ValueError(f"trainer.decay must be constant, cosine, linear or rsqrt, got {decay!r}")


def lr_scheduler(optimizer: torch.optim.Optimizer, *, steps: int, warmup: int, decay: Decay,
                 min_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    lr_factor(0, steps=steps, warmup=warmup, decay=decay, min_ratio=min_ratio)  # refuse a bad name now
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, steps=steps, warmup=warmup, decay=decay, min_ratio=min_ratio))

"""Per-molecule conditioning vector: noise level, and optionally one QM9 property with a learned
null used where ``cond["drop"]`` is True (classifier-free guidance)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from diffsuite.core.nn import NoiseEmbedding


class MoleculeConditioning(nn.Module):
    def __init__(self, *, dim: int, conditioned: bool = False):
        super().__init__()
        self.noise = NoiseEmbedding(dim)
        self.conditioned = conditioned
        if conditioned:
            self.property = nn.Sequential(nn.Linear(1, dim), nn.SiLU(), nn.Linear(dim, dim))
            self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, c_noise: Tensor, cond: dict[str, Tensor] | None) -> Tensor:  # -> (B, dim)
        c = self.noise(c_noise)  # (B, D)
        if not self.conditioned:
            return c
        B = c.shape[0]
        prop = None if cond is None else cond.get("property")
        drop = torch.ones(B, dtype=torch.bool, device=c.device) if prop is None else cond.get("drop")
        p = torch.zeros(B, device=c.device) if prop is None else prop.reshape(B).to(c.dtype)
        e = self.property(p[:, None])  # (B, D)
        if drop is not None:
            e = torch.where(drop.reshape(B, 1), self.null.to(e.dtype).expand_as(e), e)
        return c + e


def node_mask(x: Tensor, cond: dict[str, Tensor] | None) -> Tensor:
    """(B, N, 1) mask of real atoms; all ones when the batch has no padding."""
    if cond is not None and cond.get("mask") is not None:
        return cond["mask"].to(x.dtype).reshape(x.shape[0], x.shape[1], 1)
    return x.new_ones(x.shape[0], x.shape[1], 1)


def centre_weights(mask: Tensor, cond: dict[str, Tensor] | None) -> Tensor:
    """(B, N, 1) weights of the frame's origin: the real atoms, or a fixed fragment's atoms."""
    if cond is not None and cond.get("centre") is not None:
        return cond["centre"].to(mask.dtype).reshape(mask.shape) * mask
    return mask


def weighted_centre(v: Tensor, w: Tensor) -> Tensor:
    """v (B, N, 3) minus its w-weighted mean over atoms; w (B, N, 1)."""
    mean = (v * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1e-12)  # (B, 1, 3)
    return v - mean

"""Multi-head self-attention through torch's scaled_dot_product_attention (flash / memory-
efficient kernels where available), with optional rotary positions (Su et al. 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def rope_frequencies(positions: Tensor, dim: int, *, base: float = 10000.0) -> Tensor:
    """positions (L,) -> angles (L, dim // 2) for one axis of rotary embedding."""
    inv = base ** (-torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim)
    return positions.float()[:, None] * inv[None]


def apply_rope(x: Tensor, angles: Tensor) -> Tensor:
    """Rotate channel pairs of x (B, H, L, Dh) by angles (L, Dh // 2)."""
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # (B, H, L, Dh/2) each
    cos, sin = angles.cos(), angles.sin()
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)
    return out.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, *, heads: int, qk_norm: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(dim // heads) if qk_norm else nn.Identity()
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, *, rope: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)  # (B, H, L, Dh)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        attn_mask = None if mask is None else mask[:, None, None, :].bool()  # key padding
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, H, L, Dh)
        return self.out(rearrange(y, "b h l d -> b l (h d)"))

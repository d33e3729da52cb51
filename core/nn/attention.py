"""Multi-head self-attention through torch's scaled_dot_product_attention (flash / memory-
efficient kernels where available; two matrix products where those are faster, see ``dot_product_attention``),
with optional rotary positions (Su et al. 2021)."""

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


# On a CPU in bf16 (autocast), torch's fused attention kernel gains little from the low precision, while two
# bf16 matrix products around a softmax run at the processor's bf16 rate as long as a head's score matrix
# stays in cache. Measured on the 2-core Zen 4 development CPU (avx512_bf16), one thread, forward and
# backward of (16, 4, L, 32) in bf16: 36 ms against the fused kernel's 53 at L = 256, but 186 against 151 at
# L = 512; in float32 the fused kernel was faster at every length (float16 was not measured and keeps it).
# In the shipped video network (256 tokens), 60 eager bf16 training steps side by side: 485 ms a step
# against 620 with the fused kernel (fp32: 770), mean loss 0.9128 against 0.9163 (fp32 0.9166): within
# noise. Where the fused kernel is used the results are exactly torch's.
CPU_MATMUL_ATTENTION_MAX_TOKENS = 256


def dot_product_attention(q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None) -> Tensor:
    """softmax(q k^T / sqrt(d) + mask) v over (B, H, L, Dh); attn_mask is boolean, True = attend."""
    short = max(q.shape[-2], k.shape[-2]) <= CPU_MATMUL_ATTENTION_MAX_TOKENS
    if q.device.type == "cpu" and q.dtype == torch.bfloat16 and short:
        scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5  # (B, H, Lq, Lk)
        if attn_mask is not None:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        return torch.matmul(scores.softmax(dim=-1), v)  # the softmax accumulates in float32 internally
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)


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
        y = dot_product_attention(q, k, v, attn_mask)  # (B, H, L, Dh)
        return self.out(rearrange(y, "b h l d -> b l (h d)"))

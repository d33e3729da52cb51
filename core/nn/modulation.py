"""adaLN-Zero (Peebles & Xie 2023): the condition sets shift, scale and gate of each sub-layer;
the projection starts at zero, so every block starts as the identity."""

from __future__ import annotations

from torch import Tensor, nn


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x: (B, L, D); shift, scale: (B, D)."""
    return x * (1 + scale[:, None]) + shift[:, None]


class AdaLNZero(nn.Module):
    """c (B, C) -> `chunks` tensors (B, D): shift/scale/gate for each modulated sub-layer."""

    def __init__(self, cond_dim: int, dim: int, *, chunks: int = 6):
        super().__init__()
        self.chunks = chunks
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, chunks * dim))
        nn.init.zeros_(self.proj[1].weight)
        nn.init.zeros_(self.proj[1].bias)

    def forward(self, c: Tensor) -> tuple[Tensor, ...]:
        return self.proj(c).chunk(self.chunks, dim=-1)

"""A diffusion transformer over spatio-temporal patches (DiT, Peebles & Xie 2023, on tubelets as
in ViViT / Sora-style video models).

The clip (B, C, T, H, W) is cut into tubelets of pt x ph x pw, each a token. Positions are
rotary over (t, h, w): the head's channel pairs are split in three, one set per axis, so any
T, H, W (patch multiples) can be sampled. Attention is either full space-time over all tokens
or factorised (spatial attention within each frame, then temporal attention at each place);
both go through SDPA. Every sub-layer is modulated by adaLN-Zero on noise level + class, so
each block starts as the identity and the output layer starts at zero.

Frame conditioning (``context=True``, MCVD-style, Voleti et al. 2022): ``cond["given"]``
(B, 1, T, 1, 1) marks the given frames with 1 and ``cond["frames"]`` (B, C, T, H, W) holds them
clean in model space. Before the tubelet embedding the network replaces its (noisy) input on the
given frames by the clean frames and appends the marker as one more channel, so a given frame
never reaches the network with noise and the network always knows which frames are given. With
no ``given`` in ``cond`` the marker is all zero: unconditional generation, the same network.
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import Tensor, nn

from diffsuite.core.nn import AdaLNZero, Attention, ClassEmbedding, NoiseEmbedding, modulate, rope_frequencies

AttentionKind = Literal["full", "factorised"]


def rope_angles(grid: tuple[int, int, int], head_dim: int) -> Tensor:
    """Rotary angles (t*h*w, head_dim // 2) over a (t, h, w) token grid, tokens in t-h-w order."""
    pairs = head_dim // 2
    split = [pairs - 2 * (pairs // 3), pairs // 3, pairs // 3]  # time gets the remainder
    axes = []
    for n, p in zip(grid, split):
        axes.append(rope_frequencies(torch.arange(n), 2 * p))  # (n, p)
    t, h, w = grid
    at = axes[0][:, None, None].expand(t, h, w, -1)
    ah = axes[1][None, :, None].expand(t, h, w, -1)
    aw = axes[2][None, None, :].expand(t, h, w, -1)
    return rearrange(torch.cat([at, ah, aw], dim=-1), "t h w p -> (t h w) p")


class Mlp(nn.Sequential):
    def __init__(self, dim: int, *, ratio: float = 4.0):
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))


class SpaceTimeBlock(nn.Module):
    """One transformer block; `attention` full (one attention over all tokens) or factorised
    (spatial then temporal attention), each sub-layer with adaLN-Zero shift, scale and gate."""

    def __init__(self, dim: int, *, heads: int, attention: AttentionKind = "full", mlp_ratio: float = 4.0):
        super().__init__()
        if attention not in ("full", "factorised"):
            raise ValueError(f"attention must be 'full' or 'factorised', got {attention!r}")
        self.attention = attention
        n_attn = 1 if attention == "full" else 2
        self.norms = nn.ModuleList(nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6) for _ in range(n_attn + 1))
        self.attns = nn.ModuleList(Attention(dim, heads=heads) for _ in range(n_attn))
        self.mlp = Mlp(dim, ratio=mlp_ratio)
        self.ada = AdaLNZero(dim, dim, chunks=3 * (n_attn + 1))

    def forward(self, x: Tensor, c: Tensor, grid: tuple[int, int, int], rope: Tensor) -> Tensor:
        t, h, w = grid
        mods = self.ada(c)  # 3 per sub-layer, each (B, D)
        if self.attention == "full":
            shift, scale, gate = mods[0:3]
            y = self.attns[0](modulate(self.norms[0](x), shift, scale), rope=rope)  # (B, L, D)
            x = x + gate[:, None] * y
        else:
            B = x.shape[0]
            rope_s = rope[: h * w]  # one frame: rope is relative, the t rotation cancels
            rope_t = rope[:: h * w]  # one place, every frame
            shift, scale, gate = mods[0:3]
            y = modulate(self.norms[0](x), shift, scale)  # (B, L, D)
            y = rearrange(y, "b (t s) d -> (b t) s d", t=t)  # (B*T, S, D)
            y = self.attns[0](y, rope=rope_s)
            x = x + gate[:, None] * rearrange(y, "(b t) s d -> b (t s) d", b=B)
            shift, scale, gate = mods[3:6]
            y = modulate(self.norms[1](x), shift, scale)  # (B, L, D)
            y = rearrange(y, "b (t s) d -> (b s) t d", t=t)  # (B*S, T, D)
            y = self.attns[1](y, rope=rope_t)
            x = x + gate[:, None] * rearrange(y, "(b s) t d -> b (t s) d", b=B)
        shift, scale, gate = mods[-3:]
        return x + gate[:, None] * self.mlp(modulate(self.norms[-1](x), shift, scale))  # (B, L, D)


class VideoDiT(nn.Module):
    """Raw network ``net(x_in, c_noise, cond) -> (B, C, T, H, W)``; ``cond`` may hold ``"class"``
    (LongTensor[B], -1 for none), ``"drop"`` (BoolTensor[B], use the null class) and, when
    ``context`` is on, ``"given"`` (B, 1, T, 1, 1) with ``"frames"`` (B, C, T, H, W): the given
    frames, clean (see the module docstring)."""

    def __init__(self, *, channels: int = 1, patch: tuple[int, int, int] = (2, 4, 4), dim: int = 128, depth: int = 4,
                 heads: int = 4, num_classes: int = 10, attention: AttentionKind = "factorised", mlp_ratio: float = 4.0,
                 context: bool = False):
        super().__init__()
        self.channels, self.patch, self.context = channels, tuple(int(p) for p in patch), bool(context)
        if (dim // heads) % 2 or dim // heads < 6:
            raise ValueError(f"head dim {dim // heads} must be even and >= 6 for rotary positions over (t, h, w)")
        self.heads = heads
        pt, ph, pw = self.patch
        self.embed = nn.Linear((channels + self.context) * pt * ph * pw, dim)  # + the given-frame marker
        self.noise_embed = NoiseEmbedding(dim)
        self.class_embed = ClassEmbedding(max(num_classes, 0), dim) if num_classes > 0 else None
        self.blocks = nn.ModuleList(SpaceTimeBlock(dim, heads=heads, attention=attention, mlp_ratio=mlp_ratio)
                                    for _ in range(depth))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = AdaLNZero(dim, dim, chunks=2)
        self.out = nn.Linear(dim, channels * pt * ph * pw)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def check_shape(self, x: Tensor) -> tuple[int, int, int]:
        if x.ndim != 5 or x.shape[1] != self.channels:
            raise ValueError(f"expected video (B, {self.channels}, T, H, W), got shape {tuple(x.shape)}")
        T, H, W = x.shape[2:]
        bad = [f"{n}={v} is not a multiple of the patch {p}" for n, v, p in zip("THW", (T, H, W), self.patch) if v % p]
        if bad:
            raise ValueError("video size does not fit the tubelet patch: " + "; ".join(bad))
        return T // self.patch[0], H // self.patch[1], W // self.patch[2]

    def condition(self, c_noise: Tensor, cond: dict[str, Tensor] | None, B: int) -> Tensor:
        c = self.noise_embed(c_noise.reshape(-1).expand(B))  # (B, D)
        if self.class_embed is not None:
            cond = cond or {}
            labels = cond.get("class")
            if labels is None:
                labels = torch.full((B,), -1, dtype=torch.long, device=c.device)
            c = c + self.class_embed(labels.long().reshape(B), cond.get("drop"))  # (B, D)
        return c

    def with_context(self, x: Tensor, cond: dict[str, Tensor] | None) -> Tensor:
        """(B, C, T, H, W) noisy input -> (B, C + 1, T, H, W): given frames clean, then the marker."""
        B, _, T, H, W = x.shape
        given = None if cond is None else cond.get("given")
        if given is None:
            return torch.cat([x, x.new_zeros(B, 1, T, H, W)], dim=1)
        frames = cond.get("frames")
        if given.shape != (B, 1, T, 1, 1):
            raise ValueError(f"cond['given'] must be (B, 1, T, 1, 1) = {(B, 1, T, 1, 1)}, got {tuple(given.shape)}")
        if frames is None or frames.shape != x.shape:
            got = None if frames is None else tuple(frames.shape)
            raise ValueError(f"cond['given'] needs cond['frames'] shaped like the input {tuple(x.shape)}, got {got}")
        g = given.to(x.dtype).expand(B, 1, T, H, W)
        return torch.cat([torch.lerp(x, frames.to(x.dtype), g), g], dim=1)

    def repeated_blocks(self) -> list[nn.Module]:
        """The space-time blocks, for activation checkpointing, compile and FSDP (``find_blocks``)."""
        return list(self.blocks)

    def forward(self, x: Tensor, c_noise: Tensor, cond: dict[str, Tensor] | None = None) -> Tensor:
        grid = self.check_shape(x)
        pt, ph, pw = self.patch
        B = x.shape[0]
        if self.context:
            x = self.with_context(x, cond)  # (B, C + 1, T, H, W)
        tokens = rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
        h = self.embed(tokens)  # (B, L, D)
        c = self.condition(c_noise, cond, B)  # (B, D)
        rope = rope_angles(grid, h.shape[-1] // self.heads).to(h.device)  # (L, Dh/2)
        for block in self.blocks:
            h = block(h, c, grid, rope)  # (B, L, D)
        shift, scale = self.final_ada(c)
        y = self.out(modulate(self.final_norm(h), shift, scale))  # (B, L, C*pt*ph*pw)
        t, hh, ww = grid
        return rearrange(y, "b (t h w) (c pt ph pw) -> b c (t pt) (h ph) (w pw)",
                         t=t, h=hh, w=ww, pt=pt, ph=ph, pw=pw)


def _tiny(**kw) -> VideoDiT:
    return VideoDiT(dim=48, depth=2, heads=4, **kw)


def _xs(**kw) -> VideoDiT:
    return VideoDiT(dim=128, depth=4, heads=4, **kw)


def _s(**kw) -> VideoDiT:
    return VideoDiT(dim=384, depth=12, heads=6, **kw)


def _b(**kw) -> VideoDiT:
    return VideoDiT(dim=768, depth=12, heads=12, **kw)


PRESETS = {"tiny": _tiny, "XS": _xs, "S": _s, "B": _b}

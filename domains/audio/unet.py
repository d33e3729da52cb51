"""A small U-Net over log-mel spectrograms (mel x time), conditioned on the noise level and the
class through FiLM (scale, shift) in every residual block; the class uses
``core.nn.ClassEmbedding`` whose null row is taken wherever ``cond["drop"]`` is True, so
classifier-free guidance works.

Two layouts of the same network:
* ``"2d"``: one input channel, 2-D convolutions; each level halves mel and time.
* ``"1d"``: the mel bins are the input channels, 1-D convolutions over time; each level halves
  time only. About an order of magnitude cheaper per example, which is what CPU training needs
  (see benchmarks/audio_architecture.py for the measurement).
The time length must be a multiple of ``time_stride = 2 ** (len(mults) - 1)`` (and, in 2d, the
mel bins too)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from typing import Literal

from einops import rearrange
from torch import Tensor, nn

from diffsuite.core.nn import Attention, ClassEmbedding, NoiseEmbedding


Layout = Literal["1d", "2d"]


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, ch), ch)


def _conv(layout: Layout, c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Module:
    conv = nn.Conv1d if layout == "1d" else nn.Conv2d
    return conv(c_in, c_out, kernel, stride=stride, padding=kernel // 2)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, *, emb_dim: int, layout: Layout, dropout: float = 0.0):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in), _conv(layout, c_in, c_out)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2, self.conv2 = _norm(c_out), _conv(layout, c_out, c_out)
        self.dropout = nn.Dropout(dropout)
        self.skip = _conv(layout, c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # the block starts as its skip path
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C, M, T) or (B, C, T)
        scale, shift = rearrange(self.film(emb), "b (two c) -> two b c", two=2)  # (B, C) each
        scale, shift = (t.reshape(*t.shape, *[1] * (h.ndim - 2)) for t in (scale, shift))
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over all positions (mel x time, or time) of the coarsest level."""

    def __init__(self, ch: int, *, heads: int):
        super().__init__()
        self.norm = _norm(ch)
        self.attn = Attention(ch, heads=heads)
        nn.init.zeros_(self.attn.out.weight)
        nn.init.zeros_(self.attn.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = rearrange(self.norm(x), "b c ... -> b (...) c")  # (B, L, C), L = M*T or T
        return x + self.attn(h).transpose(1, 2).reshape(x.shape)  # (B, C, M, T) or (B, C, T)


class SpectrogramUNet(nn.Module):
    def __init__(self, *, num_classes: int, n_mels: int, layout: Layout = "1d", channels: int = 32,
                 mults: tuple[int, ...] = (1, 2, 2), blocks: int = 1, attention: bool = True, heads: int = 4,
                 emb_dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        if layout not in ("1d", "2d"):
            raise ValueError(f"unknown U-Net layout {layout!r}; expected '1d' or '2d'")
        emb_dim = emb_dim or 4 * channels
        self.num_classes, self.n_mels, self.layout = num_classes, n_mels, layout
        self.time_stride = 2 ** (len(mults) - 1)
        self.noise_emb = NoiseEmbedding(emb_dim)
        self.class_emb = ClassEmbedding(num_classes, emb_dim) if num_classes > 0 else None  # no unused parameters under DDP
        io = n_mels if layout == "1d" else 1
        block = lambda a, b: ResBlock(a, b, emb_dim=emb_dim, layout=layout, dropout=dropout)  # noqa: E731
        self.stem = _conv(layout, io, channels)
        chans = [channels * m for m in mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        skips, c = [channels], channels
        for i, ch in enumerate(chans):
            level = nn.ModuleList()
            for _ in range(blocks):
                level.append(block(c, ch))
                c = ch
                skips.append(c)
            self.down.append(level)
            last = i == len(chans) - 1
            self.downsample.append(nn.Identity() if last else _conv(layout, c, c, 3, stride=2))
            if not last:
                skips.append(c)
        self.mid1 = block(c, c)
        self.mid_attn = AttentionBlock(c, heads=heads) if attention else nn.Identity()
        self.mid2 = block(c, c)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, ch in reversed(list(enumerate(chans))):
            level = nn.ModuleList()
            for _ in range(blocks + 1):
                level.append(block(c + skips.pop(), ch))
                c = ch
            self.up.append(level)
            self.upsample.append(nn.Identity() if i == 0 else _conv(layout, c, c))
        self.out_norm, self.out = _norm(c), _conv(layout, c, io)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def repeated_blocks(self) -> list[nn.Module]:
        """The residual and attention blocks, for activation checkpointing, compile and FSDP
        (``core.training.parallelize.find_blocks``): not the nested lists that hold them."""
        mid = [self.mid1] + ([] if isinstance(self.mid_attn, nn.Identity) else [self.mid_attn]) + [self.mid2]
        return [b for level in self.down for b in level] + mid + [b for level in self.up for b in level]

    def embed(self, c_noise: Tensor, cond: dict[str, Tensor] | None, batch: int) -> Tensor:
        emb = self.noise_emb(c_noise.expand(batch) if c_noise.ndim == 0 else c_noise)  # (B, E)
        if self.num_classes > 0:
            labels = None if cond is None else cond.get("class")
            if labels is None:  # no class given: the null condition
                labels = torch.full((batch,), -1, dtype=torch.long, device=emb.device)
            emb = emb + self.class_emb(labels.long(), None if cond is None else cond.get("drop"))
        return emb

    def forward(self, x: Tensor, c_noise: Tensor, cond: dict[str, Tensor] | None = None) -> Tensor:
        B, _, M, Tn = x.shape  # (B, 1, M, T)
        if M != self.n_mels:
            raise ValueError(f"the network was built for {self.n_mels} mel bins, got {M}")
        if Tn % self.time_stride or (self.layout == "2d" and M % self.time_stride):
            raise ValueError(f"frames {Tn} (and in 2d mel bins {M}) must be multiples of the U-Net stride {self.time_stride}")
        emb = self.embed(c_noise, cond, B)  # (B, E)
        if self.layout == "1d":
            x = rearrange(x, "b 1 m t -> b m t")  # mel bins as channels
        h = self.stem(x)  # (B, C, M, T) or (B, C, T)
        hs = [h]
        for level, down in zip(self.down, self.downsample):
            for block in level:
                h = block(h, emb)
                hs.append(h)
            if not isinstance(down, nn.Identity):
                h = down(h)  # (B, C, M/2, T/2) or (B, C, T/2)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)  # (B, C, M/s, T/s)
        for level, up in zip(self.up, self.upsample):
            for block in level:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, C, 2M, 2T) or (B, C, 2T)
        out = self.out(F.silu(self.out_norm(h)))  # (B, 1, M, T) or (B, M, T)
        return rearrange(out, "b m t -> b 1 m t") if self.layout == "1d" else out


def unet_xs(num_classes: int, n_mels: int, dropout: float = 0.0) -> SpectrogramUNet:
    return SpectrogramUNet(num_classes=num_classes, n_mels=n_mels, layout="1d", channels=32, mults=(1, 2),
                           blocks=1, attention=False, dropout=dropout)


def unet_s(num_classes: int, n_mels: int, dropout: float = 0.0) -> SpectrogramUNet:
    return SpectrogramUNet(num_classes=num_classes, n_mels=n_mels, layout="1d", channels=64, mults=(1, 2, 2),
                           blocks=1, attention=True, dropout=dropout)


def unet_s2(num_classes: int, n_mels: int, dropout: float = 0.0) -> SpectrogramUNet:
    """S widened to 96 channels with two blocks a level (7 M parameters): the spoken-digit (FSDD) model."""
    return SpectrogramUNet(num_classes=num_classes, n_mels=n_mels, layout="1d", channels=96, mults=(1, 2, 2),
                           blocks=2, attention=True, dropout=dropout)


def unet_m(num_classes: int, n_mels: int, dropout: float = 0.0) -> SpectrogramUNet:
    return SpectrogramUNet(num_classes=num_classes, n_mels=n_mels, layout="1d", channels=128, mults=(1, 2, 2, 2),
                           blocks=2, attention=True, dropout=dropout)


def unet2d_s(num_classes: int, n_mels: int, dropout: float = 0.0) -> SpectrogramUNet:
    return SpectrogramUNet(num_classes=num_classes, n_mels=n_mels, layout="2d", channels=24, mults=(1, 2, 2),
                           blocks=1, attention=True, dropout=dropout)


def unet2d_m(num_classes: int, n_mels: int, dropout: float = 0.0) -> SpectrogramUNet:
    return SpectrogramUNet(num_classes=num_classes, n_mels=n_mels, layout="2d", channels=64, mults=(1, 2, 2, 4),
                           blocks=2, attention=True, dropout=dropout)


PRESETS = {"XS": unet_xs, "S": unet_s, "S2": unet_s2, "M": unet_m, "2D-S": unet2d_s, "2D-M": unet2d_m}

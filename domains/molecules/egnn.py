"""An E(n)-equivariant graph network (Satorras et al. 2021, as used by EDM) in plain PyTorch.

Atoms form a fully connected graph (per molecule, padding masked out). Messages depend only on
invariant features and squared distances; coordinates move only by ``(p_i - p_j) * scalar``, so
the network is equivariant to rotations, reflections, translations and atom permutations by
construction (the test in ``tests/molecules`` checks it numerically).

Raw-network contract: ``net(x_in, c_noise, cond) -> F`` with ``x_in`` (B, N, 3 + F): positions
then atom features. The position output is translation invariant and has zero weighted mean over
the frame's centre atoms (``cond["centre"]``, default all real atoms), so the denoiser keeps
samples in the zero-centre-of-mass subspace.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .conditioning import MoleculeConditioning, centre_weights, node_mask, weighted_centre


class EGNNLayer(nn.Module):
    def __init__(self, *, dim: int, coord_range: float = 10.0, norm: float = 10.0):
        super().__init__()
        self.coord_range, self.norm = coord_range, norm
        # the first edge layer on [h_i, h_j, r2, r2_0] is split into per-node projections added
        # on the edges: the same function as one Linear on the concatenation, N times cheaper
        self.edge_i = nn.Linear(dim, dim)
        self.edge_j = nn.Linear(dim, dim, bias=False)
        self.edge_r = nn.Linear(2, dim, bias=False)
        self.edge = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())
        self.gate = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())
        self.node = nn.Sequential(nn.Linear(3 * dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.coord = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1, bias=False))
        nn.init.xavier_uniform_(self.coord[2].weight, gain=0.001)

    def forward(self, h: Tensor, p: Tensor, c: Tensor, d0: Tensor, emask: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        diff = p[:, :, None] - p[:, None, :]  # (B, N, N, 3)
        r2 = diff.pow(2).sum(-1, keepdim=True)  # (B, N, N, 1)
        pre = self.edge_i(h)[:, :, None] + self.edge_j(h)[:, None, :] + self.edge_r(torch.cat([r2, d0], dim=-1))
        m = self.edge(pre)  # (B, N, N, D)
        m = m * self.gate(m) * emask  # (B, N, N, D)
        agg = m.sum(2) / self.norm  # (B, N, D)
        h = (h + self.node(torch.cat([h, agg, c[:, None].expand_as(h)], dim=-1))) * mask  # (B, N, D)
        w = torch.tanh(self.coord(m)) * self.coord_range  # (B, N, N, 1)
        step = (diff / (r2.add(1e-8).sqrt() + 1) * w * emask).sum(2) / self.norm  # (B, N, 3)
        return h, (p + step) * mask


class EGNN(nn.Module):
    def __init__(self, *, feature_dim: int, dim: int = 64, depth: int = 4, conditioned: bool = False):
        super().__init__()
        self.feature_dim = feature_dim
        self.cond = MoleculeConditioning(dim=dim, conditioned=conditioned)
        self.embed = nn.Linear(feature_dim, dim)
        self.layers = nn.ModuleList(EGNNLayer(dim=dim) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, feature_dim))

    def repeated_blocks(self) -> list[nn.Module]:
        """The message-passing layers, for activation checkpointing, compile and FSDP (``find_blocks``)."""
        return list(self.layers)

    def forward(self, x: Tensor, c_noise: Tensor, cond: dict[str, Tensor] | None = None) -> Tensor:
        mask = node_mask(x, cond)  # (B, N, 1)
        w = centre_weights(mask, cond)  # (B, N, 1)
        N = x.shape[1]
        emask = mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(N, device=x.device, dtype=x.dtype))[None, :, :, None]
        p0 = weighted_centre(x[..., :3], w) * mask  # (B, N, 3)
        c = self.cond(c_noise, cond)  # (B, D)
        h = (self.embed(x[..., 3:]) + c[:, None]) * mask  # (B, N, D)
        d0 = (p0[:, :, None] - p0[:, None, :]).pow(2).sum(-1, keepdim=True)  # (B, N, N, 1)
        p = p0
        for layer in self.layers:
            h, p = layer(h, p, c, d0, emask, mask)
        dp = weighted_centre(p - p0, w) * mask  # (B, N, 3) translation invariant, zero mean over the centre
        feats = self.head(h) * mask  # (B, N, F)
        return torch.cat([dp, feats], dim=-1)  # (B, N, 3 + F)


def egnn_xs(**kw) -> EGNN:
    return EGNN(dim=32, depth=2, **kw)


def egnn_s(**kw) -> EGNN:
    return EGNN(dim=64, depth=4, **kw)


def egnn_m(**kw) -> EGNN:
    return EGNN(dim=128, depth=6, **kw)


def egnn_l(**kw) -> EGNN:  # EDM's QM9 size: 256 features, 9 layers
    return EGNN(dim=256, depth=9, **kw)


EGNN_PRESETS = {"XS": egnn_xs, "S": egnn_s, "M": egnn_m, "L": egnn_l}

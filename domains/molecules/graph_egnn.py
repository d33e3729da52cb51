"""A joint E(3)-equivariant network over atoms *and* atom pairs: positions, atom types, formal
charges and bond types, denoised together (the ``bonds=true`` model of the molecules domain).

It is the EGNN of ``egnn.py`` with an edge state: every atom pair carries a feature vector that
starts from the pair's noisy bond channels and a radial basis of its distance, enters each
message, and is updated by it (as MiDi, EQGAT-diff and SemlaFlow keep edge features beside the
node features). Coordinates move only by ``(p_i - p_j) * scalar``; all other inputs are distances
and invariant channels, so positions are equivariant and types, charges and bonds invariant to
rotations, reflections and translations, and every output permutes with the atoms. The bond
output reads ``e_ij + e_ji``: symmetric by construction.

Raw-network contract as ``egnn.EGNN``, with the joint layout of ``dataset.JointEncoding``:
``x_in`` (B, N, 3 + A + N * K), the last N * K channels of atom i being its bond row to every atom.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from .conditioning import MoleculeConditioning, centre_weights, node_mask, weighted_centre


class RadialBasis(nn.Module):
    """Gaussians of a distance at fixed centres: lets a linear layer tell 1.2 from 1.5 Angstrom."""

    def __init__(self, count: int = 16, cutoff: float = 3.0):
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, cutoff, count), persistent=False)
        self.width = cutoff / count

    def forward(self, r: Tensor) -> Tensor:  # (..., 1) -> (..., count)
        return torch.exp(-((r - self.centres) / self.width) ** 2)


class GraphEGNNLayer(nn.Module):
    def __init__(self, *, dim: int, edge_dim: int, rbf: int, coord_range: float = 10.0, norm: float = 10.0):
        super().__init__()
        self.coord_range, self.norm = coord_range, norm
        # the first message layer on [h_i, h_j, e_ij, r2, r2_0, rbf(r)] split into per-node and
        # per-pair projections added on the pairs (one Linear on the concatenation, cheaper)
        self.msg_i = nn.Linear(dim, dim)
        self.msg_j = nn.Linear(dim, dim, bias=False)
        self.msg_e = nn.Linear(edge_dim + 2 + rbf, dim, bias=False)
        self.msg = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())
        self.gate = nn.Sequential(nn.Linear(dim, 1), nn.Sigmoid())
        self.node = nn.Sequential(nn.Linear(3 * dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.edge = nn.Sequential(nn.Linear(dim, edge_dim), nn.SiLU(), nn.Linear(edge_dim, edge_dim))
        self.edge_norm = nn.LayerNorm(edge_dim)
        self.coord = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, 1, bias=False))
        nn.init.xavier_uniform_(self.coord[2].weight, gain=0.001)

    def forward(self, h: Tensor, e: Tensor, p: Tensor, c: Tensor, d0: Tensor, rbf: nn.Module, emask: Tensor,
                mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        diff = p[:, :, None] - p[:, None, :]  # (B, N, N, 3)
        r2 = diff.pow(2).sum(-1, keepdim=True)  # (B, N, N, 1)
        r = r2.add(1e-8).sqrt()  # (B, N, N, 1)
        pair = torch.cat([e, r2, d0, rbf(r)], dim=-1)  # (B, N, N, E + 2 + R)
        pre = self.msg_i(h)[:, :, None] + self.msg_j(h)[:, None, :] + self.msg_e(pair)  # (B, N, N, D)
        m = self.msg(pre)  # (B, N, N, D)
        m = m * self.gate(m) * emask  # (B, N, N, D)
        agg = m.sum(2) / self.norm  # (B, N, D)
        h = (h + self.node(torch.cat([h, agg, c[:, None].expand_as(h)], dim=-1))) * mask  # (B, N, D)
        e = self.edge_norm(e + self.edge(m)) * emask  # (B, N, N, E)
        w = torch.tanh(self.coord(m)) * self.coord_range  # (B, N, N, 1)
        step = (diff / (r + 1) * w * emask).sum(2) / self.norm  # (B, N, 3)
        return h, e, (p + step) * mask


class GraphEGNN(nn.Module):
    """atom_dim: type + charge channels; bond_classes: K (none, single, double, triple)."""

    def __init__(self, *, atom_dim: int, bond_classes: int = 4, dim: int = 64, edge_dim: int = 32, depth: int = 4,
                 rbf: int = 16, conditioned: bool = False):
        super().__init__()
        self.atom_dim, self.K = atom_dim, bond_classes
        self.cond = MoleculeConditioning(dim=dim, conditioned=conditioned)
        self.rbf = RadialBasis(rbf)
        self.embed = nn.Linear(atom_dim, dim)
        self.embed_edge = nn.Linear(bond_classes, edge_dim)
        self.layers = nn.ModuleList(GraphEGNNLayer(dim=dim, edge_dim=edge_dim, rbf=rbf) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, atom_dim))
        self.edge_head = nn.Sequential(nn.Linear(edge_dim, edge_dim), nn.SiLU(), nn.Linear(edge_dim, bond_classes))

    def repeated_blocks(self) -> list[nn.Module]:
        """The message-passing layers, for activation checkpointing, compile and FSDP (``find_blocks``)."""
        return list(self.layers)

    def forward(self, x: Tensor, c_noise: Tensor, cond: dict[str, Tensor] | None = None) -> Tensor:
        B, N, _ = x.shape
        A, K = self.atom_dim, self.K
        if x.shape[-1] != 3 + A + N * K:
            raise ValueError(f"joint input has {x.shape[-1]} channels, expected 3 + {A} + {N} x {K} for {N} atoms")
        mask = node_mask(x, cond)  # (B, N, 1)
        w = centre_weights(mask, cond)  # (B, N, 1)
        emask = mask[:, :, None] * mask[:, None, :] * (1 - torch.eye(N, device=x.device, dtype=x.dtype))[None, :, :, None]
        p0 = weighted_centre(x[..., :3], w) * mask  # (B, N, 3)
        bonds = rearrange(x[..., 3 + A:], "b i (j k) -> b i j k", k=K)  # (B, N, N, K)
        bonds = (bonds + bonds.transpose(1, 2)) / 2  # symmetric whatever the sampler did
        c = self.cond(c_noise, cond)  # (B, D)
        h = (self.embed(x[..., 3:3 + A]) + c[:, None]) * mask  # (B, N, D)
        e = self.embed_edge(bonds) * emask  # (B, N, N, E)
        d0 = (p0[:, :, None] - p0[:, None, :]).pow(2).sum(-1, keepdim=True)  # (B, N, N, 1)
        p = p0
        for layer in self.layers:
            h, e, p = layer(h, e, p, c, d0, self.rbf, emask, mask)
        dp = weighted_centre(p - p0, w) * mask  # (B, N, 3) translation invariant, zero mean over the centre
        atoms = self.head(h) * mask  # (B, N, A)
        pair = self.edge_head(e + e.transpose(1, 2)) * emask  # (B, N, N, K) symmetric
        return torch.cat([dp, atoms, rearrange(pair, "b i j k -> b i (j k)")], dim=-1)  # (B, N, 3 + A + N K)


def graph_egnn_xs(**kw) -> GraphEGNN:
    return GraphEGNN(dim=32, edge_dim=16, depth=2, rbf=8, **kw)


def graph_egnn_s(**kw) -> GraphEGNN:
    return GraphEGNN(dim=64, edge_dim=32, depth=4, **kw)


def graph_egnn_m(**kw) -> GraphEGNN:
    return GraphEGNN(dim=128, edge_dim=64, depth=6, **kw)


GRAPH_EGNN_PRESETS = {"XS": graph_egnn_xs, "S": graph_egnn_s, "M": graph_egnn_m}

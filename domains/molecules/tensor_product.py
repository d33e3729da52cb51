"""An e3nn tensor-product network: node features are irreps (scalars ``0e`` and vectors ``1o``),
messages are tensor products of a neighbour's features with the spherical harmonics of the edge
direction, weighted by an MLP of the edge length and both atoms' scalars (as in Tensor Field
Networks / NequIP). The position output is the node's ``1o`` vector, built from relative vectors
only, so the network is E(3)-equivariant (reflections included, through the parities).

Same raw-network contract as ``egnn.EGNN``.
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import Gate
from torch import Tensor, nn

from .conditioning import MoleculeConditioning, centre_weights, node_mask, weighted_centre


class TPLayer(nn.Module):
    def __init__(self, *, irreps: o3.Irreps, scalars: int, vectors: int, basis: int, norm: float = 10.0):
        super().__init__()
        self.basis, self.norm, self.scalars = basis, norm, scalars
        self.sh = o3.Irreps.spherical_harmonics(1)  # 1x0e + 1x1o
        gated = o3.Irreps(f"{scalars}x0e + {vectors}x0e + {vectors}x1o")
        self.tp = o3.FullyConnectedTensorProduct(irreps, self.sh, gated, shared_weights=False)
        self.radial = nn.Sequential(nn.Linear(basis + 2 * scalars, 64), nn.SiLU(), nn.Linear(64, self.tp.weight_numel))
        self.gate = Gate(f"{scalars}x0e", [nn.functional.silu], f"{vectors}x0e", [torch.sigmoid], f"{vectors}x1o")
        self.self_mix = o3.Linear(irreps, irreps)

    def forward(self, h: Tensor, p: Tensor, src: Tensor, dst: Tensor, num_nodes: int) -> Tensor:
        vec = p[src] - p[dst]  # (E, 3) from receiver to sender
        r = vec.norm(dim=-1)  # (E,)
        sh = o3.spherical_harmonics(self.sh, vec, normalize=True, normalization="component")  # (E, 4)
        emb = soft_one_hot_linspace(r, 0.0, 6.0, self.basis, basis="gaussian", cutoff=False)  # (E, basis)
        s = h[:, : self.scalars]  # (V, scalars) invariant part
        w = self.radial(torch.cat([emb, s[src], s[dst]], dim=-1))  # (E, weight_numel)
        msg = self.tp(h[src], sh, w)  # (E, gated dim)
        agg = torch.zeros(num_nodes, msg.shape[-1], device=h.device, dtype=msg.dtype).index_add_(0, dst, msg) / self.norm
        return self.self_mix(h) + self.gate(agg)  # (V, irreps dim)


class TensorProductNet(nn.Module):
    def __init__(self, *, feature_dim: int, scalars: int = 32, vectors: int = 8, depth: int = 3, basis: int = 16,
                 conditioned: bool = False):
        super().__init__()
        self.scalars = scalars
        self.irreps = o3.Irreps(f"{scalars}x0e + {vectors}x1o")
        self.cond = MoleculeConditioning(dim=scalars, conditioned=conditioned)
        self.embed = nn.Linear(feature_dim, scalars)
        self.layers = nn.ModuleList(TPLayer(irreps=self.irreps, scalars=scalars, vectors=vectors, basis=basis)
                                    for _ in range(depth))
        self.to_vector = o3.Linear(self.irreps, o3.Irreps("1x1o"))
        self.head = nn.Sequential(nn.LayerNorm(scalars), nn.Linear(scalars, scalars), nn.SiLU(), nn.Linear(scalars, feature_dim))

    def repeated_blocks(self) -> list[nn.Module]:
        """The message-passing layers, for activation checkpointing, compile and FSDP (``find_blocks``)."""
        return list(self.layers)

    def forward(self, x: Tensor, c_noise: Tensor, cond: dict[str, Tensor] | None = None) -> Tensor:
        B, N, _ = x.shape
        mask = node_mask(x, cond)  # (B, N, 1)
        w = centre_weights(mask, cond)  # (B, N, 1)
        p = weighted_centre(x[..., :3], w).reshape(B * N, 3)  # (V, 3), V = B * N
        c = self.cond(c_noise, cond)  # (B, S)
        scal = self.embed(x[..., 3:]) + c[:, None]  # (B, N, S)
        h = torch.cat([scal.reshape(B * N, -1), x.new_zeros(B * N, self.irreps.dim - self.scalars)], dim=-1)  # (V, irreps)
        pair = (mask[:, :, None, 0] * mask[:, None, :, 0]) * (1 - torch.eye(N, device=x.device, dtype=x.dtype))  # (B, N, N)
        b, i, j = pair.nonzero(as_tuple=True)  # real edges only
        dst, src = b * N + i, b * N + j  # (E,)
        for layer in self.layers:
            h = layer(h, p, src, dst, B * N) * mask.reshape(B * N, 1)
        dp = self.to_vector(h).reshape(B, N, 3)  # (B, N, 3)
        dp = weighted_centre(dp, w) * mask
        feats = self.head(h[:, : self.scalars]).reshape(B, N, -1) * mask  # (B, N, F)
        return torch.cat([dp, feats], dim=-1)  # (B, N, 3 + F)


def tp_xs(**kw) -> TensorProductNet:
    return TensorProductNet(scalars=16, vectors=4, depth=2, basis=8, **kw)


def tp_s(**kw) -> TensorProductNet:
    return TensorProductNet(scalars=32, vectors=8, depth=3, **kw)


def tp_m(**kw) -> TensorProductNet:
    return TensorProductNet(scalars=64, vectors=16, depth=4, **kw)


TP_PRESETS = {"XS": tp_xs, "S": tp_s, "M": tp_m}

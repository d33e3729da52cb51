"""Molecules as padded arrays, and the model-space encoding shared by training and sampling.

Model space, per atom: ``[p / position_scale, one_hot(element) * type_scale, charge * charge_scale]``
(the charge channel only when the vocabulary has charged atoms). Positions are centred on the
molecule's centre of mass (unit weights, as EDM), so data lives in the zero-CoM subspace.

The joint model (``bonds=true``, ``JointEncoding``) adds formal charges as a one-hot and the bond
graph: atom i's row ends with its bond one-hots to every atom j of the batch's N atoms
(``[none, single, double, triple] * bond_scale``), so ``x`` is (B, N, 3 + E + C + N * K) and every
core sampler denoises bonds with the atoms (a continuous relaxation of the categories in sigma
space, as JODO does). Each pair appears twice, (i, j) and (j, i); the noise hook draws it
symmetric and the network's output is symmetric, so the pair stays equal through sampling.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .molecule import Molecule
from .vocabulary import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encoding:
    vocabulary: Vocabulary
    position_scale: float = 2.8  # Angstrom per model unit: QM9 coordinates (std 1.40 A) -> std 0.5
    type_scale: float = 0.25
    charge_scale: float = 0.25

    def encode(self, positions: Tensor, types: Tensor, charges: Tensor, mask: Tensor) -> Tensor:
        """positions (B, N, 3) A, types/charges (B, N) long, mask (B, N, 1) -> x (B, N, 3 + F)."""
        centre = (positions * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 3)
        pos = (positions - centre) / self.position_scale  # (B, N, 3)
        E = len(self.vocabulary.elements)
        onehot = torch.nn.functional.one_hot(types.clamp_min(0), E).float() * self.type_scale  # (B, N, E)
        parts = [pos, onehot]
        if self.vocabulary.charged:
            parts.append(charges.float()[..., None] * self.charge_scale)  # (B, N, 1)
        return torch.cat(parts, dim=-1) * mask

    def decode_one(self, x: Tensor, n: int, name: str = "") -> Molecule:
        """One sample's (N, 3 + F) model-space rows -> a Molecule of its first `n` atoms."""
        v = self.vocabulary
        E = len(v.elements)
        x = x[:n].double().cpu()
        pos = x[:, :3].numpy() * self.position_scale
        types = x[:, 3:3 + E].argmax(-1).numpy()
        charges = np.zeros(n, dtype=np.int64)
        if v.charged:
            allowed = np.array(v.charges)
            raw = x[:, 3 + E].numpy() / self.charge_scale
            charges = allowed[np.abs(raw[:, None] - allowed[None]).argmin(1)]
        return Molecule([v.elements[t] for t in types], pos, charges, name=name)


BOND_CLASSES = 4  # none, single, double, triple (Kekule)


@dataclass(frozen=True)
class JointEncoding:
    """Positions, one-hot element, one-hot formal charge and the bond rows in one tensor.

    The per-modality scales emulate per-modality noise schedules in the core's single sigma: a
    modality with a larger scale has a higher signal-to-noise ratio at every sigma, so it
    resolves earlier in sampling (MiDi's finding: positions and bonds before types and charges).
    ``loss_weights`` are MiDi's and EQGAT-diff's per-modality loss weights (positions 3, types
    0.4, charges 1, bonds 2), each spread over its channels and pairs, times
    ``(sigma_data / scale)^2`` so that a weight means the same at any scale.
    """

    vocabulary: Vocabulary
    position_scale: float = 2.8
    type_scale: float = 0.25
    charge_scale: float = 0.25
    bond_scale: float = 0.5
    weights: tuple[float, float, float, float] = (3.0, 0.4, 1.0, 2.0)  # positions, types, charges, bonds

    @property
    def atom_dim(self) -> int:
        return len(self.vocabulary.elements) + len(self.vocabulary.charges)

    def channels(self, n_atoms: int) -> int:
        return 3 + self.atom_dim + n_atoms * BOND_CLASSES

    def encode(self, positions: Tensor, types: Tensor, charges: Tensor, bonds: Tensor, mask: Tensor) -> Tensor:
        """positions (B, N, 3) A, types/charges (B, N) long (charges as values), bonds (B, N, N)
        orders 0-3, mask (B, N, 1) -> x (B, N, 3 + E + C + N * K)."""
        B, N, _ = positions.shape
        v = self.vocabulary
        centre = (positions * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp_min(1)  # (B, 1, 3)
        pos = (positions - centre) / self.position_scale  # (B, N, 3)
        F = torch.nn.functional.one_hot
        onehot = F(types.clamp_min(0), len(v.elements)).float() * self.type_scale  # (B, N, E)
        cidx = torch.as_tensor(v.charges, device=charges.device)
        q = (charges[..., None] == cidx).float().argmax(-1)  # (B, N) index into the vocabulary's charges
        qhot = F(q, len(v.charges)).float() * self.charge_scale  # (B, N, C)
        pair = (mask[:, :, None, 0] * mask[:, None, :, 0] * (1 - torch.eye(N, device=mask.device)))[..., None]  # (B, N, N, 1)
        bhot = F(bonds.long().clamp(0, BOND_CLASSES - 1), BOND_CLASSES).float() * self.bond_scale * pair  # (B, N, N, K)
        return torch.cat([pos * mask, onehot * mask, qhot * mask, bhot.reshape(B, N, N * BOND_CLASSES)], dim=-1)

    def loss_weights(self, mask: Tensor, sigma_data: float) -> Tensor:
        """(B, N, 1) atom mask -> (B, N, channels) per-element loss weights, zero on padding and
        on each atom's pair with itself."""
        B, N, _ = mask.shape
        v = self.vocabulary
        wx, wa, wc, wb = self.weights
        E, C = len(v.elements), len(v.charges)
        n = mask.sum(1, keepdim=True)  # (B, 1, 1)
        pair = mask[:, :, None, 0] * mask[:, None, :, 0] * (1 - torch.eye(N, device=mask.device))  # (B, N, N)
        per_pair = wb * (sigma_data / self.bond_scale) ** 2 / (BOND_CLASSES * (n - 1).clamp_min(1))  # (B, 1, 1)
        parts = [mask.expand(B, N, 3) * wx / 3,  # positions are scaled to std sigma_data already
                 mask.expand(B, N, E) * wa * (sigma_data / self.type_scale) ** 2 / E,
                 mask.expand(B, N, C) * wc * (sigma_data / self.charge_scale) ** 2 / C,
                 (pair * per_pair).repeat_interleave(BOND_CLASSES, dim=-1)]  # (B, N, N K)
        return torch.cat(parts, dim=-1)

    def split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x (..., N, channels) -> positions (.., N, 3), types (.., N, E), charges (.., N, C), bonds (.., N, N, K)."""
        E, A, N = len(self.vocabulary.elements), self.atom_dim, x.shape[-2]
        bonds = x[..., 3 + A:].reshape(*x.shape[:-1], N, BOND_CLASSES)
        return x[..., :3], x[..., 3:3 + E], x[..., 3 + E:3 + A], bonds

    def decode_one(self, x: Tensor, n: int, name: str = "") -> Molecule:
        """One sample's (N, channels) rows -> a Molecule of its first `n` atoms, with its bonds."""
        v = self.vocabulary
        pos, types, charges, bonds = self.split(x.double().cpu())
        b = bonds[:n, :n]  # (n, n, K)
        orders = ((b + b.transpose(0, 1)) / 2).argmax(-1).numpy()
        np.fill_diagonal(orders, 0)
        return Molecule([v.elements[t] for t in types[:n].argmax(-1).numpy()], pos[:n].numpy() * self.position_scale,
                        np.array(v.charges)[charges[:n].argmax(-1).numpy()], name=name, bonds=orders)


class MoleculeSet(Dataset):
    """Padded arrays of a split; items are dicts of per-molecule tensors for ``collate``."""

    def __init__(self, *, positions: np.ndarray, types: np.ndarray, charges: np.ndarray, n_atoms: np.ndarray,
                 properties: np.ndarray | None = None, smiles: np.ndarray | None = None,
                 bonds: "dict[str, np.ndarray] | None" = None):
        self.positions, self.types, self.charges, self.n_atoms = positions, types, charges, n_atoms
        self.properties, self.smiles = properties, smiles
        # bonds: edge lists {bond_i, bond_j, bond_order, bond_count} in row order (graphs.py)
        self.bonds = bonds
        self._bond_start = None if bonds is None else np.concatenate([[0], np.cumsum(bonds["bond_count"])])

    def bond_matrix(self, i: int) -> np.ndarray:
        """(n, n) bond orders of molecule i."""
        n = int(self.n_atoms[i])
        out = np.zeros((n, n), dtype=np.int64)
        s, e = self._bond_start[i], self._bond_start[i + 1]
        a, b = self.bonds["bond_i"][s:e].astype(np.int64), self.bonds["bond_j"][s:e].astype(np.int64)
        out[a, b] = out[b, a] = self.bonds["bond_order"][s:e]
        return out

    def __len__(self) -> int:
        return len(self.n_atoms)

    @property
    def sizes(self) -> np.ndarray:
        """Atom counts: the trainer groups molecules of similar size into a batch (core/training/data.py),
        since a batch is padded to its largest molecule and the joint network's cost grows as atoms^2."""
        return self.n_atoms

    def __getitem__(self, i: int) -> dict:
        n = int(self.n_atoms[i])
        item = {"positions": torch.from_numpy(np.asarray(self.positions[i, :n], dtype=np.float32)),
                "types": torch.from_numpy(np.asarray(self.types[i, :n], dtype=np.int64)),
                "charges": torch.from_numpy(np.asarray(self.charges[i, :n], dtype=np.int64))}
        if self.properties is not None:
            item["property"] = float(self.properties[i])
        if self.bonds is not None:
            item["bonds"] = torch.from_numpy(self.bond_matrix(i))
        return item

    def molecules(self, vocabulary: Vocabulary) -> list[Molecule]:
        return [Molecule([vocabulary.elements[t] for t in self.types[i, :n]], self.positions[i, :n], self.charges[i, :n],
                         name=f"row{i}", bonds=None if self.bonds is None else self.bond_matrix(i))
                for i, n in enumerate(self.n_atoms)]


def edge_lists(matrices: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Dense bond matrices -> the edge lists MoleculeSet keeps."""
    ii, jj, kk, cnt = [], [], [], []
    for b in matrices:
        i, j = np.nonzero(np.triu(b, 1))
        ii.append(i), jj.append(j), kk.append(b[i, j]), cnt.append(len(i))
    cat = lambda v: np.concatenate(v) if v else np.zeros(0)  # noqa: E731
    return {"bond_i": cat(ii).astype(np.int16), "bond_j": cat(jj).astype(np.int16),
            "bond_order": cat(kk).astype(np.int8), "bond_count": np.array(cnt, np.int64)}


def from_molecules(mols: list[Molecule], vocabulary: Vocabulary, *, max_atoms: int | None = None,
                   property_name: str | None = None, bonds: bool = False) -> MoleculeSet:
    """Pad users' molecules; a molecule with an element or charge outside the vocabulary, too many
    atoms, or a missing property is reported and skipped. With `bonds`, a molecule without bonds
    of its own (XYZ) gets them perceived from its geometry (RDKit's xyz2mol, neutral), and is
    skipped if none fit."""
    from .graphs import perceive_graph

    keep = []
    for m in mols:
        try:
            if bonds and m.bonds is None:
                orders, charges = perceive_graph(m.elements, m.positions, where=m.name)
                m = Molecule(m.elements, m.positions, charges, name=m.name, properties=m.properties, bonds=orders)
            types = [vocabulary.index(e, m.name) for e in m.elements]
            for q in m.charges:
                vocabulary.check_charge(int(q), m.name)
            if max_atoms is not None and len(m) > max_atoms:
                raise ValueError(f"{m.name}: {len(m)} atoms, more than the model's maximum {max_atoms}")
            if property_name is not None and property_name not in m.properties:
                raise ValueError(f"{m.name}: no property {property_name!r} in the record")
            keep.append((m, types))
        except ValueError as e:
            log.warning("%s; skipped", e)
    if not keep:
        raise ValueError("no molecule fits the vocabulary and size limits")
    N = max(len(m) for m, _ in keep)
    M = len(keep)
    pos = np.zeros((M, N, 3), np.float32)
    typ = np.full((M, N), -1, np.int64)
    chg = np.zeros((M, N), np.int64)
    for k, (m, t) in enumerate(keep):
        pos[k, :len(m)], typ[k, :len(m)], chg[k, :len(m)] = m.positions, t, m.charges
    props = None if property_name is None else np.array([m.properties[property_name] for m, _ in keep], np.float32)
    graph = edge_lists([m.bonds for m, _ in keep]) if bonds else None
    return MoleculeSet(positions=pos, types=typ, charges=chg, n_atoms=np.array([len(m) for m, _ in keep]), properties=props,
                       bonds=graph)

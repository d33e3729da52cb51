"""Molecules as padded arrays, and the model-space encoding shared by training and sampling.

Model space, per atom: ``[p / position_scale, one_hot(element) * type_scale, charge * charge_scale]``
(the charge channel only when the vocabulary has charged atoms). Positions are centred on the
molecule's centre of mass (unit weights, as EDM), so data lives in the zero-CoM subspace.
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


class MoleculeSet(Dataset):
    """Padded arrays of a split; items are dicts of per-molecule tensors for ``collate``."""

    def __init__(self, *, positions: np.ndarray, types: np.ndarray, charges: np.ndarray, n_atoms: np.ndarray,
                 properties: np.ndarray | None = None, smiles: np.ndarray | None = None):
        self.positions, self.types, self.charges, self.n_atoms = positions, types, charges, n_atoms
        self.properties, self.smiles = properties, smiles

    def __len__(self) -> int:
        return len(self.n_atoms)

    def __getitem__(self, i: int) -> dict:
        n = int(self.n_atoms[i])
        item = {"positions": torch.from_numpy(np.asarray(self.positions[i, :n], dtype=np.float32)),
                "types": torch.from_numpy(np.asarray(self.types[i, :n], dtype=np.int64)),
                "charges": torch.from_numpy(np.asarray(self.charges[i, :n], dtype=np.int64))}
        if self.properties is not None:
            item["property"] = float(self.properties[i])
        return item

    def molecules(self, vocabulary: Vocabulary) -> list[Molecule]:
        return [Molecule([vocabulary.elements[t] for t in self.types[i, :n]], self.positions[i, :n], self.charges[i, :n],
                         name=f"row{i}") for i, n in enumerate(self.n_atoms)]


def from_molecules(mols: list[Molecule], vocabulary: Vocabulary, *, max_atoms: int | None = None,
                   property_name: str | None = None) -> MoleculeSet:
    """Pad users' molecules; a molecule with an element or charge outside the vocabulary, too many
    atoms, or a missing property is reported and skipped."""
    keep = []
    for m in mols:
        try:
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
    return MoleculeSet(positions=pos, types=typ, charges=chg, n_atoms=np.array([len(m) for m, _ in keep]), properties=props)

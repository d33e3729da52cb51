"""One molecule as a person's files hold it: elements, 3D positions (Angstrom), formal charges and,
when known, its bonds (a symmetric (N, N) matrix of Kekule orders 0-3)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Molecule:
    elements: list[str]
    positions: np.ndarray  # (N, 3) Angstrom
    charges: np.ndarray | None = None  # (N,) formal charges; None means all zero
    name: str = ""
    properties: dict[str, float] = field(default_factory=dict)
    bonds: np.ndarray | None = None  # (N, N) bond orders 0 none, 1, 2, 3; None: not known

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if len(self.elements) != len(self.positions):
            raise ValueError(f"molecule {self.name!r}: {len(self.elements)} elements but {len(self.positions)} positions")
        self.charges = np.zeros(len(self.elements), dtype=np.int64) if self.charges is None else np.asarray(self.charges, dtype=np.int64)
        if not np.isfinite(self.positions).all():
            raise ValueError(f"molecule {self.name!r}: non-finite coordinates")
        if self.bonds is not None:
            self.bonds = np.asarray(self.bonds, dtype=np.int64)
            n = len(self.elements)
            if self.bonds.shape != (n, n) or (self.bonds != self.bonds.T).any() or self.bonds.min(initial=0) < 0 \
                    or self.bonds.max(initial=0) > 3 or self.bonds.diagonal().any():
                raise ValueError(f"molecule {self.name!r}: bonds must be a symmetric ({n}, {n}) matrix of orders 0-3 "
                                 f"with an empty diagonal, got shape {self.bonds.shape}")

    def __len__(self) -> int:
        return len(self.elements)

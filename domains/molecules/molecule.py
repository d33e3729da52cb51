"""One molecule as a person's files hold it: elements, 3D positions (Angstrom), formal charges."""

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

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if len(self.elements) != len(self.positions):
            raise ValueError(f"molecule {self.name!r}: {len(self.elements)} elements but {len(self.positions)} positions")
        self.charges = np.zeros(len(self.elements), dtype=np.int64) if self.charges is None else np.asarray(self.charges, dtype=np.int64)
        if not np.isfinite(self.positions).all():
            raise ValueError(f"molecule {self.name!r}: non-finite coordinates")

    def __len__(self) -> int:
        return len(self.elements)

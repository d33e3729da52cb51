"""The element vocabulary: which elements (and formal charges) a model can place.

Atom features in model space are a one-hot over ``elements`` and, when the vocabulary allows
charged atoms, one scalar channel holding the formal charge.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vocabulary:
    elements: tuple[str, ...]
    charges: tuple[int, ...] = (0,)

    def __post_init__(self):
        if len(set(self.elements)) != len(self.elements) or not self.elements:
            raise ValueError(f"vocabulary elements must be distinct and non-empty, got {self.elements}")
        if 0 not in self.charges:
            raise ValueError(f"vocabulary charges must include 0, got {self.charges}")

    @property
    def charged(self) -> bool:
        return self.charges != (0,)

    @property
    def feature_dim(self) -> int:
        return len(self.elements) + int(self.charged)

    def index(self, element: str, where: str = "") -> int:
        try:
            return self.elements.index(element)
        except ValueError:
            raise ValueError(f"{where}: element {element!r} is outside the vocabulary {list(self.elements)}") from None

    def check_charge(self, charge: int, where: str = "") -> int:
        if charge not in self.charges:
            raise ValueError(f"{where}: formal charge {charge:+d} is outside the vocabulary charges {list(self.charges)}")
        return charge


def qm9_vocabulary() -> Vocabulary:
    return Vocabulary(elements=("H", "C", "N", "O", "F"))


def qm9_charged_vocabulary() -> Vocabulary:
    """QM9's elements with the formal charges its graphs carry (zwitterions: N+ and O-, C-)."""
    return Vocabulary(elements=("H", "C", "N", "O", "F"), charges=(-1, 0, 1))


def drug_vocabulary() -> Vocabulary:
    return Vocabulary(elements=("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I", "B", "Si"), charges=(-1, 0, 1))


VOCABULARIES = {"qm9": qm9_vocabulary, "qm9_charged": qm9_charged_vocabulary, "drug": drug_vocabulary}


def make_vocabulary(spec: "str | dict | Vocabulary") -> Vocabulary:
    """A preset name ("qm9", "drug") or ``{elements: [...], charges: [...]}``."""
    if isinstance(spec, Vocabulary):
        return spec
    if isinstance(spec, str):
        if spec not in VOCABULARIES:
            raise ValueError(f"unknown vocabulary {spec!r}; presets are {sorted(VOCABULARIES)} or a dict of elements/charges")
        return VOCABULARIES[spec]()
    return Vocabulary(elements=tuple(spec["elements"]), charges=tuple(int(c) for c in spec.get("charges", (0,))))

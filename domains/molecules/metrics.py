"""Sample quality under three named protocols, side by side, plus validity, connectivity,
uniqueness and novelty.

* ``edm_*`` -- EDM (Hoogeboom et al. 2022): bonds inferred from distances with EDM's length
  tables and margins (``bonds.py``), valences H1 C4 N3 O2 F1 (...), no formal charges; validity
  is RDKit sanitisation of that molecule. QM9's test split scores about 99.0 / 95.2 / 97.7.
* ``strict_*`` -- the molecule's *own* bonds and formal charges (those the model generated, or a
  file's bond block) against a strict charge-aware table: the bond-order sum must be a valence of
  the element at its charge (neutral C 4, N 3, O 2; N+ 4, O- 1, C+/C- 3, ...).
* ``midi_*`` -- the same own bonds and charges against MiDi's lenient table (Vignac et al. 2023),
  which also accepts neutral C with 3 bonds and neutral N with 2 (FlowMol#12 shows how much the
  leniency is worth).

A molecule without bonds of its own (an XYZ file, or a positions-only model's samples) is scored
on distance bonds in the own-bond protocols too; ``own_bonds`` says which fraction had their own.

Own-bond figures: ``validity`` (the whole molecule sanitises; its SMILES is the largest
fragment's, as MiDi and FlowMol count), ``connected_validity`` (valid and one fragment, as
SemlaFlow), ``uniqueness`` (distinct valid SMILES / valid), ``valid_x_unique``, ``novelty``
(unique SMILES not among the training SMILES / unique), ``connectivity``. SMILES are canonical,
hydrogens implicit, without stereo.
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
from rdkit import Chem, RDLogger
from scipy.sparse.csgraph import connected_components

from .bonds import NEUTRAL_VALENCES, SINGLE, VALENCES, BondTable
from .graphs import graph_mol
from .molecule import Molecule

log = logging.getLogger(__name__)
RDLogger.DisableLog("rdApp.*")

ALL_ELEMENTS = tuple(sorted(set(SINGLE) | {b for row in SINGLE.values() for b in row} | set(VALENCES)))

# MiDi's lenient table (its metrics' allowed bonds): element -> charge -> valences
MIDI_VALENCES = {
    "H": {0: (1,), 1: (0,), -1: (0,)},
    "C": {0: (3, 4), 1: (3,), -1: (3,)},
    "N": {0: (2, 3), 1: (2, 3, 4), -1: (2,)},
    "O": {0: (2,), 1: (3,), -1: (1,)},
    "F": {0: (1,), -1: (0,)},
    "B": {0: (3,)}, "Al": {0: (3,)}, "Si": {0: (4,)},
    "P": {0: (3, 5), 1: (4,)},
    "S": {0: (2, 6), 1: (2, 3), 2: (4,), 3: (5,), -1: (3,)},
    "Cl": {0: (1,)}, "As": {0: (3,)}, "Br": {0: (1,), 1: (2,)}, "I": {0: (1,)},
}


def charged_valences(element: str, charge: int) -> tuple[int, ...]:
    """The strict table: valences allowed for an element at a formal charge (isoelectronic shift)."""
    base = NEUTRAL_VALENCES.get(element, ())
    if charge == 0:
        return base
    if element == "C" or element == "Si":
        return (3,)
    if element == "B":
        return (4,) if charge == -1 else ()
    if element in ("N", "P", "As", "O", "S"):
        return tuple(v + charge for v in base if v + charge >= 0)
    if element in ("F", "Cl", "Br", "I"):
        return (0,) if charge == -1 else ((2,) if charge == 1 else ())
    if element == "H":
        return (0,)
    return ()


def midi_valences(element: str, charge: int) -> tuple[int, ...]:
    return MIDI_VALENCES.get(element, {}).get(charge, ())


def bond_orders(mol: Molecule, table: BondTable) -> np.ndarray:
    """EDM's distance bonds of one molecule; an element with no bond lengths bonds to nothing."""
    idx = np.array([table.elements.index(e) if e in table.elements else -1 for e in mol.elements])
    if (idx < 0).any():
        order = np.zeros((len(idx), len(idx)), dtype=np.int64)
        ok = idx >= 0
        order[np.ix_(ok, ok)] = table.orders(idx[ok], mol.positions[ok])
        return order
    return table.orders(idx, mol.positions)


def own_bonds(mol: Molecule, table: BondTable) -> np.ndarray:
    """The molecule's own bond orders, or EDM's distance bonds when it has none."""
    return bond_orders(mol, table) if mol.bonds is None else np.asarray(mol.bonds, dtype=np.int64)


def to_rdkit(mol: Molecule, orders: np.ndarray, charges: bool = True) -> Chem.RWMol:
    """Explicit atoms only (no implicit H), bonds of `orders`, the formal charges, a 3D conformer."""
    rw = graph_mol(mol.elements, orders, mol.charges if charges else None)
    conf = Chem.Conformer(len(mol))
    for i, p in enumerate(mol.positions):
        conf.SetAtomPosition(i, p.tolist())
    rw.AddConformer(conf, assignId=True)
    return rw


def largest_fragment_smiles(rw: Chem.RWMol) -> tuple[str | None, int]:
    """(canonical SMILES of the largest fragment or None if RDKit cannot sanitise the molecule,
    number of fragments)."""
    m = Chem.Mol(rw)
    frags = len(Chem.GetMolFrags(m)) if m.GetNumAtoms() else 0
    try:
        Chem.SanitizeMol(m)
        big = max(Chem.GetMolFrags(m, asMols=True, sanitizeFrags=False), key=lambda f: f.GetNumAtoms())
        return Chem.MolToSmiles(Chem.RemoveHs(big), isomericSmiles=False), frags
    except Exception:  # RDKit raises several kinds (valence, kekulisation, ...)
        return None, frags


def _stable(elements, charges, sums, allowed) -> np.ndarray:
    return np.array([int(s) in allowed(e, int(q)) for e, q, s in zip(elements, charges, sums)], dtype=bool)


def molecule_report(mol: Molecule, table: BondTable) -> dict:
    """Per-molecule figures of all three protocols."""
    n = len(mol)
    edm = bond_orders(mol, table)
    edm_stable = np.array([s in VALENCES.get(e, ()) for e, s in zip(mol.elements, edm.sum(1))], dtype=bool)
    edm_smiles, _ = largest_fragment_smiles(to_rdkit(mol, edm, charges=False))
    own = own_bonds(mol, table)
    sums = own.sum(1)
    smiles, frags = largest_fragment_smiles(to_rdkit(mol, own))
    n_comp = connected_components(own > 0, directed=False)[0] if n else 0
    return {"atoms": n, "edm_stable": int(edm_stable.sum()), "edm_smiles": edm_smiles,
            "strict_stable": int(_stable(mol.elements, mol.charges, sums, charged_valences).sum()),
            "midi_stable": int(_stable(mol.elements, mol.charges, sums, midi_valences).sum()),
            "smiles": smiles, "connected": n_comp == 1, "own_bonds": mol.bonds is not None}


def evaluate_molecules(mols: Iterable[Molecule], train_smiles: set[str] | None = None) -> dict[str, float]:
    """Every figure of the module docstring over a list of molecules (fractions in [0, 1])."""
    table = BondTable(ALL_ELEMENTS)
    reports = [molecule_report(m, table) for m in mols]
    if not reports:
        raise ValueError("no molecules to evaluate")
    atoms = max(sum(r["atoms"] for r in reports), 1)
    valid = [r["smiles"] for r in reports if r["smiles"] is not None]
    unique = set(valid)
    out = {"molecules": float(len(reports))}
    for p in ("strict", "midi", "edm"):
        out[f"{p}_atom_stability"] = sum(r[f"{p}_stable"] for r in reports) / atoms
        out[f"{p}_molecule_stability"] = float(np.mean([r[f"{p}_stable"] == r["atoms"] for r in reports]))
    out["edm_validity"] = float(np.mean([r["edm_smiles"] is not None for r in reports]))
    out.update({
        "validity": len(valid) / len(reports),
        "connected_validity": float(np.mean([r["smiles"] is not None and r["connected"] for r in reports])),
        "uniqueness": len(unique) / max(len(valid), 1),
        "valid_x_unique": len(unique) / len(reports),
        "connectivity": float(np.mean([r["connected"] for r in reports])),
        "own_bonds": float(np.mean([r["own_bonds"] for r in reports])),
    })
    if train_smiles is not None:
        out["novelty"] = len(unique - train_smiles) / max(len(unique), 1)
    return out


def reference_smiles(mols: Iterable[Molecule]) -> set[str]:
    """SMILES of reference molecules built as samples are scored (own bonds, else distance bonds)."""
    table = BondTable(ALL_ELEMENTS)
    out = set()
    for m in mols:
        s, _ = largest_fragment_smiles(to_rdkit(m, own_bonds(m, table)))
        if s is not None:
            out.add(s)
    return out

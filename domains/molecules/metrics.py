"""Sample quality as EDM (Hoogeboom et al. 2022) defines it, plus connectivity and a charge-aware
valence check.

* atom stability: an atom's summed bond orders (bonds from distances, ``bonds.py``) equal its
  valence (H1 C4 N3 O2 F1, ...); molecule stability: every atom stable.
* validity: the molecule built with those bonds passes RDKit sanitisation; its SMILES is that of
  the largest fragment. uniqueness: distinct valid SMILES / valid. novelty: unique SMILES not
  among the training SMILES / unique.
* connectivity: the bond graph is one piece.
* charge-aware valence: the bond sum fits the valence of the atom's formal charge (N+ 4, O- 1, ...).
"""

from __future__ import annotations

import logging
from typing import Iterable

import numpy as np
from rdkit import Chem, RDLogger
from scipy.sparse.csgraph import connected_components

from .bonds import NEUTRAL_VALENCES, SINGLE, VALENCES, BondTable
from .molecule import Molecule

log = logging.getLogger(__name__)
RDLogger.DisableLog("rdApp.*")

BOND_TYPES = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
ALL_ELEMENTS = tuple(sorted(set(SINGLE) | {b for row in SINGLE.values() for b in row} | set(VALENCES)))


def charged_valences(element: str, charge: int) -> tuple[int, ...]:
    """Valences allowed for an element at a formal charge (isoelectronic shift rule)."""
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


def bond_orders(mol: Molecule, table: BondTable) -> np.ndarray:
    idx = np.array([table.elements.index(e) if e in table.elements else -1 for e in mol.elements])
    if (idx < 0).any():  # an element with no bond lengths at all: it bonds to nothing
        order = np.zeros((len(idx), len(idx)), dtype=np.int64)
        ok = idx >= 0
        order[np.ix_(ok, ok)] = table.orders(idx[ok], mol.positions[ok])
        return order
    return table.orders(idx, mol.positions)


def to_rdkit(mol: Molecule, orders: np.ndarray) -> Chem.RWMol:
    """An RDKit molecule with explicit atoms only (no implicit H), bonds of `orders`, 3D conformer."""
    rw = Chem.RWMol()
    for el, q in zip(mol.elements, mol.charges):
        a = Chem.Atom(el)
        a.SetFormalCharge(int(q))
        a.SetNoImplicit(True)
        rw.AddAtom(a)
    ii, jj = np.nonzero(np.triu(orders, 1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        rw.AddBond(i, j, BOND_TYPES[int(orders[i, j])])
    conf = Chem.Conformer(len(mol))
    for i, p in enumerate(mol.positions):
        conf.SetAtomPosition(i, p.tolist())
    rw.AddConformer(conf, assignId=True)
    return rw


def largest_fragment_smiles(rw: Chem.RWMol) -> str | None:
    """Canonical SMILES of the largest fragment, or None if RDKit cannot sanitise the molecule."""
    m = Chem.Mol(rw)
    try:
        Chem.SanitizeMol(m)
    except Exception:  # RDKit raises several kinds (valence, kekulisation, ...)
        return None
    frags = Chem.GetMolFrags(m, asMols=True, sanitizeFrags=False)
    big = max(frags, key=lambda f: f.GetNumAtoms())
    try:
        return Chem.MolToSmiles(Chem.RemoveHs(big))  # hydrogens implicit, so SMILES compare with any source
    except Exception:
        return None


def molecule_report(mol: Molecule, table: BondTable) -> dict:
    """Per-molecule figures: stable atoms, valid SMILES (or None), connected, charge-aware valence."""
    orders = bond_orders(mol, table)
    nbonds = orders.sum(1)
    stable = np.array([n in VALENCES.get(e, ()) for e, n in zip(mol.elements, nbonds)])
    charge_ok = np.array([n in charged_valences(e, int(q)) for e, q, n in zip(mol.elements, mol.charges, nbonds)])
    n_frag = connected_components(orders > 0, directed=False)[0] if len(mol) else 0
    smiles = largest_fragment_smiles(to_rdkit(mol, orders))
    return {"atoms": len(mol), "stable_atoms": int(stable.sum()), "charge_ok_atoms": int(charge_ok.sum()),
            "connected": n_frag == 1, "smiles": smiles}


def evaluate_molecules(mols: Iterable[Molecule], train_smiles: set[str] | None = None) -> dict[str, float]:
    table = BondTable(ALL_ELEMENTS)
    reports = [molecule_report(m, table) for m in mols]
    if not reports:
        raise ValueError("no molecules to evaluate")
    atoms = sum(r["atoms"] for r in reports)
    valid = [r["smiles"] for r in reports if r["smiles"] is not None]
    unique = set(valid)
    out = {
        "molecules": float(len(reports)),
        "atom_stability": sum(r["stable_atoms"] for r in reports) / max(atoms, 1),
        "molecule_stability": float(np.mean([r["stable_atoms"] == r["atoms"] for r in reports])),
        "validity": len(valid) / len(reports),
        "uniqueness": len(unique) / max(len(valid), 1),
        "valid_x_unique": len(unique) / len(reports),
        "connectivity": float(np.mean([r["connected"] for r in reports])),
        "charge_valence_atoms": sum(r["charge_ok_atoms"] for r in reports) / max(atoms, 1),
        "charge_valence_molecules": float(np.mean([r["charge_ok_atoms"] == r["atoms"] for r in reports])),
    }
    if train_smiles is not None:
        out["novelty"] = len(unique - train_smiles) / max(len(unique), 1)
    return out


def reference_smiles(mols: Iterable[Molecule]) -> set[str]:
    """SMILES of reference molecules built exactly as samples are (bonds from distances), as EDM does."""
    table = BondTable(ALL_ELEMENTS)
    out = set()
    for m in mols:
        s = largest_fragment_smiles(to_rdkit(m, bond_orders(m, table)))
        if s is not None:
            out.add(s)
    return out

"""Molecular graphs: Kekule bond orders (0 none, 1 single, 2 double, 3 triple) and formal charges
for molecules given as elements and 3D positions.

QM9 ships one SMILES per molecule but its atoms in the order of the DFT geometry. The graph is
taken from the SMILES (Kekule form, formal charges) and placed on the 3D atoms by matching the
SMILES's heavy-atom skeleton onto the connectivity RDKit perceives from the geometry:

1. connectivity from covalent radii (``rdDetermineBonds.DetermineConnectivity``);
2. if it has exactly the SMILES's number of bonds, any graph isomorphism maps one onto the other;
3. strained cages (bicyclobutanes, [1.1.1]propellane-like QM9 cages) have non-bonded atoms
   closer than the radii allow, so the perceived graph has extra edges: then every embedding of
   the SMILES heavy-atom skeleton is tried, hydrogens go to their nearest heavy atom, and the
   embedding whose hydrogen counts agree and whose bonds are shortest in total wins.

``graph_smiles`` rebuilds a canonical SMILES from a stored graph, so the stored graphs can be
checked against QM9's own SMILES (``tests/molecules/test_mol_graphs.py``; the full figure is in
domains/molecules/README.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import rdDetermineBonds

log = logging.getLogger(__name__)
RDLogger.DisableLog("rdApp.*")

ORDER_OF = {Chem.BondType.SINGLE: 1, Chem.BondType.DOUBLE: 2, Chem.BondType.TRIPLE: 3}
BOND_OF = {1: Chem.BondType.SINGLE, 2: Chem.BondType.DOUBLE, 3: Chem.BondType.TRIPLE}
GRAPH_CACHE_VERSION = 1


def kekule_graph(m: Chem.Mol, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(n, n) bond orders and (n,) formal charges of an RDKit molecule, aromatic bonds kekulised."""
    m = Chem.Mol(m)
    if any(b.GetIsAromatic() or b.GetBondType() == Chem.BondType.AROMATIC for b in m.GetBonds()):
        try:
            m.UpdatePropertyCache(strict=False)
            Chem.Kekulize(m, clearAromaticFlags=True)
        except Exception as e:  # RDKit raises KekulizeException and friends
            raise ValueError(f"{where}: aromatic bonds cannot be kekulised ({e})") from None
    n = m.GetNumAtoms()
    orders = np.zeros((n, n), dtype=np.int8)
    for b in m.GetBonds():
        k = ORDER_OF.get(b.GetBondType())
        if k is None:
            raise ValueError(f"{where}: bond {b.GetBeginAtomIdx() + 1}-{b.GetEndAtomIdx() + 1} has type "
                             f"{b.GetBondType()}, expected single, double, triple or aromatic")
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        orders[i, j] = orders[j, i] = k
    charges = np.array([a.GetFormalCharge() for a in m.GetAtoms()], dtype=np.int64)
    return orders, charges


def graph_mol(elements: list[str], orders: np.ndarray, charges: np.ndarray | None = None) -> Chem.RWMol:
    """An RDKit molecule of explicit atoms (no implicit H) with the given bonds and charges."""
    rw = Chem.RWMol()
    for k, e in enumerate(elements):
        a = Chem.Atom(e)
        a.SetFormalCharge(0 if charges is None else int(charges[k]))
        a.SetNoImplicit(True)
        rw.AddAtom(a)
    ii, jj = np.nonzero(np.triu(orders, 1))
    for i, j in zip(ii.tolist(), jj.tolist()):
        rw.AddBond(i, j, BOND_OF[int(orders[i, j])])
    return rw


def graph_smiles(elements: list[str], orders: np.ndarray, charges: np.ndarray | None = None) -> str | None:
    """Canonical SMILES (hydrogens implicit, no stereo) of a stored graph; None if RDKit rejects it."""
    m = graph_mol(elements, orders, charges).GetMol()
    try:
        Chem.SanitizeMol(m)
        return Chem.MolToSmiles(Chem.RemoveHs(m), isomericSmiles=False)
    except Exception:  # valence, kekulisation, ...
        return None


def canonical_smiles(smiles: str) -> str | None:
    m = Chem.MolFromSmiles(smiles)
    return None if m is None else Chem.MolToSmiles(m, isomericSmiles=False)


def _geometry_mol(elements: list[str], positions: np.ndarray) -> Chem.Mol:
    rw = Chem.RWMol()
    for e in elements:
        rw.AddAtom(Chem.Atom(e))
    conf = Chem.Conformer(len(elements))
    for i, p in enumerate(np.asarray(positions, dtype=np.float64)):
        conf.SetAtomPosition(i, p.tolist())
    rw.AddConformer(conf, assignId=True)
    m = rw.GetMol()
    rdDetermineBonds.DetermineConnectivity(m)
    return m


def _skeleton(m: Chem.Mol) -> Chem.Mol:
    """The same atoms and edges with every bond single and no charge: a query of connectivity alone."""
    rw = Chem.RWMol(m)
    for b in rw.GetBonds():
        b.SetBondType(Chem.BondType.SINGLE)
        b.SetIsAromatic(False)
    for a in rw.GetAtoms():
        a.SetFormalCharge(0)
        a.SetIsAromatic(False)
        a.SetNoImplicit(True)
    return rw.GetMol()


def smiles_graph_on_geometry(elements: list[str], positions: np.ndarray, smiles: str,
                             where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Bond orders and charges of `smiles`, placed on the atoms of a 3D structure (see module doc)."""
    where = where or smiles
    ref = Chem.MolFromSmiles(smiles)
    if ref is None:
        raise ValueError(f"{where}: SMILES {smiles!r} does not parse")
    ref = Chem.AddHs(ref)
    if sorted(a.GetSymbol() for a in ref.GetAtoms()) != sorted(elements):
        raise ValueError(f"{where}: SMILES {smiles!r} has other atoms than the 3D structure")
    ref_orders, ref_charges = kekule_graph(ref, where)
    geo = _geometry_mol(elements, positions)
    sk = _skeleton(ref)
    match = None
    if geo.GetNumBonds() == sk.GetNumBonds():
        match = geo.GetSubstructMatch(sk)  # an isomorphism: every one gives the same graph
    if not match:
        match = _best_embedding(ref, geo, np.asarray(positions, dtype=np.float64))
    if not match:
        raise ValueError(f"{where}: the graph of SMILES {smiles!r} does not fit the 3D structure")
    n = len(elements)
    perm = np.asarray(match)  # SMILES atom k -> geometry atom perm[k]
    orders = np.zeros((n, n), dtype=np.int8)
    orders[np.ix_(perm, perm)] = ref_orders
    charges = np.zeros(n, dtype=np.int64)
    charges[perm] = ref_charges
    return orders, charges


def _best_embedding(ref: Chem.Mol, geo: Chem.Mol, pos: np.ndarray) -> tuple[int, ...] | None:
    heavy_ref = [a.GetIdx() for a in ref.GetAtoms() if a.GetAtomicNum() > 1]
    heavy_geo = [a.GetIdx() for a in geo.GetAtoms() if a.GetAtomicNum() > 1]
    sk_ref = _skeleton(Chem.RWMol(Chem.RemoveHs(ref, sanitize=False)))
    sub_geo = Chem.RWMol(_skeleton(geo))
    for idx in sorted((a.GetIdx() for a in sub_geo.GetAtoms() if a.GetAtomicNum() == 1), reverse=True):
        sub_geo.RemoveAtom(idx)
    sub_geo = sub_geo.GetMol()
    # hydrogens of the geometry: each to its nearest heavy atom
    hs = [a.GetIdx() for a in geo.GetAtoms() if a.GetAtomicNum() == 1]
    if heavy_geo:
        d = np.linalg.norm(pos[hs][:, None] - pos[heavy_geo][None], axis=-1) if hs else np.zeros((0, len(heavy_geo)))
        owner = np.array(heavy_geo)[d.argmin(1)] if hs else np.zeros(0, int)
    else:
        return None
    h_count_geo = {g: int((owner == g).sum()) for g in heavy_geo}
    ref_hs = {k: [nb.GetIdx() for nb in ref.GetAtomWithIdx(k).GetNeighbors() if nb.GetAtomicNum() == 1] for k in heavy_ref}
    best, best_score = None, np.inf
    for m in sub_geo.GetSubstructMatches(sk_ref, uniquify=False, maxMatches=20000):
        gmap = [heavy_geo[t] for t in m]  # heavy SMILES atom (in RemoveHs order) -> geometry atom
        if any(len(ref_hs[heavy_ref[k]]) != h_count_geo[g] for k, g in enumerate(gmap)):
            continue
        score = sum(np.linalg.norm(pos[gmap[b.GetBeginAtomIdx()]] - pos[gmap[b.GetEndAtomIdx()]])
                    for b in sk_ref.GetBonds())
        if score < best_score:
            best, best_score = gmap, score
    if best is None:
        return None
    full = [-1] * ref.GetNumAtoms()
    for k, g in enumerate(best):
        full[heavy_ref[k]] = g
        for h_ref, h_geo in zip(ref_hs[heavy_ref[k]], np.flatnonzero(owner == g)):
            full[h_ref] = hs[h_geo]
    return tuple(full) if -1 not in full else None


def perceive_graph(elements: list[str], positions: np.ndarray, charge: int = 0,
                   where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Bond orders and formal charges from a 3D structure alone (RDKit's xyz2mol, total charge given)."""
    m = Chem.Mol(_geometry_mol(elements, positions))
    try:
        rdDetermineBonds.DetermineBondOrders(m, charge=charge)
    except Exception as e:  # ValueError and RDKit's own exceptions
        raise ValueError(f"{where}: no bond orders fit this 3D structure ({e})") from None
    return kekule_graph(m, where)


# --- QM9 -------------------------------------------------------------------------------------

def process_qm9_graphs(data: dict[str, np.ndarray], elements: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Bonds (an edge list) and formal charges of every QM9 molecule, and whether its rebuilt
    canonical SMILES equals QM9's (``smiles_ok``)."""
    rows_i, rows_j, rows_k, counts, smiles_ok = [], [], [], [], []
    M, N = data["types"].shape
    charges = np.zeros((M, N), dtype=np.int8)
    for r in range(M):
        n = int(data["n_atoms"][r])
        els = [elements[t] for t in data["types"][r, :n]]
        smi = str(data["smiles"][r])
        try:
            orders, q = smiles_graph_on_geometry(els, data["positions"][r, :n], smi, where=f"QM9 row {r}")
            ok = graph_smiles(els, orders, q) == canonical_smiles(smi)
        except ValueError as e:
            log.warning("%s; stored without bonds", e)
            orders, q, ok = np.zeros((n, n), np.int8), np.zeros(n, np.int64), False
        ii, jj = np.nonzero(np.triu(orders, 1))
        rows_i.append(ii.astype(np.int8))
        rows_j.append(jj.astype(np.int8))
        rows_k.append(orders[ii, jj].astype(np.int8))
        counts.append(len(ii))
        charges[r, :n] = q
        smiles_ok.append(ok)
    return {"bond_i": np.concatenate(rows_i), "bond_j": np.concatenate(rows_j), "bond_order": np.concatenate(rows_k),
            "bond_count": np.array(counts, np.int32), "charges": charges, "smiles_ok": np.array(smiles_ok)}


def load_qm9_graphs(data: dict[str, np.ndarray], elements: tuple[str, ...], cache_dir: Path) -> dict[str, np.ndarray]:
    """QM9's graphs for the rows of ``qm9.load_qm9`` (all of them), built once (about two minutes
    on one core) and cached beside the coordinates."""
    cache = Path(cache_dir) / f"qm9_graphs_v{GRAPH_CACHE_VERSION}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
            if len(out["bond_count"]) == len(data["n_atoms"]):
                return out
            log.warning("QM9 graph cache %s has %d rows, expected %d; rebuilding", cache, len(out["bond_count"]),
                        len(data["n_atoms"]))
        except (OSError, ValueError, KeyError) as e:
            log.warning("QM9 graph cache %s is unreadable (%s); rebuilding", cache, e)
    log.info("perceiving QM9's bonds and charges into %s (once, about two minutes)", cache)
    out = process_qm9_graphs(data, elements)
    log.info("QM9 graphs: %.3f%% reproduce QM9's canonical SMILES", 100 * out["smiles_ok"].mean())
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, cache)
    return out


SMALL = 5000  # fewer rows than this are perceived on the spot when the full cache is not built yet


def qm9_graphs_for(data: dict[str, np.ndarray], rows: np.ndarray, elements: tuple[str, ...],
                   cache_dir: Path) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Dense bond matrices, (len(rows), max_atoms) formal charges and ``smiles_ok`` of the given
    rows of ``qm9.load_qm9``: from the full cache, or, for a few rows before it exists, built now."""
    rows = np.asarray(rows)
    cache = Path(cache_dir) / f"qm9_graphs_v{GRAPH_CACHE_VERSION}.npz"
    if len(rows) < SMALL and not cache.is_file():
        g = process_qm9_graphs({k: v[rows] for k, v in data.items()}, elements)
        local = np.arange(len(rows))
    else:
        g = load_qm9_graphs(data, elements, cache_dir)
        local = rows
    start = np.concatenate([[0], np.cumsum(g["bond_count"])])
    mats = []
    for r, n in zip(local, data["n_atoms"][rows]):
        m = np.zeros((int(n), int(n)), np.int64)
        i, j = g["bond_i"][start[r]:start[r + 1]].astype(np.int64), g["bond_j"][start[r]:start[r + 1]].astype(np.int64)
        m[i, j] = m[j, i] = g["bond_order"][start[r]:start[r + 1]]
        mats.append(m)
    return mats, g["charges"][local].astype(np.int64), g["smiles_ok"][local]

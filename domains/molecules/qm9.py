"""QM9 (Ramakrishnan et al. 2014, CC BY 4.0) from the offline ``qm9pack`` CSVs, with the split of
Hoogeboom et al. 2022 (EDM): rows sorted by the QM9 index, ``numpy.random.seed(0)``,
``permutation(130831)``; the first 100,000 rows train, the next 17,748 validate, the last 13,083 test.

The processed arrays are cached as one ``.npz`` under the cache directory on first use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

QM9_SIZE = 130831
SPLITS = {"train": (0, 100000), "val": (100000, 117748), "test": (117748, QM9_SIZE)}
ELEMENTS = ("H", "C", "N", "O", "F")
MAX_ATOMS = 29
HARTREE_TO_MEV = 27211.386
# name -> (CSV column, factor to the unit EDM reports: alpha Bohr^3, gap/homo/lumo meV, mu D, Cv cal/mol K)
PROPERTIES = {
    "alpha": ("Polarizability_bohr3", 1.0),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_MEV),
    "homo": ("HOMO_au", HARTREE_TO_MEV),
    "lumo": ("LUMO_au", HARTREE_TO_MEV),
    "mu": ("Dipole_debye", 1.0),
    "Cv": ("Heatcapacity_Cv_cal_mol_K", 1.0),
}
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("DIFFSUITE_CACHE", Path.home() / ".cache" / "diffsuite"))


def edm_split(split: str) -> np.ndarray:
    """Row indices (into rows sorted by QM9 index) of an EDM split."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    rng = np.random.RandomState(0)  # the same stream as numpy.random.seed(0)
    perm = rng.permutation(QM9_SIZE)
    lo, hi = SPLITS[split]
    return perm[lo:hi]


def _csv_paths() -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the qm9pack package is not installed; `pip install qm9pack` (it holds QM9 offline)")
    root = Path(list(spec.submodule_search_locations)[0]) / "data"
    paths = [root / f"qm9_part{i}.csv" for i in (1, 2, 3)]
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(f"qm9pack data file {p} is missing")
    return paths


def process_qm9() -> dict[str, np.ndarray]:
    """Read the CSVs into padded arrays; vectorised (no per-row Python parsing of coordinates)."""
    import pandas as pd

    cols = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang"] + [c for c, _ in PROPERTIES.values()]
    df = pd.concat([pd.read_csv(p, usecols=cols) for p in _csv_paths()], ignore_index=True)
    df = df.sort_values("Index", kind="stable").reset_index(drop=True)
    if len(df) != QM9_SIZE:
        raise ValueError(f"qm9pack holds {len(df)} molecules, expected {QM9_SIZE}; the EDM split needs all of them")
    n = df["N_atoms"].to_numpy(np.int64)
    flat_xyz = np.array(",".join(df["XYZ_Ang"]).replace("[", "").replace("]", "").split(","), dtype=np.float64)
    flat_el = ",".join(df["Elements"]).replace("[", "").replace("]", "").replace("'", "").replace(" ", "").split(",")
    if flat_xyz.size != 3 * n.sum() or len(flat_el) != n.sum():
        raise ValueError("qm9pack CSV: atom counts do not match the coordinate/element lists")
    lookup = {e: i for i, e in enumerate(ELEMENTS)}
    types_flat = np.array([lookup[e] for e in flat_el], dtype=np.int8)
    row = np.repeat(np.arange(len(n)), n)  # molecule of each atom
    col = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # atom index within its molecule
    positions = np.zeros((len(n), MAX_ATOMS, 3), dtype=np.float32)
    types = np.full((len(n), MAX_ATOMS), -1, dtype=np.int8)
    positions[row, col] = flat_xyz.reshape(-1, 3)
    types[row, col] = types_flat
    props = np.stack([df[c].to_numpy(np.float64) * f for c, f in PROPERTIES.values()], axis=1).astype(np.float32)
    return {"positions": positions, "types": types, "n_atoms": n.astype(np.int16), "properties": props,
            "index": df["Index"].to_numpy(np.int64), "smiles": df["SMILES"].to_numpy().astype(str)}


def load_qm9(cache_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """All of QM9 as arrays (rows sorted by QM9 index), processed once and cached."""
    cache = Path(cache_dir or default_cache_dir()) / f"qm9_v{CACHE_VERSION}.npz"
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            log.warning("QM9 cache %s is unreadable (%s); processing again", cache, e)
    log.info("processing QM9 from qm9pack into %s (once)", cache)
    data = process_qm9()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, cache)
    return data


def qm9_split(split: str, cache_dir: str | Path | None = None, max_molecules: int | None = None) -> dict[str, np.ndarray]:
    """The arrays of one EDM split, in the split's permuted order, optionally its first `max_molecules`."""
    data = load_qm9(cache_dir)
    rows = edm_split(split)
    if max_molecules is not None:
        rows = rows[:max_molecules]
    return {k: v[rows] for k, v in data.items()}

"""How a folder of user data is split into train / val / test, the same way in every domain.

Each example's split comes from a hash of a stable key (its path relative to the data root, in
POSIX form, or a record's index and name): adding or removing files never moves the others, two
machines agree, and no list of splits needs to be stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .errors import UserError

SPLITS = ("train", "val", "test")


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) "
                        "and leave some data for training")


def unit_hash(key: str) -> float:
    """A number in [0, 1) fixed by `key` (the first 8 bytes of its SHA-1)."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2.0**64


def split_of(key: str, val_fraction: float, test_fraction: float) -> str:
    """'test' for the first `test_fraction` of the hash range, 'val' for the next `val_fraction`,
    else 'train'."""
    u = unit_hash(key)
    return "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"


def path_key(path: Path, root: Path) -> str:
    """The key of a file under a data root: its relative POSIX path (the same on every OS)."""
    return Path(path).relative_to(root).as_posix()


def split_records(n: int, val_fraction: float, test_fraction: float, seed: int = 0) -> dict[str, list[int]]:
    """Indices of the records of ONE file (molecules in an SDF) for each split: a seeded
    permutation cut at train | val | test, so a small file still gets its exact proportions. (Files
    in a folder use ``split_of``, which does not move old files when new ones are added.)"""
    check_fractions(val_fraction, test_fraction)
    import numpy as np

    perm = np.random.RandomState(seed).permutation(n)
    a, b = int(round((1 - val_fraction - test_fraction) * n)), int(round((1 - test_fraction) * n))
    return {"train": perm[:a].tolist(), "val": perm[a:b].tolist(), "test": perm[b:].tolist()}

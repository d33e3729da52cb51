"""How an output file gets a name that never overwrites anything, the same way in every domain.

A domain writes a group of files per sample or per run that share a stem (``sample_0003_class3``
.wav + .png; ``sample_0003`` .mp4 + .gif + .png + .npz; ``molecules`` .sdf + .png). The stem is
used as it is when no file of the group exists; otherwise the first free ``stem_1``, ``stem_2``,
... is taken, for the whole group, so the files of one sample keep one stem. Files are then
opened with mode ``"x"``, which fails rather than overwrite should another process take the
name in between.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


def free_stem(folder: str | Path, stem: str, suffixes: Iterable[str]) -> str:
    """`stem`, or `stem`_1, `stem`_2, ...: the first for which no ``folder/<stem><suffix>`` exists."""
    folder, suffixes = Path(folder), tuple(suffixes)
    candidate, k = stem, 0
    while any((folder / f"{candidate}{s}").exists() for s in suffixes):
        k += 1
        candidate = f"{stem}_{k}"
    return candidate


def free_path(path: str | Path) -> Path:
    """`path` itself, or the first free ``<stem>_<k><suffix>`` beside it."""
    path = Path(path)
    return path.with_name(free_stem(path.parent, path.stem, [path.suffix]) + path.suffix)

"""Users' molecules in: multi-molecule SDF (3D, explicit H), XYZ (one or many blocks), SMILES
files embedded in 3D (RDKit ETKDG, then MMFF with capped iterations).

One bad record is reported (a warning naming the file and record) and skipped; a file with no
readable record at all (missing, empty, binary, not the format its suffix says) is a ``UserError``
that names the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from rdkit import Chem, RDLogger
from rdkit.Chem import AllChem

from .graphs import kekule_graph
from diffsuite.core.errors import MissingFileError, UserError

from .molecule import Molecule

log = logging.getLogger(__name__)
RDLogger.DisableLog("rdApp.*")


def _existing(path: str | Path, kind: str) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingFileError(f"no {kind} file at {path}" + (" (it is a folder)" if path.is_dir() else ""))
    return path


def _text_lines(path: Path, kind: str) -> list[str]:
    """The lines of a text file; a binary file is a UserError naming it."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text {kind} file (byte data that is not UTF-8 text)") from None


def from_rdkit(m: Chem.Mol, name: str, where: str = "", *, require_hydrogens: bool = True) -> Molecule:
    where = where or name
    if m.GetNumConformers() == 0:
        raise UserError(f"{where}: no 3D coordinates")
    conf = m.GetConformer()
    if not conf.Is3D() and m.GetNumAtoms() > 1:
        raise UserError(f"{where}: coordinates are 2D, need 3D")
    els = [a.GetSymbol() for a in m.GetAtoms()]
    if require_hydrogens and "C" in els and "H" not in els:
        raise UserError(f"{where}: no hydrogen atoms; 3D files need explicit hydrogens")
    pos = np.array(conf.GetPositions(), dtype=np.float64)
    charges = np.array([a.GetFormalCharge() for a in m.GetAtoms()], dtype=np.int64)
    props = {}
    for k in m.GetPropNames():
        try:
            props[k] = float(m.GetProp(k))
        except ValueError:
            pass
    try:  # the record's own bonds, aromatic ones kekulised; a record RDKit cannot kekulise keeps none
        bonds = kekule_graph(m, where)[0] if m.GetNumBonds() or m.GetNumAtoms() < 2 else None  # no bond block: unknown
    except ValueError as e:
        log.warning("%s; its bonds are dropped (perceived from distances where needed)", e)
        bonds = None
    return Molecule(els, pos, charges, name=name, properties=props, bonds=bonds)


def read_sdf(path: str | Path, *, limit: int | None = None, require_hydrogens: bool = True) -> list[Molecule]:
    """Molecules of an SDF file; a fragment to grow from may lack hydrogens (require_hydrogens=False)."""
    path = _existing(path, "SDF")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the SDF file is empty")
    try:
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=False, strictParsing=False)
    except OSError as e:  # RDKit's "Bad input file" / "Invalid input file"
        raise UserError(f"{path}: RDKit cannot open it as an SDF file ({' '.join(str(e).split())})") from e
    out = []
    for i, m in enumerate(supplier):
        if limit is not None and len(out) >= limit:
            break
        where = f"{path} record {i + 1}"
        if m is None:
            log.warning("%s: unparsable SDF record, skipped", where)
            continue
        name = m.GetProp("_Name") if m.HasProp("_Name") and m.GetProp("_Name").strip() else f"{path.stem}_{i + 1}"
        try:
            out.append(from_rdkit(m, name, f"{where} ({name})", require_hydrogens=require_hydrogens))
        except ValueError as e:
            log.warning("%s, skipped", e)
    if not out:
        raise UserError(f"{path}: no readable molecule in this SDF file")
    return out


def read_xyz(path: str | Path, *, limit: int | None = None) -> list[Molecule]:
    """Concatenated XYZ blocks: atom count, comment line, then `El x y z` lines."""
    path = _existing(path, "XYZ")
    lines = _text_lines(path, "XYZ")
    out, i, rec = [], 0, 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        rec += 1
        where = f"{path} record {rec} (line {i + 1})"
        try:
            n = int(lines[i].split()[0])
        except ValueError:
            raise UserError(f"{where}: expected an atom count, got {lines[i][:40]!r}; cannot find the next record") from None
        block = lines[i + 2:i + 2 + n]
        name = lines[i + 1].strip() if i + 1 < len(lines) else ""
        i += 2 + n
        try:
            if len(block) != n:
                raise UserError(f"{where}: {n} atoms announced, {len(block)} lines found")
            els, pos = [], []
            for ln in block:
                parts = ln.split()
                el = parts[0]
                if el.isdigit():
                    el = Chem.GetPeriodicTable().GetElementSymbol(int(el))
                els.append(el[0].upper() + el[1:].lower())
                pos.append([float(v) for v in parts[1:4]])
            out.append(Molecule(els, np.array(pos), name=name or f"{path.stem}_{rec}"))
        except (ValueError, IndexError) as e:
            log.warning("%s: bad XYZ record (%s), skipped", where, e)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise UserError(f"{path}: no readable molecule in this XYZ file")
    return out


def embed_smiles(smiles: str, *, name: str = "", seed: int = 0, max_attempts: int = 3, mmff_iters: int = 200) -> Molecule:
    """SMILES -> 3D with explicit H: ETKDG (a few seeded attempts), then MMFF (iterations capped)."""
    where = name or smiles
    m = Chem.MolFromSmiles(smiles)
    if m is None:
        raise UserError(f"{where}: SMILES {smiles!r} does not parse")
    m = Chem.AddHs(m)
    params = AllChem.ETKDGv3()
    for attempt in range(max_attempts):
        params.randomSeed = seed + attempt
        if AllChem.EmbedMolecule(m, params) == 0:
            break
    else:
        raise UserError(f"{where}: SMILES {smiles!r} did not embed in 3D after {max_attempts} ETKDG attempts")
    if AllChem.MMFFHasAllMoleculeParams(m):
        AllChem.MMFFOptimizeMolecule(m, maxIters=mmff_iters)
    return from_rdkit(m, name or smiles, where)


def read_smiles(path: str | Path, *, limit: int | None = None, seed: int = 0) -> list[Molecule]:
    """A SMILES file: one `SMILES [name]` a line (a header line that does not parse is skipped)."""
    path = _existing(path, "SMILES")
    out = []
    for i, line in enumerate(_text_lines(path, "SMILES")):
        if limit is not None and len(out) >= limit:
            break
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        name = parts[1] if len(parts) > 1 else f"{path.stem}_{i + 1}"
        try:
            out.append(embed_smiles(parts[0], name=name, seed=seed))
        except ValueError as e:
            log.warning("%s line %d: %s, skipped", path, i + 1, e)
    if not out:
        raise UserError(f"{path}: no SMILES in this file could be embedded")
    return out


READERS = {".sdf": read_sdf, ".sd": read_sdf, ".mol": read_sdf, ".xyz": read_xyz, ".smi": read_smiles,
           ".smiles": read_smiles, ".txt": read_smiles}


def read_molecules(path: str | Path, *, limit: int | None = None, require_hydrogens: bool = True) -> list[Molecule]:
    """Molecules from an SDF, XYZ or SMILES file, chosen by extension. `require_hydrogens=False`
    reads SDF records with carbon and no hydrogen too (samples to score, heavy-atom fragments)."""
    path = _existing(path, "molecule")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"{path}: unknown molecule file type {path.suffix!r}; expected one of {sorted(READERS)}")
    if reader is read_sdf:
        return read_sdf(path, limit=limit, require_hydrogens=require_hydrogens)
    return reader(path, limit=limit)

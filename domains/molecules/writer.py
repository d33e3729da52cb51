"""Samples -> files a chemist opens: one SDF (3D, explicit hydrogens, the model's own bonds and
formal charges -- or, for a positions-only model, bonds inferred from distances) and a PNG grid
of 2D depictions drawn from the same bonds. Existing files are never overwritten: the next
free name (``molecules_1.sdf``, ...) is taken."""

from __future__ import annotations

import logging
from pathlib import Path

from rdkit import Chem
from rdkit.Chem import AllChem, Draw

from diffsuite.core.naming import free_path

from .bonds import BondTable
from .metrics import ALL_ELEMENTS, own_bonds, to_rdkit
from .molecule import Molecule

log = logging.getLogger(__name__)


def rdkit_molecules(samples: list[Molecule]) -> list[Chem.Mol]:
    table = BondTable(ALL_ELEMENTS)
    out = []
    for i, m in enumerate(samples):
        rw = to_rdkit(m, own_bonds(m, table))
        mol = rw.GetMol()
        mol.UpdatePropertyCache(strict=False)
        mol.SetProp("_Name", m.name or f"sample_{i}")
        out.append(mol)
    return out


def depiction(mol: Chem.Mol) -> Chem.Mol:
    m = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(m)
        m = Chem.RemoveHs(m)
    except Exception:  # an invalid sample is drawn as it is, hydrogens and all
        m = Chem.Mol(mol)
        m.UpdatePropertyCache(strict=False)
    m.RemoveAllConformers()
    AllChem.Compute2DCoords(m)
    return m


def write_molecules(samples: list[Molecule], out_dir: Path, *, stem: str = "molecules", grid_max: int = 64) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mols = rdkit_molecules(samples)
    sdf = free_path(out_dir / f"{stem}.sdf")
    with open(sdf, "x") as f:  # mode "x": fail rather than overwrite
        for m in mols:
            f.write(Chem.MolToMolBlock(m, kekulize=False))
            f.write("$$$$\n")
    png = free_path(out_dir / f"{stem}.png")
    shown = mols[:grid_max]
    pictures, legends = [depiction(m) for m in shown], [m.GetProp("_Name") for m in shown]
    try:
        img = Draw.MolsToGridImage(pictures, molsPerRow=min(8, len(shown)), subImgSize=(200, 200), legends=legends)
    except RuntimeError:  # RDKit cannot draw some broken samples (a near-complete bond graph): leave their cells empty
        for i, (pic, name) in enumerate(zip(pictures, legends)):
            try:
                Draw.MolsToGridImage([pic], molsPerRow=1, subImgSize=(50, 50))
            except RuntimeError as e:
                log.warning("%s: %s (%d atoms, %d bonds) is not drawn in %s: RDKit says %s", sdf, name,
                            pic.GetNumAtoms(), pic.GetNumBonds(), png.name, e)
                pictures[i], legends[i] = Chem.Mol(), f"{name}: not drawable"
        img = Draw.MolsToGridImage(pictures, molsPerRow=min(8, len(shown)), subImgSize=(200, 200), legends=legends)
    with open(png, "xb") as f:
        img.save(f, format="PNG")
    return [sdf, png]

"""Molecules: E(3)-equivariant graph diffusion over 3D atom positions and types (QM9 and users'
SDF/XYZ/SMILES files), with property and fragment conditioning, SDF output and EDM's metrics."""

from .domain import MoleculesDomain
from .molecule import Molecule

__all__ = ["MoleculesDomain", "Molecule"]

"""The three protocols: the QM9 test split gives EDM's "data" line on distance bonds and (almost)
full marks on its own bonds; broken molecules are caught by each protocol for its own reason."""

import time

import numpy as np
import pytest

from diffsuite.domains.molecules import MoleculesDomain
from diffsuite.domains.molecules.metrics import charged_valences, evaluate_molecules, midi_valences
from diffsuite.domains.molecules.molecule import Molecule
from diffsuite.domains.molecules.qm9 import ELEMENTS, qm9_split
from diffsuite.domains.molecules.readers import embed_smiles


def _test_molecules(n):
    t = qm9_split("test", max_molecules=n)
    return [Molecule([ELEMENTS[k] for k in ty[:m]], p[:m]) for ty, p, m in zip(t["types"], t["positions"], t["n_atoms"])]


def test_qm9_test_split_gives_edm_data_line():
    mols = _test_molecules(600)
    start = time.perf_counter()
    r = evaluate_molecules(mols)
    per_molecule = (time.perf_counter() - start) / len(mols)
    # EDM reports 99.0 / 95.2 / 97.7 on the data itself; without bonds of their own the
    # own-bond protocols fall back to the same distance bonds
    assert r["edm_atom_stability"] > 0.985
    assert 0.92 < r["edm_molecule_stability"] < 0.98
    assert 0.95 < r["edm_validity"] <= 1.0
    assert r["own_bonds"] == 0.0 and r["uniqueness"] > 0.99
    assert per_molecule * 10000 < 600  # 10,000 molecules in well under an hour (10 min bound)


def test_qm9_test_split_on_its_own_bonds():
    d = MoleculesDomain(network="graph_egnn", bonds=True, vocabulary="qm9_charged", max_molecules=600, pretrained=None)
    mols = d.dataset("test").molecules(d.vocabulary)
    r = evaluate_molecules(mols)
    assert r["own_bonds"] == 1.0
    # the real graphs are chemistry: every protocol on own bonds passes (MiDi's processed data
    # scored 99.8 / 98.7 / 98.9; ours are QM9's SMILES graphs), while EDM's distance bonds do not
    for k in ("strict_molecule_stability", "midi_molecule_stability", "validity", "connected_validity"):
        assert r[k] > 0.995, (k, r[k])
    assert r["edm_molecule_stability"] < 0.98
    assert r["uniqueness"] > 0.99


def test_broken_geometry_is_unstable_and_novelty():
    mol = embed_smiles("CC(=O)O", name="acetic acid")
    assert mol.bonds is not None
    r = evaluate_molecules([mol], train_smiles={"CC(=O)O"})
    assert r["edm_molecule_stability"] == 1.0 and r["strict_molecule_stability"] == 1.0 and r["novelty"] == 0.0
    far = Molecule(mol.elements, mol.positions.copy(), name="detached H")  # no own bonds: distance bonds
    far.positions[-1] += 5.0
    r = evaluate_molecules([far], train_smiles={"CC(=O)O"})
    assert r["edm_molecule_stability"] == 0.0 and r["connectivity"] == 0.0 and r["connected_validity"] == 0.0
    assert r["validity"] == 1.0  # the largest fragment (acetic acid minus an H radical) still sanitises
    squashed = Molecule(mol.elements, mol.positions * 0.7, name="squashed")
    assert evaluate_molecules([squashed])["edm_molecule_stability"] == 0.0
    # own bonds are scored as given, whatever the geometry says
    squashed_own = Molecule(mol.elements, mol.positions * 0.7, bonds=mol.bonds, name="squashed, own bonds")
    r = evaluate_molecules([squashed_own])
    assert r["strict_molecule_stability"] == 1.0 and r["edm_molecule_stability"] == 0.0


def test_charge_aware_tables():
    # methylammonium: N+ with four single bonds is right for its charge, wrong for EDM's N3 table
    m = embed_smiles("C[NH3+]", name="methylammonium")
    assert sorted(m.charges.tolist())[-1] == 1
    r = evaluate_molecules([m])
    assert r["strict_molecule_stability"] == 1.0 and r["midi_molecule_stability"] == 1.0
    assert r["edm_molecule_stability"] == 0.0 and r["validity"] == 1.0
    neutral = Molecule(m.elements, m.positions, None, bonds=m.bonds, name="charges dropped")
    r = evaluate_molecules([neutral])
    assert r["strict_molecule_stability"] == 0.0 and r["validity"] == 0.0


def test_midi_table_is_lenient_where_the_strict_one_is_not():
    # a methyl radical carbon (three bonds, neutral) passes MiDi's table only
    ethane = embed_smiles("CC", name="ethane")
    bonds = ethane.bonds.copy()
    h = next(i for i, e in enumerate(ethane.elements) if e == "H" and bonds[0, i])
    bonds[0, h] = bonds[h, 0] = 0
    keep = [i for i in range(len(ethane)) if i != h]
    radical = Molecule([ethane.elements[i] for i in keep], ethane.positions[keep], bonds=bonds[np.ix_(keep, keep)])
    r = evaluate_molecules([radical])
    assert r["midi_molecule_stability"] == 1.0 and r["strict_molecule_stability"] == 0.0
    assert 3 in midi_valences("C", 0) and 3 not in charged_valences("C", 0)
    assert midi_valences("N", 1) == (2, 3, 4) and charged_valences("N", 1) == (4,)


@pytest.mark.parametrize("element,charge,valence", [("O", -1, 1), ("N", 1, 4), ("C", -1, 3), ("F", 0, 1)])
def test_strict_table_entries(element, charge, valence):
    assert valence in charged_valences(element, charge)

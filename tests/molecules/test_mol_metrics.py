"""EDM's metrics: the QM9 test split gives EDM's "data" line; broken molecules are caught."""

import time


from diffsuite.domains.molecules.metrics import evaluate_molecules
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
    # EDM reports 99.0 / 95.2 / 97.7 on the data itself
    assert r["atom_stability"] > 0.985
    assert 0.92 < r["molecule_stability"] < 0.98
    assert 0.95 < r["validity"] <= 1.0
    assert r["uniqueness"] > 0.99 and r["connectivity"] > 0.99
    assert per_molecule * 10000 < 600  # 10,000 molecules in well under an hour (10 min bound)


def test_broken_geometry_is_unstable_and_novelty():
    mol = embed_smiles("CC(=O)O", name="acetic acid")
    r = evaluate_molecules([mol], train_smiles={"CC(=O)O"})
    assert r["molecule_stability"] == 1.0 and r["validity"] == 1.0 and r["novelty"] == 0.0
    far = Molecule(mol.elements, mol.positions.copy(), name="detached H")
    far.positions[-1] += 5.0
    r = evaluate_molecules([far], train_smiles={"CC(=O)O"})
    assert r["molecule_stability"] == 0.0 and r["connectivity"] == 0.0
    squashed = Molecule(mol.elements, mol.positions * 0.7, name="squashed")
    assert evaluate_molecules([squashed])["molecule_stability"] == 0.0


def test_charge_aware_valence():
    # methylammonium: N+ with four single bonds is right for its charge, wrong for EDM's N3 table
    m = embed_smiles("C[NH3+]", name="methylammonium")
    assert sorted(m.charges.tolist())[-1] == 1
    r = evaluate_molecules([m])
    assert r["charge_valence_molecules"] == 1.0 and r["molecule_stability"] == 0.0 and r["validity"] == 1.0
    neutral = Molecule(m.elements, m.positions, None, name="charges dropped")
    assert evaluate_molecules([neutral])["charge_valence_molecules"] == 0.0

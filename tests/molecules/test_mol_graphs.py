"""Bonds and formal charges as data: QM9's graphs reproduce its canonical SMILES, and the SDF,
XYZ and SMILES adapters bring users' bonds in."""

import time

import numpy as np
import pytest
from rdkit import Chem

from diffsuite.domains.molecules.dataset import from_molecules
from diffsuite.domains.molecules.graphs import (canonical_smiles, graph_smiles, perceive_graph, process_qm9_graphs,
                                                smiles_graph_on_geometry)
from diffsuite.domains.molecules.molecule import Molecule
from diffsuite.domains.molecules.qm9 import ELEMENTS, load_qm9
from diffsuite.domains.molecules.readers import embed_smiles, read_sdf, read_smiles, read_xyz
from diffsuite.domains.molecules.vocabulary import make_vocabulary


def test_qm9_graphs_reproduce_its_smiles():
    data = load_qm9()
    first = {k: v[:1500] for k, v in data.items()}
    start = time.perf_counter()
    g = process_qm9_graphs(first, ELEMENTS)
    assert time.perf_counter() - start < 60
    assert g["smiles_ok"].mean() >= 0.995  # all 130,831: 99.998% (domains/molecules/README.md)
    assert g["bond_count"].sum() == len(g["bond_i"]) and set(np.unique(g["bond_order"])) <= {1, 2, 3}
    # charged QM9 molecules keep their charges, and the total is QM9's (neutral) charge
    assert (g["charges"].sum(1) == 0).all()


def test_strained_cage_gets_the_smiles_bonds_not_the_close_contacts():
    # bicyclo[1.1.0]butane: the bridgehead-bridgehead contact is short; the SMILES graph wins
    data = load_qm9()
    row = next(r for r in range(400) if str(data["smiles"][r]) == "C1C2CC1C2")
    n = int(data["n_atoms"][row])
    els = [ELEMENTS[t] for t in data["types"][row, :n]]
    orders, charges = smiles_graph_on_geometry(els, data["positions"][row, :n], "C1C2CC1C2")
    assert graph_smiles(els, orders, charges) == canonical_smiles("C1C2CC1C2")


def test_mismatched_smiles_is_an_error():
    m = embed_smiles("CCO")
    with pytest.raises(ValueError, match="other atoms"):
        smiles_graph_on_geometry(m.elements, m.positions, "CCN", where="row 7")


@pytest.mark.parametrize("smiles", ["c1ccccc1O", "CC(=O)[O-].[NH4+]", "N#CC=C", "O=C1NC=CC=C1"])
def test_smiles_adapter_keeps_kekule_bonds_and_charges(smiles, tmp_path):
    path = tmp_path / "in.smi"
    path.write_text(f"{smiles} x\n")
    m = read_smiles(path)[0]
    assert m.bonds is not None and set(np.unique(m.bonds)) <= {0, 1, 2, 3}
    assert graph_smiles(m.elements, m.bonds, m.charges) == canonical_smiles(smiles)


def test_sdf_adapter_reads_the_bond_block(egfr_sdf):
    mols = read_sdf(egfr_sdf, limit=20)
    ref = [m for m in Chem.SDMolSupplier(str(egfr_sdf), removeHs=False)][:20]
    agree = sum(graph_smiles(m.elements, m.bonds, m.charges) == Chem.MolToSmiles(Chem.RemoveHs(r), isomericSmiles=False)
                for m, r in zip(mols, ref) if r is not None)
    assert agree == sum(r is not None for r in ref)


def test_xyz_adapter_perceives_bonds_when_the_joint_model_needs_them(tmp_path):
    smiles = ["CCO", "c1ccccc1N", "CC#N"]
    mols = [embed_smiles(s, name=s) for s in smiles]
    path = tmp_path / "three.xyz"
    path.write_text("".join(f"{len(m)}\n{m.name}\n" + "".join(f"{e} {x:.6f} {y:.6f} {z:.6f}\n" for e, (x, y, z) in
                                                         zip(m.elements, m.positions)) for m in mols))
    back = read_xyz(path)
    assert all(m.bonds is None for m in back)
    ds = from_molecules(back, make_vocabulary("qm9_charged"), bonds=True)
    for k, s in enumerate(smiles):
        n = int(ds.n_atoms[k])
        els = [ds_el for ds_el in np.array(make_vocabulary("qm9_charged").elements)[ds.types[k, :n]]]
        assert graph_smiles(els, ds.bond_matrix(k), ds.charges[k, :n]) == canonical_smiles(s)
    orders, _ = perceive_graph(back[0].elements, back[0].positions)
    assert orders.sum() // 2 == 8  # ethanol: 8 single bonds


def test_bad_bond_matrix_is_refused():
    with pytest.raises(ValueError, match="symmetric"):
        Molecule(["C", "O"], np.zeros((2, 3)), bonds=np.array([[0, 1], [2, 0]]), name="bad")

"""QM9 split and adapters: real files through RDKit; bad records reported and skipped."""

import logging

import numpy as np
import pytest

from diffsuite.domains.molecules.dataset import from_molecules
from diffsuite.domains.molecules.qm9 import edm_split, load_qm9, qm9_split
from diffsuite.domains.molecules.readers import embed_smiles, read_molecules, read_sdf, read_smiles, read_xyz
from diffsuite.domains.molecules.vocabulary import make_vocabulary


def test_edm_split_sizes_disjoint_and_histogram():
    parts = {s: edm_split(s) for s in ("train", "val", "test")}
    assert [len(p) for p in parts.values()] == [100000, 17748, 13083]
    allrows = np.concatenate(list(parts.values()))
    assert len(np.unique(allrows)) == 130831
    train = qm9_split("train")
    hist = np.bincount(train["n_atoms"], minlength=30)
    # EDM's published training histogram (a few of its bins)
    assert (hist[17], hist[19], hist[29], hist[3]) == (13025, 13832, 25, 1)
    data = load_qm9()
    assert (np.diff(data["index"]) > 0).all()


def test_sdf_bad_record_skipped(tmp_path, egfr_sdf, caplog):
    text = egfr_sdf.read_text().split("$$$$\n")
    broken = "broken\n  nothing\n\n  3  2  0  0  0  0  0  0  0  0999 V2000\n garbage\n"
    path = tmp_path / "mixed.sdf"
    path.write_text("$$$$\n".join(text[:3] + [broken] + text[3:5]) + "$$$$\n")
    with caplog.at_level(logging.WARNING):
        mols = read_sdf(path)
    assert len(mols) == 5
    assert any("record 4" in r.message for r in caplog.records)
    assert all("H" in m.elements for m in mols)
    assert any(set(m.elements) & {"Cl", "Br", "S", "I", "F"} for m in read_sdf(egfr_sdf, limit=50))


def test_xyz_round_trip(tmp_path):
    mols = [embed_smiles(s, name=s) for s in ("CCO", "c1ccccc1N")]
    path = tmp_path / "two.xyz"
    path.write_text("".join(f"{len(m)}\n{m.name}\n" + "".join(f"{e} {x:.6f} {y:.6f} {z:.6f}\n" for e, (x, y, z) in
                                                         zip(m.elements, m.positions)) for m in mols) + "2\nbad\nC 0 0\n")
    back = read_xyz(path)
    assert len(back) == 2
    for a, b in zip(mols, back):
        assert a.elements == b.elements
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-5)


def test_smiles_file_skips_unembeddable(tmp_path, caplog):
    path = tmp_path / "in.smi"
    path.write_text("CCO ethanol\nnot_a_smiles bad\nC1=CC=CC=C1 benzene\n")
    with caplog.at_level(logging.WARNING):
        mols = read_smiles(path)
    assert [m.name for m in mols] == ["ethanol", "benzene"]
    assert any("line 2" in r.message for r in caplog.records)
    assert mols[0].elements.count("H") == 6
    d = np.linalg.norm(mols[0].positions[0] - mols[0].positions[1])
    assert 1.4 < d < 1.6  # a real C-C bond after MMFF


def test_unreadable_file_is_an_error(tmp_path):
    p = tmp_path / "x.smi"
    p.write_text("nope\n")
    with pytest.raises(ValueError, match="x.smi"):
        read_molecules(p)
    with pytest.raises(ValueError, match="unknown molecule file type"):
        (tmp_path / "y.pdbqt").write_text("")
        read_molecules(tmp_path / "y.pdbqt")


def test_vocabulary_filters_records(egfr_sdf, caplog):
    mols = read_sdf(egfr_sdf, limit=40)
    with caplog.at_level(logging.WARNING):
        qm9 = from_molecules(mols, make_vocabulary("qm9"))
    drug = from_molecules(mols, make_vocabulary("drug"))
    assert len(drug) == 40
    assert len(qm9) < 40 and any("outside the vocabulary" in r.message for r in caplog.records)
    small = from_molecules(mols, make_vocabulary("drug"), max_atoms=30)
    assert small.n_atoms.max() <= 30

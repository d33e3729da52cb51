"""Bad molecule files get one error naming the file; a bad record among good ones is skipped."""

import logging

import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from diffsuite.core.errors import MissingFileError, UserError
from diffsuite.domains.molecules import MoleculesDomain
from diffsuite.domains.molecules.readers import read_molecules, read_sdf, read_xyz


def _sdf_block(smiles):
    m = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(m, randomSeed=0)
    return Chem.MolToMolBlock(m) + "$$$$\n"


@pytest.fixture
def domain():
    return MoleculesDomain(pretrained=None)


def test_missing_and_empty_fragment_sdf_name_the_file(domain, tmp_path):
    with pytest.raises(MissingFileError, match=r"no SDF file at .*missing\.sdf"):
        domain.sampling_batch(1, fragment=str(tmp_path / "missing.sdf"))
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    with pytest.raises(UserError, match=r"empty\.sdf: the SDF file is empty"):
        domain.sampling_batch(1, fragment=str(empty))
    junk = tmp_path / "junk.sdf"
    junk.write_text("not a molecule\n")
    with pytest.raises(UserError, match=r"junk\.sdf"):
        domain.sampling_batch(1, fragment=str(junk))
    assert empty.read_text() == "" and junk.read_text() == "not a molecule\n"


def test_binary_xyz_is_one_error_naming_it(domain, tmp_path):
    binary = tmp_path / "mol.xyz"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(UserError, match=r"mol\.xyz: not a text XYZ file"):
        read_xyz(binary)
    with pytest.raises(UserError, match=r"mol\.xyz: not a text XYZ file"):
        read_molecules(binary)
    with pytest.raises(UserError, match=r"mol\.xyz: not a text XYZ file"):
        domain.sampling_batch(1, fragment=str(binary))


def test_corrupt_record_among_good_ones_is_named_and_skipped(tmp_path, caplog):
    sdf = tmp_path / "mixed.sdf"
    broken = "broken\n  junk\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\nthis is not an atom line\n$$$$\n"
    sdf.write_text(_sdf_block("CCO") + broken + _sdf_block("CC(=O)O"))
    with caplog.at_level(logging.WARNING):
        mols = read_sdf(sdf)
    assert len(mols) == 2 and sorted(len(m.elements) for m in mols) == [8, 9]  # ethanol and acetic acid
    assert "mixed.sdf record 2" in caplog.text


def test_unknown_molecule_sampling_option_is_an_error(domain):
    with pytest.raises(UserError, match=r"unknown molecules sampling option 'atoms'; expected one of num_atoms"):
        domain.sampling_batch(1, atoms=9)

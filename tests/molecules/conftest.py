from pathlib import Path

import pytest

import rdkit

RDKIT_DATA = Path(rdkit.__file__).parent
EGFR = RDKIT_DATA / "Contrib" / "PBF" / "testData" / "egfr.sdf"


@pytest.fixture(scope="session")
def egfr_sdf() -> Path:
    if not EGFR.is_file():
        pytest.skip("the rdkit wheel ships no egfr.sdf here")
    return EGFR


@pytest.fixture(scope="session")
def qm9_small():
    from diffsuite.domains.molecules import MoleculesDomain

    return MoleculesDomain(preset="XS", max_molecules=300)

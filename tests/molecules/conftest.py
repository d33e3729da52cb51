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


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Molecule tests run tiny tensors (a few atoms): a second intra-op thread buys nothing, and on
    a busy shared CPU its barriers made a 40-step training test 100x slower (25 ms -> 2-5 s a step,
    measured at load average 22). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

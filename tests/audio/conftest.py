import pytest
import torch

from diffsuite.domains.audio import AudioDomain


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture
def tiny_domain(tmp_path):
    """The synthetic set at test size: XS network, 6 / 2 / 3 clips per class."""
    return AudioDomain(preset="XS", synthetic_per_class=(6, 2, 3), cache_dir=str(tmp_path / "cache"), pretrained=None)

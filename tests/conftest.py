import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def gm():
    from diffsuite.core.toy import GaussianMixture

    return GaussianMixture.ring()

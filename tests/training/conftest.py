import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread, as in the trainer's subprocesses: on a small shared CPU a second
    OpenMP thread only spins, and float results then match the subprocesses bit for bit."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

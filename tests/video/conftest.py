import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Video tests run tiny clips (8 frames of 8-16 pixels in the training tests): a second
    intra-op thread buys nothing, and on a busy shared CPU its barriers made the tiny training
    test many times slower (measured at load average 15-25). Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""The DGMN2 tests run their small models on one thread (steadier on a shared machine), and give the thread count back."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

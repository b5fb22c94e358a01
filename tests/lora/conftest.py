import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

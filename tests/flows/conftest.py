import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def moons():
    from probest.datasets import make_flow_toy

    return make_flow_toy(2000, random_state=0), make_flow_toy(2000, random_state=1)


@pytest.fixture(scope="session")
def grid():
    g = np.linspace(-4, 4, 241)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    return G, (g[1] - g[0]) ** 2

"""Repository-wide pytest configuration.

* ``slow`` tests are deselected unless ``-m`` selects them (``pytest -m slow`` runs them);
* ``gpu`` tests skip when CUDA is unavailable;
* BLAS/torch threads are pinned to one per process (2-core CI machines: oversubscription
  made fits 10x slower) and matplotlib uses the Agg backend.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    markexpr = config.getoption("-m") or ""
    cuda = None
    for item in items:
        if "slow" in item.keywords and "slow" not in markexpr:
            item.add_marker(pytest.mark.skip(reason="slow: run with `pytest -m slow`"))
        if "gpu" in item.keywords:
            if cuda is None:
                import torch

                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs CUDA"))

"""Snapshots of every global RNG probest promises not to touch."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def global_rng_states() -> dict:
    """Python ``random``, numpy's legacy global RandomState, torch CPU (and CUDA) states.

    Returns
    -------
    dict
        ``{"python", "numpy", "torch"}`` state snapshots, plus ``"cuda"`` when CUDA is
        initialised.

    Examples
    --------
    >>> from probest.testing import global_rng_states
    >>> {"python", "numpy", "torch"} <= set(global_rng_states())
    True
    """
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(legacy=False),  # noqa: NPY002 (the global state is the point)
        "torch": torch.get_rng_state().clone(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = [s.clone() for s in torch.cuda.get_rng_state_all()]
    return states


def _same(a: dict, b: dict) -> list[str]:
    diff = []
    if a["python"] != b["python"]:
        diff.append("python random")
    na, nb = a["numpy"], b["numpy"]
    sa, sb = na["state"], nb["state"]
    if not (np.array_equal(sa["key"], sb["key"]) and sa["pos"] == sb["pos"]):
        diff.append("numpy global RandomState")
    if not torch.equal(a["torch"], b["torch"]):
        diff.append("torch CPU generator")
    if "cuda" in a and "cuda" in b and not all(torch.equal(x, y) for x, y in zip(a["cuda"], b["cuda"])):
        diff.append("torch CUDA generators")
    return diff


@contextlib.contextmanager
def assert_rng_untouched() -> Iterator[None]:
    """Fail if the block changes any global RNG state.

    A context manager: it snapshots :func:`global_rng_states` on entry and raises
    ``AssertionError`` naming every generator that changed on exit.

    Yields
    ------
    None

    Examples
    --------
    >>> import random
    >>> import numpy as np
    >>> from probest.testing import assert_rng_untouched
    >>> with assert_rng_untouched():
    ...     _ = np.random.default_rng(0).normal()  # a local generator: fine
    >>> with assert_rng_untouched():
    ...     _ = random.random()
    Traceback (most recent call last):
    ...
    AssertionError: global RNG state changed: python random
    """
    before = global_rng_states()
    yield
    changed = _same(before, global_rng_states())
    if changed:
        raise AssertionError(f"global RNG state changed: {', '.join(changed)}")

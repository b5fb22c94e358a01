"""Toy 2-D densities for the flows family (two moons, Gaussian-smoothed sine/swirl/checkerboard)."""

from __future__ import annotations

import numpy as np

_KINDS = ("moons", "sine", "swirl", "checkerboard")


def make_flow_toy(n_samples=1000, kind="moons", noise=0.05, scale=1.5, random_state=None):
    """``n_samples x 2`` points from a toy density.

    ``"moons"``: sklearn's two moons (``noise``), centred and multiplied by ``scale`` — the
    flows family's reference data (the prototype numbers in the spec use noise 0.05, x1.5).
    ``"sine"``, ``"swirl"``, ``"checkerboard"``: the 2-D settings of the EBFlow paper, each
    smoothed by Gaussian noise of s.d. ``noise``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of points.
    kind : {"moons", "sine", "swirl", "checkerboard"}, default="moons"
        The density.
    noise : float, default=0.05
        Noise standard deviation (for ``"moons"``: sklearn's ``make_moons`` noise).
    scale : float, default=1.5
        Multiplier of the centred moons (``"moons"`` only).
    random_state : None, int or numpy RandomState, default=None
        Seed of the draw.

    Returns
    -------
    ndarray of shape (n_samples, 2)
        The points.

    Examples
    --------
    >>> from probest.datasets import make_flow_toy
    >>> make_flow_toy(100, random_state=0).shape
    (100, 2)
    >>> make_flow_toy(10, kind="swirl", random_state=0).shape
    (10, 2)
    """
    from sklearn.utils import check_random_state

    if kind not in _KINDS:
        raise ValueError(f"kind={kind!r} is not supported; choose from {_KINDS}.")
    if int(n_samples) < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
    rng = check_random_state(random_state)
    n = int(n_samples)
    if kind == "moons":
        from sklearn.datasets import make_moons

        X, _ = make_moons(n, noise=noise, random_state=rng)
        return (X - np.array([0.5, 0.25])) * scale
    if kind == "sine":
        x = rng.uniform(-3, 3, n)
        X = np.stack([x, np.sin(x * 1.5) * 1.5], 1)
    elif kind == "swirl":
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        X = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 3.0
    else:
        x1 = rng.uniform(-2, 2, n)
        x2 = rng.uniform(0, 1, n) + rng.randint(0, 2, n) * 2 - 2 + (np.floor(x1) % 2)
        X = np.stack([x1, x2], 1)
    return X + noise * rng.standard_normal(X.shape)

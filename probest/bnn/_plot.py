"""A plot of the particle posterior of a 1-D or 2-D stochastic block (or of one or two
chosen coordinates of a larger one)."""

from __future__ import annotations

import numpy as np


def plot_particle_posterior(est, dims=None, ax=None, reference=None, bins=60):
    """Weighted histogram (one coordinate) or weighted 2-D histogram (two coordinates) of
    the particles of a fitted estimator or :class:`~probest.bnn.FeynmanKacTrainer`.

    Parameters
    ----------
    est : fitted PartialBayesianMLP* or FeynmanKacTrainer
    dims : int or pair of int, optional
        Coordinates of the block to show (default: the whole block when it has 1 or 2
        coordinates; required otherwise).
    ax : matplotlib Axes, optional
    reference : (grid, density), optional
        An exact 1-D density to overlay (e.g. ``bimodal_grid_posterior(y)``).
    bins : int

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from probest.bnn import plot_particle_posterior
    >>> class Fitted:  # anything with particles_ and log_weights_
    ...     particles_ = np.random.default_rng(0).normal(size=(500, 1))
    ...     log_weights_ = np.zeros(500)
    >>> ax = plot_particle_posterior(Fitted())
    >>> ax.get_xlabel()
    'phi[0]'
    """
    import matplotlib.pyplot as plt

    phi = np.asarray(_numpy(est.particles_), dtype=np.float64)
    lw = np.asarray(_numpy(est.log_weights_), dtype=np.float64)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    if dims is None:
        if phi.shape[1] > 2:
            raise ValueError(f"the block has {phi.shape[1]} coordinates: choose one or two "
                             "with dims=(i,) or dims=(i, j).")
        dims = tuple(range(phi.shape[1]))
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if not 1 <= len(dims) <= 2:
        raise ValueError(f"dims must name one or two coordinates, got {dims}.")
    if ax is None:
        ax = plt.subplots(figsize=(5, 3.5))[1]
    if len(dims) == 1:
        ax.hist(phi[:, dims[0]], bins=bins, weights=w, density=True, alpha=0.6, label="particles")
        if reference is not None:
            ax.plot(reference[0], reference[1], "k-", lw=1.2, label="exact")
            ax.legend()
        ax.set_xlabel(f"phi[{dims[0]}]")
        ax.set_ylabel("density")
    else:
        ax.hist2d(phi[:, dims[0]], phi[:, dims[1]], bins=bins, weights=w, cmap="viridis")
        ax.set_xlabel(f"phi[{dims[0]}]")
        ax.set_ylabel(f"phi[{dims[1]}]")
    return ax


def _numpy(a):
    return a.detach().cpu().numpy() if hasattr(a, "detach") else a

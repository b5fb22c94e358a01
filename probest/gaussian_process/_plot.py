"""The hyperparameter objective surface: Laplace evidence, EP energy, ELBO and the hybrid
(EP energy at CVI sites) over a lengthscale x output-scale grid (the paper's key figure)."""

from __future__ import annotations

import numpy as np
import torch

from probest.gaussian_process._gp import GPFit, Options
from probest.gaussian_process._kernels import make_kernel
from probest.gaussian_process._likelihoods import make_likelihood

#: kind -> (inference mode that finds the sites, objective evaluated there, label)
SURFACES = {
    "laplace": ("laplace", "laplace", "Laplace evidence"),
    "ep": ("ep", "ep", "EP energy (EP sites)"),
    "elbo": ("vi", "elbo", "ELBO (CVI sites)"),
    "hybrid": ("hybrid", "ep", "EP energy at CVI sites (hybrid)"),
}


def objective_surface(X, y, lengthscales, outputscales, *, kinds=("laplace", "ep", "elbo",
                                                                    "hybrid"),
                      link: str = "probit", kernel=None,
                      max_steps: int = 60) -> dict[str, np.ndarray]:
    """Each objective on the grid, shape ``(len(outputscales), len(lengthscales))``.

    Binary ``y`` (two classes).  At every grid point the sites are re-inferred to convergence
    by the mode that owns the objective (warm-started from the neighbouring point).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,)
        Binary labels.
    lengthscales : array-like of shape (n_lengthscales,)
        Grid of kernel lengthscales.
    outputscales : array-like of shape (n_outputscales,)
        Grid of kernel output scales.
    kinds : tuple of str, default=("laplace", "ep", "elbo", "hybrid")
        Objectives to evaluate.
    link : {"probit", "logit"}, default="probit"
        Likelihood link.
    kernel : None, str or gpytorch.kernels.Kernel, default=None
        As :class:`GaussianProcessClassifier`.
    max_steps : int, default=60
        Site-update budget per grid point.

    Returns
    -------
    dict of str to ndarray of shape (n_outputscales, n_lengthscales)
        Each objective on the grid.

    Examples
    --------
    >>> from probest.datasets import make_gp_classification
    >>> from probest.gaussian_process import objective_surface
    >>> X, y = make_gp_classification(30, random_state=0)
    >>> surf = objective_surface(X, y, [0.5, 1.0, 2.0], [1.0, 4.0], kinds=("laplace", "ep"),
    ...                          max_steps=10)
    >>> {kind: grid.shape for kind, grid in surf.items()}
    {'laplace': (2, 3), 'ep': (2, 3)}
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError("objective_surface needs binary labels (exactly two classes).")
    for k in kinds:
        if k not in SURFACES:
            raise ValueError(f"unknown kind {k!r}; use {sorted(SURFACES)}.")
    Xt = torch.tensor(X)
    yt = torch.tensor(np.where(y == classes[1], 1.0, -1.0))
    out = {}
    for k in kinds:
        mode, objective, _ = SURFACES[k]
        fit = GPFit(make_kernel(kernel, X.shape[1]), make_likelihood(link), Xt, yt, mode,
                    options=Options())
        names = fit.theta_names()
        grid = np.full((len(outputscales), len(lengthscales)), np.nan)
        for i, os_ in enumerate(outputscales):
            for j, ls in enumerate(lengthscales):
                theta = torch.tensor([np.log(os_) if n == "log_outputscale" else np.log(ls)
                                      for n in names], dtype=torch.float64)
                fit.set_theta(theta)  # sites warm-start from the previous grid point
                with torch.no_grad():
                    fit.e_step(0, converge=True, max_steps=max_steps)
                    grid[i, j] = float(fit.objective(objective))
        out[k] = grid
    return out


def plot_objective_surface(X, y, lengthscales=None, outputscales=None, *,
                           kinds=("laplace", "ep", "elbo", "hybrid"), link="probit",
                           estimators=(), path=None, levels: int = 25, figsize=None):
    """Contour panels of :func:`objective_surface`, one per kind, with maximisers and fits.

    Each panel marks its maximiser (star) and the fitted hyperparameters of ``estimators``
    (binary GaussianProcessClassifier instances, drawn as labelled dots).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Inputs.
    y : array-like of shape (n_samples,)
        Binary labels.
    lengthscales : array-like, optional
        Lengthscale grid (default 12 log-spaced values around ``sqrt(n_features)``).
    outputscales : array-like, optional
        Output-scale grid (default log-spaced).
    kinds : tuple of str, default=("laplace", "ep", "elbo", "hybrid")
        One panel per objective.
    link : {"probit", "logit"}, default="probit"
        Likelihood link.
    estimators : sequence of GaussianProcessClassifier, default=()
        Fitted binary classifiers to mark.
    path : str or pathlib.Path, optional
        Save the figure there.
    levels : int, default=25
        Contour levels per panel.
    figsize : tuple of float, optional
        Figure size in inches (default 4.2 x 3.8 per panel); the layout is constrained
        (colorbars included).

    Returns
    -------
    matplotlib.figure.Figure
        The figure (also saved to ``path`` when given).

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from probest.datasets import make_gp_classification
    >>> from probest.gaussian_process import plot_objective_surface
    >>> X, y = make_gp_classification(30, random_state=0)
    >>> fig = plot_objective_surface(X, y, [0.5, 1.0, 2.0], [1.0, 4.0], kinds=("laplace",))
    >>> len(fig.axes) >= 1
    True
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    X = np.asarray(X, dtype=np.float64)
    if lengthscales is None:
        lengthscales = np.geomspace(0.3, 30, 12) * np.sqrt(X.shape[1])
    if outputscales is None:
        outputscales = np.geomspace(0.3, 300, 12)
    surf = objective_surface(X, y, lengthscales, outputscales, kinds=kinds, link=link)
    figsize = (4.2 * len(kinds), 3.8) if figsize is None else figsize
    fig, axes = plt.subplots(1, len(kinds), figsize=figsize, squeeze=False, layout="constrained")
    L, S = np.meshgrid(lengthscales, outputscales)
    for ax, k in zip(axes[0], kinds):
        z = surf[k]
        finite = np.isfinite(z)
        lo = np.nanpercentile(z[finite], 40) if finite.any() else 0
        cs = ax.contourf(L, S, np.clip(z, lo, None), levels=levels, cmap="viridis")
        fig.colorbar(cs, ax=ax, shrink=0.85)
        i, j = np.unravel_index(np.nanargmax(z), z.shape)
        ax.plot(lengthscales[j], outputscales[i], "r*", ms=14, label="grid max")
        for est, marker in zip(estimators, "osD^vP"):
            h = est.hyperparameters_
            ax.plot(h["lengthscale"], h["outputscale"], marker, mfc="w", mec="k", ms=7,
                    label=f"fitted {est.inference}")
        ax.set(xscale="log", yscale="log", xlabel="lengthscale", title=SURFACES[k][2])
        ax.title.set_fontsize(9)
    axes[0][0].set_ylabel("output scale (variance)")
    axes[0][0].legend(loc="lower right", fontsize=7, framealpha=0.8)
    if path is not None:
        from probest.viz import savefig

        savefig(fig, path)
    return fig

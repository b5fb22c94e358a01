"""ArviZ conversion and plot helpers.

:func:`to_inference_data` builds ArviZ data from draws with ``(chain, draw)`` leading
dims on ArviZ 0.2x (``InferenceData``) and 1.x (``DataTree``, whose ``from_dict`` takes
one dict of groups).  :func:`gaussian_inference_data` draws from a Gaussian (Laplace
or sandwich) approximation of a parameter posterior.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def import_arviz():
    """Import ArviZ without its import-time FutureWarning about the 1.x refactor.

    Returns
    -------
    module
        The ``arviz`` module.

    Examples
    --------
    >>> from probest.viz import import_arviz
    >>> az = import_arviz()
    >>> az.__name__
    'arviz'
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")
        warnings.filterwarnings("ignore", message=".*ArviZ is undergoing a major refactor.*")
        import arviz as az
    return az


def _as_chain_draw(value: Any, chains: int | None) -> np.ndarray:
    arr = np.asarray(value)
    if chains is None:  # caller says the leading axes already are (chain, draw)
        if arr.ndim < 2:
            raise ValueError(
                "draws must have (chain, draw, ...) leading dims; pass chains=1 for a flat "
                f"(draw, ...) array (got shape {arr.shape})."
            )
        return arr
    if arr.ndim < 1 or arr.shape[0] % chains:
        raise ValueError(f"cannot split {arr.shape[0] if arr.ndim else 0} draws into {chains} chains.")
    return arr.reshape(chains, arr.shape[0] // chains, *arr.shape[1:])


def _check_weights(weights: Any, chains: int | None, shape: tuple[int, int]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != (1 if chains is not None else 2):
        raise ValueError(f"weights must have one entry per draw, shaped like the draws' leading "
                         f"{'(draw,)' if chains is not None else '(chain, draw)'} axes; got shape {w.shape}.")
    w = _as_chain_draw(w, chains)
    if w.shape != shape:
        raise ValueError(f"weights have shape {w.shape} after the chain split, the draws {shape}.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and non-negative (pass np.exp(log_w - log_w.max()) "
                         "for log-weights).")
    if np.any(w.sum(axis=1) <= 0):
        raise ValueError("weights are all zero in a chain: nothing to resample.")
    return w / w.sum(axis=1, keepdims=True)


def _resample_indices(weights: np.ndarray, method: str = "systematic", random_state: Any = None
                     ) -> np.ndarray:
    """``len(weights)`` indices drawn in proportion to normalised ``weights`` (1-D, >= 0).

    ``"systematic"``: one uniform ``u``, positions ``(u + k) / n``, inverted through the
    cumulative weights (every index with weight ``>= 1/n`` is kept; the lowest-variance of
    the standard schemes).  ``"multinomial"``: ``n`` independent draws.  Indices of zero
    weight are never returned.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = len(w)
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(
        random_state)
    if method == "multinomial":
        return np.sort(rng.choice(n, size=n, p=w / w.sum()))
    if method != "systematic":
        raise ValueError(f"resampling={method!r} is not supported; use 'systematic' or 'multinomial'.")
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    idx = np.searchsorted(cdf, (rng.random() + np.arange(n)) / n, side="right")
    return np.minimum(idx, np.flatnonzero(w)[-1])  # rounding at the top never picks a zero weight


def to_inference_data(
    posterior: Mapping[str, Any],
    *,
    chains: int | None = 1,
    weights: Any = None,
    resampling: str = "systematic",
    random_state: Any = None,
    sample_stats: Mapping[str, Any] | None = None,
    observed_data: Mapping[str, Any] | None = None,
    coords: Mapping[str, Sequence] | None = None,
    dims: Mapping[str, Sequence[str]] | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """InferenceData (0.2x) / DataTree (1.x) from draws, optionally weighted.

    Parameters
    ----------
    posterior : dict name -> array
        ``(draw, ...)`` arrays split into ``chains`` equal chains (default one chain, as for
        SMC or Laplace draws), or ``(chain, draw, ...)`` arrays when ``chains=None``.
    chains : int or None
        Number of equal chains to split the draws into, or None for ``(chain, draw)`` input.
    weights : array, optional
        Non-negative importance weights of the draws (SMC particles, ensemble members),
        shaped ``(draw,)`` (split like the draws) or ``(chain, draw)`` with ``chains=None``;
        need not be normalised (for log-weights pass ``np.exp(log_w - log_w.max())``).
        Non-finite or negative weights, or a chain whose weights are all zero, raise
        ``ValueError``.  Weights are normalised within each chain and each chain's draws
        are **resampled** to the same number of equally weighted draws (see
        the ``resampling`` argument), so ``az.summary`` and plots of the ``posterior`` group
        are weighted summaries.  The ``sample_stats`` group then gains, per posterior draw
        ``(chain, draw)``:

        * ``weight`` — the normalised weight (within its chain) of the input draw it copies;
        * ``resample_index`` — which input draw of its chain it copies (int);
        * ``ess`` — the chain's effective sample size ``1 / sum(w**2)`` (the same value
          along ``draw``);

        and any ``sample_stats`` passed in are resampled with the same indices, so every
        variable stays aligned with the posterior draws.  ``idata.attrs["resampling"]``
        names the scheme.
    resampling : {"systematic", "multinomial"}
        Systematic (default) has the least resampling noise of the two and is unbiased;
        multinomial is the textbook i.i.d. scheme.
    random_state : int, numpy Generator or None
        Seeds the resampling (a fixed seed gives the same draws every call).
    sample_stats : dict name -> array, optional
        Extra group following the same chain rule as ``posterior``.
    observed_data : dict name -> array, optional
        Observed-data group (no chain/draw dims).
    coords : dict name -> sequence, optional
        Coordinate values, passed to ArviZ.
    dims : dict name -> list of str, optional
        Dimension names of each variable, passed to ArviZ.
    attrs : dict, optional
        Attributes of the result.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        InferenceData on ArviZ 0.2x, DataTree on ArviZ 1.x.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.viz import to_inference_data
    >>> rng = np.random.default_rng(0)
    >>> idata = to_inference_data({"mu": rng.normal(size=100), "sigma": rng.gamma(2.0, size=100)})
    >>> dict(idata.posterior.sizes)
    {'chain': 1, 'draw': 100}
    >>> x = np.random.default_rng(0).normal(size=1000)
    >>> idata = to_inference_data({"x": x}, weights=np.exp(x), random_state=0)
    >>> idata.posterior["x"].shape, idata.sample_stats["ess"].shape
    ((1, 1000), (1, 1000))
    """
    az = import_arviz()
    post = {k: _as_chain_draw(v, chains) for k, v in posterior.items()}
    if not post:
        raise ValueError("posterior must contain at least one variable.")
    stats = {k: _as_chain_draw(v, chains) for k, v in (sample_stats or {}).items()}
    if weights is not None:
        post, stats, attrs = _resampled(post, stats, weights, chains, resampling, random_state, attrs)
    groups: dict[str, Any] = {"posterior": post}
    if stats:
        groups["sample_stats"] = stats
    if observed_data:
        groups["observed_data"] = {k: np.asarray(v) for k, v in observed_data.items()}
    kwargs: dict[str, Any] = {}
    if coords:
        kwargs["coords"] = {k: list(v) for k, v in coords.items()}
    if dims:
        kwargs["dims"] = {k: list(v) for k, v in dims.items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        if "posterior" in inspect.signature(az.from_dict).parameters:  # ArviZ < 1.0
            idata = az.from_dict(**groups, **kwargs, attrs=dict(attrs or {}))
        else:  # ArviZ >= 1.0: from_dict(data: dict[group, dict[var, array]], ...)
            idata = az.from_dict(groups, **kwargs)
            if attrs:
                idata.attrs.update(dict(attrs))
    return idata


def _resampled(post, stats, weights, chains, resampling, random_state, attrs):
    """Resample every chain of ``post`` and ``stats`` by ``weights`` (see to_inference_data)."""
    lead = {v.shape[:2] for v in post.values()}
    if len(lead) != 1:
        raise ValueError(f"posterior variables disagree on their (chain, draw) axes: {sorted(lead)}.")
    shape = lead.pop()
    w = _check_weights(weights, chains, shape)
    for k, v in stats.items():
        if v.shape[:2] != shape:
            raise ValueError(f"sample_stats[{k!r}] has (chain, draw) axes {v.shape[:2]}, the draws {shape}.")
    rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(
        random_state)
    idx = np.stack([_resample_indices(wc, resampling, rng) for wc in w])
    rows = np.arange(idx.shape[0])[:, None]
    post = {k: v[rows, idx] for k, v in post.items()}
    stats = {k: np.asarray(v)[rows, idx] for k, v in stats.items()}
    ess = 1.0 / np.sum(w**2, axis=1)
    stats.update(weight=w[rows, idx], resample_index=idx,
                 ess=np.repeat(ess[:, None], idx.shape[1], axis=1))
    return post, stats, {**dict(attrs or {}), "resampling": resampling}


def to_arviz(obj: Any, **kwargs: Any):
    """ArviZ data from a fitted probest estimator or from a dict of draws.

    Parameters
    ----------
    obj : estimator or dict name -> array
        An estimator with ``to_arviz`` (called as ``obj.to_arviz(**kwargs)``) or draws for
        :func:`to_inference_data`.
    **kwargs
        Passed on.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        ``(chain, draw)`` leading dims.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.viz import to_arviz
    >>> draws = {"mu": np.random.default_rng(0).normal(size=(2, 50))}
    >>> dict(to_arviz(draws, chains=None).posterior.sizes)
    {'chain': 2, 'draw': 50}
    """
    if isinstance(obj, Mapping):
        return to_inference_data(obj, **kwargs)
    if hasattr(obj, "to_arviz"):
        return obj.to_arviz(**kwargs)
    raise TypeError(f"cannot convert {type(obj).__name__} to ArviZ: pass an estimator or a dict of draws.")


def gaussian_inference_data(
    mean: np.ndarray,
    cov: np.ndarray,
    *,
    names: Mapping[str, slice | int] | None = None,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    n_draws: int = 1000,
    random_state: Any = None,
    transforms: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
):
    """Draws from ``N(mean, cov)`` split into named variables, as ArviZ data (one chain).

    ``names`` maps a variable name to its slice of the flat parameter vector (default: one
    variable ``"theta"``); ``shapes`` reshapes each variable's draws; ``transforms`` maps a
    name to a function applied to its draws (e.g. ``np.exp`` for a log-scale parameter).
    ``cov`` is symmetrised and factorised by eigh so a PSD-but-singular matrix still works.

    Parameters
    ----------
    mean : array-like of shape (n_params,)
        Mean of the approximation (e.g. the MLE).
    cov : array-like of shape (n_params, n_params)
        Covariance (positive semi-definite).
    names : dict name -> slice or int, optional
        Variables and their positions in the parameter vector.
    shapes : dict name -> tuple of int, optional
        Shape of one draw of a variable.
    n_draws : int, default=1000
        Number of draws.
    random_state : None, int or numpy Generator, default=None
        Seed of the draws.
    transforms : dict name -> callable, optional
        Elementwise maps applied to a variable's draws.
    attrs : dict, optional
        Attributes of the result.

    Returns
    -------
    arviz.InferenceData or xarray.DataTree
        One chain of ``n_draws`` draws.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.viz import gaussian_inference_data
    >>> idata = gaussian_inference_data(np.zeros(3), np.eye(3), names={"a": 0, "b": slice(1, 3)},
    ...                                 n_draws=200, random_state=0)
    >>> idata.posterior["a"].shape, idata.posterior["b"].shape
    ((1, 200), (1, 200, 2))
    """
    mean = np.asarray(mean, dtype=np.float64).ravel()
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (mean.size, mean.size):
        raise ValueError(f"cov has shape {cov.shape}, expected {(mean.size, mean.size)}.")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise ValueError("mean and cov must be finite to draw from a Gaussian approximation.")
    vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
    if vals.min() < -1e-8 * max(1.0, abs(vals).max()):
        raise ValueError("cov is not positive semi-definite; the approximation is invalid here.")
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    rng = np.random.default_rng(random_state) if not isinstance(
        random_state, np.random.Generator) else random_state
    draws = mean + rng.standard_normal((n_draws, mean.size)) @ root.T
    names = dict(names or {"theta": slice(0, mean.size)})
    posterior = {}
    for name, sl in names.items():
        d = draws[:, sl]
        if shapes and name in shapes:
            d = d.reshape(n_draws, *shapes[name])
        if transforms and name in transforms:
            d = transforms[name](d)
        posterior[name] = d
    return to_inference_data(posterior, chains=1, attrs=attrs)


def savefig(fig, path) -> str:
    """Save a matplotlib figure (creating parent folders) and close it; return the path.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (closed afterwards).
    path : str or pathlib.Path
        Output file; its suffix picks the format.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import matplotlib.pyplot as plt
    >>> from probest.viz import savefig
    >>> fig, ax = plt.subplots()
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = savefig(fig, os.path.join(folder, "sub", "fig.png"))
    ...     os.path.exists(path)
    True
    """
    import pathlib

    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return str(path)


def plot_posterior(idata, var_names: Sequence[str] | None = None, path=None, **kwargs):
    """ArviZ posterior plot (works on 0.2x and 1.x); saved to ``path`` when given.

    Parameters
    ----------
    idata : arviz.InferenceData or xarray.DataTree
        Posterior draws (e.g. ``est.to_arviz()``).
    var_names : list of str, optional
        Variables to plot (default: all).
    path : str or pathlib.Path, optional
        Save the figure there (and close it) instead of returning it.
    **kwargs
        Passed to ArviZ's ``plot_posterior`` (``plot_dist`` on 1.x).

    Returns
    -------
    matplotlib.figure.Figure or str
        The figure, or the saved path when ``path`` is given.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> from probest.viz import gaussian_inference_data, plot_posterior
    >>> idata = gaussian_inference_data(np.zeros(2), np.eye(2), n_draws=100, random_state=0)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     os.path.exists(plot_posterior(idata, path=os.path.join(folder, "post.png")))
    True
    """
    az = import_arviz()
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        # ArviZ 0.23's plotting calls a matplotlib helper deprecated in 3.11: not ours to fix
        warnings.filterwarnings("ignore", message=".*alias_mapping.*")
        if hasattr(az, "plot_posterior"):
            axes = az.plot_posterior(idata, var_names=var_names, **kwargs)
            fig = np.ravel(axes)[0].figure
        else:  # ArviZ 1.x
            pc = az.plot_dist(idata, var_names=var_names, **kwargs)
            fig = getattr(pc, "viz", None)
            fig = plt.gcf() if fig is None else plt.gcf()
    if path is not None:
        return savefig(fig, path)
    return fig

"""Prediction-side code shared by the mixture estimators (scores, sampling, Pyro form)."""

from __future__ import annotations

import numpy as np
import torch

from probest._torch import draw_seed, numpy_dtype, seeded
from probest._validation import check_finite_rows
from probest.mixture._stats import (
    GaussParams,
    covariances_from_precisions_cholesky,
    log_gaussian_prob,
    precisions_cholesky,
)


def params_to_numpy(est, params: GaussParams, weights: torch.Tensor | None) -> None:
    """Write fitted parameters as numpy attributes (scikit-learn names)."""
    from probest.mixture._stats import precisions

    npd = numpy_dtype(params.means.dtype)
    if weights is not None:
        est.weights_ = weights.detach().cpu().numpy().astype(npd)
    est.means_ = params.means.detach().cpu().numpy().astype(npd)
    est.covariances_ = params.covariances.detach().cpu().numpy().astype(npd)
    est.precisions_cholesky_ = params.precisions_cholesky.detach().cpu().numpy().astype(npd)
    est.precisions_ = (
        precisions(params.precisions_cholesky, params.covariance_type).cpu().numpy().astype(npd)
    )


def host(a) -> np.ndarray:
    """``a`` as a host numpy array (torch tensors on any device included)."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def params_from_numpy(est) -> GaussParams:
    """The fitted Gaussian components as tensors on ``device_``/``dtype_``."""
    dev, dt = est.device_, est.dtype_
    return GaussParams(
        torch.as_tensor(host(est.means_), device=dev, dtype=dt),
        torch.as_tensor(host(est.covariances_), device=dev, dtype=dt),
        torch.as_tensor(host(est.precisions_cholesky_), device=dev, dtype=dt),
        est.covariance_type,
    )


def _check_shape(a: np.ndarray, shape: tuple, name: str, hint: str = "") -> None:
    if a.shape != shape:  # scikit-learn's wording
        raise ValueError(f"The parameter {name!r} should have the shape of {shape}, but got "
                         f"{a.shape}{hint}")


def _check_weights(w: np.ndarray, K: int) -> None:
    _check_shape(w, (K,), "weights", "; check weights_init.")
    if (w < 0).any() or (w > 1).any():
        # scikit-learn's exact text (its labels are swapped), then the true range
        raise ValueError(
            "The parameter 'weights' should be in the range [0, 1], but got max value "
            f"{np.min(w):.5f}, min value {np.max(w):.5f} (weights_init ranges from "
            f"{np.min(w):.5f} to {np.max(w):.5f}).")
    atol = 1e-6 if w.dtype == np.float32 else 1e-8  # scikit-learn's tolerances
    if not np.allclose(float(np.abs(1.0 - np.sum(w))), 0.0, atol=atol):
        raise ValueError("The parameter 'weights' should be normalized, but got "
                         f"sum(weights) = {np.sum(w):.5f}")


def _check_precisions(p: np.ndarray, ct: str) -> None:
    """scikit-learn's rule: full/tied precisions symmetric with positive eigenvalues (a
    non-symmetric matrix is rejected, not symmetrised); diag/spherical entries > 0."""
    if ct in ("full", "tied"):
        mats = p if ct == "full" else p[None]
        for m in mats:
            if not (np.allclose(m, m.T) and np.all(np.linalg.eigvalsh(m) > 0.0)):
                raise ValueError(f"'{ct} precision' should be symmetric, positive-definite "
                                 "(precisions_init).")
    elif np.any(np.less_equal(p, 0.0)):
        raise ValueError(f"'{ct} precision' should be positive (precisions_init).")


def user_params(est, n_features: int, device, dtype) -> dict:
    """Validate and convert ``weights_init``/``means_init``/``precisions_init`` (the
    messages are scikit-learn's)."""
    K, d, ct = est.n_components, n_features, est.covariance_type
    out = {}
    if est.weights_init is not None:
        w = host(est.weights_init)
        w = w if w.dtype.kind == "f" else w.astype(float)  # float32 sums as scikit-learn's
        _check_weights(w, K)
        out["weights"] = torch.tensor(w, device=device, dtype=dtype)
    if est.means_init is not None:
        m = host(est.means_init).astype(float)
        _check_shape(m, (K, d), "means", "; check means_init.")
        out["means"] = torch.tensor(m, device=device, dtype=dtype)
    if est.precisions_init is not None:
        shape = {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K,)}[ct]
        p = host(est.precisions_init).astype(float)
        _check_shape(p, shape, f"{ct} precision", "; check precisions_init.")
        _check_precisions(p, ct)
        P = torch.tensor(p, device=device, dtype=dtype)
        if ct in ("full", "tied"):
            # sklearn: precisions_cholesky = cholesky(P, lower); upper factor U with U U^T = P
            out["precisions_cholesky"] = torch.linalg.cholesky(P)
        else:
            out["precisions_cholesky"] = P.sqrt()
    return out


def apply_user_params(params: GaussParams, weights: torch.Tensor, given: dict):
    """Override initial parameters with the user's (scikit-learn's precedence)."""
    weights = given.get("weights", weights)
    means = given.get("means", params.means)
    if "precisions_cholesky" in given:
        pc = given["precisions_cholesky"]
        cov = covariances_from_precisions_cholesky(pc, params.covariance_type)
    else:
        pc, cov = params.precisions_cholesky, params.covariances
    return GaussParams(means, cov, pc, params.covariance_type), weights


def _chunks(X: torch.Tensor, rows: int):
    for s in range(0, X.shape[0], rows):
        yield X[s : s + rows]


def check_finite_log_density(est, log_joint: torch.Tensor, X, what: str) -> torch.Tensor:
    """``ValueError`` naming the rows whose log density ``logsumexp_k log_joint`` is not
    finite or whose terms are NaN: far rows overflow the squared Mahalanobis distances, and
    their responsibilities would be NaN and their labels arbitrary."""
    if log_joint.numel():
        norm = torch.logsumexp(log_joint.flatten(1), 1)
        norm = torch.where(torch.isnan(log_joint.flatten(1)).any(1), torch.nan, norm)
        check_finite_rows(norm.cpu().numpy(), owner=type(est).__name__, what=what, X=X)
    return log_joint


def weighted_log_prob(est, X: np.ndarray, log_weights: torch.Tensor,
                      what: str = "score_samples") -> torch.Tensor:
    """``log pi_k + log N(x; mu_k, Sigma_k)`` as an (n, K) tensor, chunked; rows that cannot
    be evaluated in floating point raise ``ValueError`` (see :func:`check_finite_log_density`)."""
    params = params_from_numpy(est)
    Xt = torch.as_tensor(X, device=est.device_, dtype=est.dtype_)
    K, d = params.means.shape
    rows = max(256, 2**20 // (K * d))
    if getattr(est, "missing", "raise") == "marginalize" and bool(torch.isnan(Xt).any()):
        from probest.mixture._missing import log_prob_missing

        parts = [log_prob_missing(c, params) + log_weights for c in _chunks(Xt, rows)]
    else:
        parts = [log_gaussian_prob(c, params) + log_weights for c in _chunks(Xt, rows)]
    if not parts:
        return Xt.new_zeros((0, K))
    return check_finite_log_density(est, torch.cat(parts), X, what)


def sample_mixture(est, n_samples: int, weights: np.ndarray):
    """Draw ``(X, y)`` from the fitted mixture, grouped by component (as scikit-learn)."""
    if n_samples < 1:
        raise ValueError(
            f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least "
            "one sample."
        )
    params = params_from_numpy(est)
    K, d = params.means.shape
    seed = draw_seed(est.random_state)
    rng = np.random.default_rng(seed)
    w = host(weights).astype(float)
    counts = rng.multinomial(n_samples, w / w.sum())
    ct = est.covariance_type
    with seeded(seed, est.device_) as gen:
        xs = []
        for k in range(K):
            if counts[k] == 0:
                continue
            z = torch.randn(int(counts[k]), d, generator=gen, device=est.device_, dtype=est.dtype_)
            if ct in ("full", "tied"):
                cov = params.covariances[k] if ct == "full" else params.covariances
                L = torch.linalg.cholesky(cov)
                x = params.means[k] + z @ L.T
            else:  # diag and spherical store per-component variances
                x = params.means[k] + z * params.covariances[k].sqrt()
            xs.append(x)
    X = torch.cat(xs).cpu().numpy()
    y = np.concatenate([np.full(c, k, dtype=int) for k, c in enumerate(counts)])
    return X, y


def _mixture_class():
    import pyro.distributions as dist
    from torch.distributions import constraints

    class GaussianMixtureDistribution(dist.MixtureSameFamily):
        """``MixtureSameFamily`` of Gaussians whose support is ``real_vector``, so that
        autoguides and ``init_to_feasible`` can place latent sites drawn from it."""

        @constraints.dependent_property
        def support(self):
            return constraints.real_vector

    return GaussianMixtureDistribution


def pyro_mixture(params: GaussParams, weights: torch.Tensor):
    """``MixtureSameFamily(Categorical, MultivariateNormal)`` with event shape ``(d,)``.

    Its ``support`` is ``real_vector`` (torch's generic mixture constraint cannot be
    transformed), so it also works as a prior for latent sites under autoguides.
    """
    import pyro.distributions as dist

    K, d = params.means.shape
    ct = params.covariance_type
    if ct == "full":
        comp = dist.MultivariateNormal(params.means, scale_tril=torch.linalg.cholesky(
            params.covariances))
    elif ct == "tied":
        L = torch.linalg.cholesky(params.covariances).expand(K, d, d)
        comp = dist.MultivariateNormal(params.means, scale_tril=L)
    elif ct == "diag":
        comp = dist.Normal(params.means, params.covariances.sqrt()).to_event(1)
    else:
        scale = params.covariances.sqrt().unsqueeze(1).expand(K, d)
        comp = dist.Normal(params.means, scale).to_event(1)
    return _mixture_class()(dist.Categorical(probs=weights), comp)


__all__ = ["precisions_cholesky"]


def new_client_id(client_ids, client=None):
    """The id for a client added by ``adapt``: ``client`` if unused, else the next free integer."""
    if client is None:
        client = len(client_ids)
        while client in client_ids:
            client += 1
    if client in client_ids:
        raise ValueError(f"Client {client!r} already exists; choose a new id.")
    return client

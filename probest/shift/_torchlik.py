"""A user's torch likelihood model fitted by (weighted) maximum likelihood.

``module`` is an ``nn.Module`` whose ``forward(X)`` returns a ``torch.distributions``
distribution of ``y`` given ``X`` with ``batch_shape == (n_samples,)`` (``Normal``,
``Poisson``, ``Bernoulli``/``Categorical`` over class indices, ...).  The module is a
template: it is deep-copied in ``fit`` and the copy's parameters, flattened into one vector
``theta_``, are fitted by L-BFGS on ``sum_i w_i (-log p(y_i | x_i, theta))``.  The pieces
the covariate-shift estimators need (per-sample gradients, the Hessian, the Laplace
covariance) come from ``torch.func`` on the functional form of the copy.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from probest._torch import to_numpy
from probest.base import TorchEstimator


def _to_pyro_distribution(d: torch.distributions.Distribution):
    """The pyro twin of a torch distribution (same class name, same stored parameters)."""
    import pyro.distributions as dist

    cls = getattr(dist, type(d).__name__, None)
    if cls is None:
        raise NotImplementedError(
            f"no pyro.distributions.{type(d).__name__}: return a distribution pyro mirrors.")
    kwargs = {k: d.__dict__[k] for k in d.arg_constraints if k in d.__dict__}
    if "probs" in kwargs and "logits" in kwargs:
        del kwargs["probs"]
    return cls(**kwargs)


class _TorchLikelihoodModel(TorchEstimator):
    """Internal: weighted MLE of a torch likelihood module (see the module docstring)."""

    def __init__(self, module=None, *, classifier: bool = False, max_iter: int = 200,
                 tol: float = 1e-9, device: str = "cpu", dtype: str = "float64",
                 random_state: Any = None, verbose: int = 0):
        self._store_params(locals())

    # functional form ---------------------------------------------------------------------
    def _unflatten(self, theta):
        out, i = {}, 0
        for name, shape in self._shapes.items():
            k = int(np.prod(shape)) if shape else 1
            out[name] = theta[i:i + k].reshape(shape)
            i += k
        return out

    def _dist(self, theta, Xt):
        return torch.func.functional_call(self.module_, self._unflatten(theta), (Xt,))

    def _y_tensor(self, y):
        y = np.asarray(y)
        if self._long_y:
            return torch.tensor(y.astype(np.int64), device=self.device_)
        return self._tensor(y.astype(np.float64))

    def _sample_nll(self, theta, Xt, yt):
        return -self._dist(theta, Xt).log_prob(yt)

    def fit(self, X, y, sample_weight=None):
        X = np.asarray(X, dtype=np.float64)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        self.n_features_in_ = X.shape[1]
        with self._fit_context():
            self.module_ = copy.deepcopy(self.module).to(device=self.device_, dtype=self.dtype_)
            self.module_.eval()
            params = dict(self.module_.named_parameters())
            self._shapes = {k: tuple(v.shape) for k, v in params.items()}
            theta = torch.cat([v.detach().reshape(-1) for v in params.values()]).clone()
            Xt, wt = self._tensor(X), self._tensor(w)
            probe = self.module_(Xt[:1])
            self._long_y = isinstance(probe, torch.distributions.Categorical)
            yt = self._y_tensor(y)
            if self.classifier and not isinstance(
                    probe, (torch.distributions.Categorical, torch.distributions.Bernoulli)):
                raise ValueError("a classifier's torch model must return a Bernoulli or "
                                 f"Categorical over class indices, got {type(probe).__name__}.")
            total = wt.sum()

            def objective(th):
                return (wt * self._sample_nll(th, Xt, yt)).sum() / total

            theta.requires_grad_(True)
            opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=self.max_iter,
                                    tolerance_grad=self.tol, tolerance_change=self.tol * 1e-3,
                                    line_search_fn="strong_wolfe")
            with self._progress(self.max_iter, "TorchLikelihood") as prog:

                def closure():
                    opt.zero_grad()
                    loss = objective(theta)
                    loss.backward()
                    prog.log(objective=-float(loss.detach()))
                    return loss

                opt.step(closure)
            theta = theta.detach()
            g = torch.func.grad(objective)(theta)
            self.converged_ = bool(g.abs().max() < 1e-5)
            if not self.converged_:
                warnings.warn(f"the torch likelihood model did not converge in {self.max_iter} "
                              "L-BFGS iterations; raise max_iter.", ConvergenceWarning, stacklevel=3)
            H = torch.func.hessian(lambda th: objective(th) * total)(theta)
        self.theta_ = to_numpy(theta)
        Hn = to_numpy(0.5 * (H + H.T))
        self.covariance_ = np.linalg.pinv(Hn)
        self.loglik_ = -float(objective(theta) * total)
        for k, v in self._unflatten(theta).items():
            dict(self.module_.named_parameters())[k].data.copy_(v)
        return self

    def _grads_and_hessian(self, X, y, sample_weight=None):
        X = np.asarray(X, dtype=np.float64)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        Xt, yt, wt = self._tensor(X), self._y_tensor(y), self._tensor(w)
        theta = self._tensor(self.theta_)
        G = torch.func.jacfwd(lambda th: self._sample_nll(th, Xt, yt))(theta)
        H = torch.func.hessian(lambda th: (wt * self._sample_nll(th, Xt, yt)).sum())(theta)
        return to_numpy(G), to_numpy(0.5 * (H + H.T))

    def _expected_fisher(self, X, weights=None):
        raise NotImplementedError("a generic torch model has no closed-form expected Fisher")

    def distribution(self, X):
        with torch.no_grad():
            return self._dist(self._tensor(self.theta_), self._tensor(np.asarray(X, np.float64)))

    def predict(self, X):
        return to_numpy(self.distribution(X).mean)

    def predict_proba(self, X):
        d = self.distribution(X)
        if isinstance(d, torch.distributions.Bernoulli):
            p = to_numpy(d.probs)
            return np.column_stack([1 - p, p])
        return to_numpy(d.probs)

    def to_pyro(self, X):
        return _to_pyro_distribution(self.distribution(X))

    def to_arviz(self, n_draws: int = 1000, random_state: Any = None, covariance=None):
        from probest.viz import gaussian_inference_data

        names, i = {}, 0
        for name, shape in self._shapes.items():
            k = int(np.prod(shape)) if shape else 1
            names[name.replace(".", "_")] = slice(i, i + k)
            i += k
        shapes = {n.replace(".", "_"): s for n, s in self._shapes.items()}
        cov = self.covariance_ if covariance is None else covariance
        return gaussian_inference_data(self.theta_, cov, names=names, shapes=shapes,
                                       n_draws=n_draws, random_state=random_state)

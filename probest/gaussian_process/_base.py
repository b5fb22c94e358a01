"""What the GP classifier and regressor share: parameters, inducing points, fitting one
latent GP, the log marginal likelihood, ``to_pyro`` and ``to_arviz``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import Interval, Options
from probest.base import TorchEstimator
from probest.gaussian_process._gp import DEFAULT_KIND, KINDS, GPFit
from probest.gaussian_process._gp import Options as GPOptions
from probest.gaussian_process._guards import check_finite_latent, latent_mvn
from probest.gaussian_process._kernels import hyperparameters, make_kernel

INFERENCE = ("hybrid", "vi", "ep", "laplace")


def _median_distance(X: np.ndarray, rng: np.random.Generator) -> float:
    idx = rng.choice(X.shape[0], size=min(X.shape[0], 500), replace=False)
    Xs = X[idx]
    d2 = ((Xs[:, None, :] - Xs[None, :, :]) ** 2).sum(-1)
    d = np.sqrt(d2[np.triu_indices(len(idx), 1)])
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


#: fitted attributes of both GP estimators (probest._persist).
_GP_FITTED = ("gps_", "kernel_", "objective_", "sparse_", "inducing_points_", "hyperparameters_",
              "sites_", "log_marginal_likelihood_value_", "n_iter_", "converged_", "stopped_by_")

class _GPBase(TorchEstimator):
    """Shared machinery; subclasses define ``__init__`` and the likelihood/targets."""

    # -- parameter checks (ProbestEstimator._validate_params reads these) ---------------
    _constraints = {
        "inference": (Options(INFERENCE),),
        "max_iter": (Interval(int, 1, None),),
        "e_steps": (Interval(int, 1, None),),
        "m_steps": (Interval(int, 1, None),),
        "cvi_lr": (Interval(float, 0.0, 1.0, closed="right"),),
        "n_inducing": (Interval(int, 1, None), None),
    }

    def _options(self) -> GPOptions:
        return GPOptions(max_iter=int(self.max_iter), e_steps=int(self.e_steps),
                       m_steps=int(self.m_steps), cvi_lr=float(self.cvi_lr),
                       ep_damping=0.5, tol=float(self.tol))

    def _inducing(self, X: np.ndarray, ctx) -> np.ndarray | None:
        """Inducing inputs: given, forced by ``n_inducing``, or automatic above the threshold."""
        if self.inducing_points is not None:
            Z = np.asarray(self.inducing_points, dtype=np.float64)
            if Z.ndim != 2 or Z.shape[1] != X.shape[1] or not np.all(np.isfinite(Z)):
                raise ValueError(
                    f"inducing_points must be a finite (m, {X.shape[1]}) array; got shape "
                    f"{Z.shape}.")
            return Z
        m = self.n_inducing
        minibatch = getattr(self, "batch_size", None) is not None
        if m is None:
            thr = self.sparse_threshold
            if not minibatch and (thr is None or X.shape[0] <= thr):
                return None
            m = 256
        m = min(int(m), X.shape[0])
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=m, n_init=1, max_iter=25, random_state=int(ctx.seed % 2**31))
        if minibatch and X.shape[0] > 20000:  # minibatched fits: k-means on 20,000 rows
            X = X[ctx.rng.choice(X.shape[0], 20000, replace=False)]
        return km.fit(X).cluster_centers_

    def _new_fit(self, X, Xt, yt, lik, Z, ctx, outputscale: float = 1.0) -> GPFit:
        if self.dtype_ != torch.float64 and self.inference == "ep":
            import warnings

            warnings.warn("inference='ep' with dtype float32: cavity updates (1/v - l2) lose "
                          "precision and EP can drift to degenerate hyperparameters; use "
                          "dtype='float64' for EP.", UserWarning)
        ls = _median_distance(X, ctx.rng) if (self.kernel is None or isinstance(
            self.kernel, str)) else 1.0
        kernel = make_kernel(self.kernel, X.shape[1], lengthscale=ls, outputscale=outputscale)
        kernel = kernel.to(device=self.device_, dtype=self.dtype_)
        lik = lik.to(device=self.device_, dtype=self.dtype_)
        Zt = None if Z is None else self._tensor(Z)
        if lik.name == "softmax":
            from probest.gaussian_process._multiclass import SoftmaxFit

            return SoftmaxFit(kernel, lik, Xt, yt, self.inference, Z=Zt, options=self._options())
        if getattr(self, "batch_size", None) is not None:
            from probest.gaussian_process._minibatch import MinibatchFit

            host = torch.device("cpu")  # the data stay in host memory; batches are streamed
            pin = self.device_.type == "cuda"
            Xh, yh = Xt.to(host), yt.to(host)
            if pin:
                Xh, yh = Xh.pin_memory(), yh.pin_memory()
            return MinibatchFit(kernel, lik, Xh, yh, self.inference, Zt, self._options(),
                                batch_size=self.batch_size, seed=int(ctx.seed % 2**31),
                                device=self.device_)
        return GPFit(kernel, lik, Xt, yt, self.inference, Z=Zt, options=self._options())

    def _collect(self, fits: list[GPFit]) -> None:
        """Fitted attributes from the per-problem fits (one for binary/regression)."""
        self.gps_ = fits
        self.objective_ = DEFAULT_KIND[self.inference]
        self.sparse_ = fits[0].Z is not None
        self.inducing_points_ = None if fits[0].Z is None else fits[0].Z.cpu().numpy()
        one = len(fits) == 1
        kern = [f.kernel for f in fits]
        hyp = [dict(hyperparameters(f.kernel), **{
            k: float(v.detach().exp()) for k, v in f.lik.log_params.items()}) for f in fits]
        sites = [{"l1": f.l1.cpu().numpy(), "l2": f.l2.cpu().numpy()} for f in fits]
        self.kernel_ = kern[0] if one else kern
        self.hyperparameters_ = hyp[0] if one else hyp
        self.sites_ = sites[0] if one else sites
        self.log_marginal_likelihood_value_ = float(np.mean([f.objective_value for f in fits]))
        self.n_iter_ = int(max(f.n_iter for f in fits))
        self.converged_ = bool(all(f.converged for f in fits))
        stops = [f.stopped_by for f in fits]
        self.stopped_by_ = stops[0] if one else stops

    # -- latent predictions --------------------------------------------------------------
    def _latent(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Xt = self._tensor(X)
        out = [f.predict_latent(Xt) for f in self.gps_]
        if out[0][0].ndim == 2:  # one joint multiclass fit: (n_classes, n) -> (n, n_classes)
            m, v = out[0][0].T, out[0][1].T
        else:
            m, v = torch.stack([m for m, _ in out], -1), torch.stack([v for _, v in out], -1)
        check_finite_latent(m, v)  # rows far beyond the data: a ValueError naming them
        return m, v

    def latent_mean_and_variance(self, X):
        """Posterior mean and variance of the latent function at ``X``; shape ``(n,)``, or
        ``(n, n_classes)`` for one-vs-rest."""
        m, v = self._latent(X)
        m, v = m.cpu().numpy(), v.cpu().numpy()
        return (m[:, 0], v[:, 0]) if m.shape[1] == 1 else (m, v)

    def log_marginal_likelihood(self, theta=None, kind: str | None = None) -> float:
        """The hyperparameter objective ``kind`` ("ep" energy, "elbo" or "laplace").

        ``kind=None`` is this estimator's own objective (``objective_``).  ``theta=None``
        evaluates at the fitted hyperparameters and sites; otherwise ``theta`` (the vector
        ``theta_`` describes, log-hyperparameters for the default kernels) is set, the sites
        are re-inferred there by this estimator's inference mode (Newton for "laplace"), and
        the objective is evaluated.  One-vs-rest: ``theta`` has one row per class and the
        mean over classes is returned (as scikit-learn does).
        """
        check_is_fitted(self)
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not one of {KINDS}.")
        if theta is None:
            return float(np.mean([f.log_marginal_likelihood(None, kind) for f in self.gps_]))
        th = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if th.shape != (len(self.gps_), len(self.theta_names_)):
            raise ValueError(
                f"theta must have {len(self.theta_names_)} entries {self.theta_names_} per "
                f"latent GP ({len(self.gps_)}); got shape {np.shape(theta)}.")
        return float(np.mean([f.log_marginal_likelihood(t, kind) for f, t in zip(self.gps_, th)]))

    @property
    def theta_(self) -> np.ndarray:
        """Fitted hyperparameter vector (log scale for the default kernels); one row per
        latent GP for one-vs-rest."""
        check_is_fitted(self)
        th = np.stack([f.theta().cpu().numpy() for f in self.gps_])
        return th[0] if len(self.gps_) == 1 else th

    @property
    def theta_names_(self) -> list[str]:
        check_is_fitted(self)
        return self.gps_[0].theta_names()

    # -- Pyro and ArviZ ------------------------------------------------------------------
    def to_pyro(self, X=None, latent: bool = False, jitter: float = 1e-8):
        """The fitted GP as a Pyro distribution (hyperparameters and sites frozen; refit to
        change them).

        ``latent=False`` (default): the predictive distribution of ``y`` at ``X`` with
        ``batch_shape == (n,)`` (the probest convention for conditional models; see
        ``_predictive_pyro``).  ``latent=True``: the posterior over the latent function at
        ``X`` (training inputs if None) as a ``MultivariateNormal`` with ``event_shape ==
        (n,)``; one-vs-rest stacks the classes in ``batch_shape == (n_classes,)``.
        """
        import pyro.distributions as dist

        check_is_fitted(self)
        if not latent:
            if X is None:
                raise ValueError("to_pyro(X) needs X for the predictive distribution; pass "
                                 "latent=True for the latent posterior at the training inputs.")
            return self._predictive_pyro(X)
        if X is None:
            Xt = self.gps_[0].X
        else:
            Xt = self._tensor(validate_data(self, X, reset=False, dtype=np.float64))
        locs, covs = [], []
        for f in self.gps_:
            m, c = f.predict_latent(Xt, full_cov=True)  # softmax: (C, n), (C, n, n)
            d = c.diagonal(dim1=-2, dim2=-1)
            check_finite_latent(m, d)
            c = 0.5 * (c + c.transpose(-1, -2)) + jitter * d.mean(-1)[..., None, None] * (
                torch.eye(c.shape[-1], dtype=c.dtype, device=c.device))
            locs.append(m)
            covs.append(c)
        if len(locs) == 1:
            return latent_mvn(dist, locs[0], covs[0], jitter)
        return latent_mvn(dist, torch.stack(locs), torch.stack(covs), jitter)

    # -- saving without pickle (probest._persist hooks) ------------------------------------
    # ``gps_`` (engine objects) is saved through _export_fitted/_import_fitted; ``kernel_`` and
    # ``dtype_`` follow from it (the loaded model computes in float64 on the CPU).
    _unsaved_attributes = ("kernel_", "dtype_")

    def _likelihood_for_load(self):
        """A fresh likelihood of the fitted kind (the classifier's link, the regressor's
        observation model) that :meth:`_import_fitted` fills with the saved state.  Each
        concrete GP defines it; declared here so the persistence path calls no
        undeclared hook."""
        raise NotImplementedError(f"{type(self).__name__} must define _likelihood_for_load().")

    def _export_fitted(self, name, value):
        if name != "gps_":
            return value
        states = [{  # one-vs-rest fits share X and Z: clone (safetensors)
            "X": f.X.clone(), "y": f.y, "Z": f.Z, "l1": f.l1, "l2": f.l2, "coef": f.coef,
            "theta": f.theta(), "n_iter": f.n_iter, "converged": f.converged,
            "stopped_by": f.stopped_by, "offset": float(getattr(f.lik, "offset", 0.0)),
            "fit": ("minibatch" if getattr(f, "minibatch", False) else
                    "softmax" if f.lik.name == "softmax" else "site"),
            "batch_size": int(getattr(f, "batch_size", 0)),
            "seed": int(getattr(f.lik, "seed", getattr(f, "seed", 0))),
        } for f in value]
        for st in states:
            if st["Z"] is None:
                del st["Z"]
            else:
                st["Z"] = st["Z"].clone()
        return states

    def _import_fitted(self, name, value):
        if name != "gps_":
            return value
        fits = []
        for st in value:
            X = st["X"].to(torch.float64)
            kernel = make_kernel(self.kernel, X.shape[1]).to(torch.float64)
            kind = st.get("fit", "site")
            lik = self._likelihood_for_load()
            if kind == "softmax":
                from probest.gaussian_process._softmax import Softmax

                lik = Softmax(lik.n_classes, seed=st["seed"])
            if hasattr(lik, "offset"):
                lik.offset = st["offset"]
            lik = lik.to(torch.float64)
            if kind == "minibatch":
                from probest.gaussian_process._minibatch import MinibatchFit

                f = MinibatchFit(kernel, lik, X, st["y"], self.inference, st["Z"],
                                 self._options(), batch_size=st["batch_size"], seed=st["seed"])
            elif kind == "softmax":
                from probest.gaussian_process._multiclass import SoftmaxFit

                f = SoftmaxFit(kernel, lik, X, st["y"], self.inference, Z=st.get("Z"),
                               options=self._options())
            else:
                f = GPFit(kernel, lik, X, st["y"], self.inference, Z=st.get("Z"),
                          options=self._options())
            f.set_theta(st["theta"])
            f.l1, f.l2, f.coef = st["l1"], st["l2"], st["coef"]
            f.n_iter, f.converged, f.stopped_by = st["n_iter"], st["converged"], st["stopped_by"]
            f.finalize()
            fits.append(f)
        return fits

    def _restore_unsaved(self, name):
        if name == "dtype_":
            return torch.float64
        if name == "kernel_":
            fits = self.gps_
            return fits[0].kernel if len(fits) == 1 else [f.kernel for f in fits]
        return super()._restore_unsaved(name)

    def _neg_hessian(self, f: GPFit, kind: str, h: float = 1e-4) -> np.ndarray:
        """``-d^2 objective / d theta^2`` at the fitted theta, sites frozen (central
        differences of the exact gradient)."""
        theta0 = f.theta()
        p = theta0.numel()

        def grad_at(th):
            f.set_theta(th)
            for q in f.params():
                q.grad = None
            f.objective(kind).backward()
            return torch.cat([q.grad.reshape(-1) for q in f.params()]).detach().clone()

        H = torch.zeros(p, p, dtype=theta0.dtype)
        try:
            for i in range(p):
                e = torch.zeros_like(theta0)
                e[i] = h
                H[i] = (grad_at(theta0 + e) - grad_at(theta0 - e)).cpu() / (2 * h)
        finally:
            f.set_theta(theta0)
            for q in f.params():
                q.grad = None
        H = 0.5 * (H + H.T)
        return -H.numpy()

    def to_arviz(self, posterior: str = "laplace", n_draws: int = 1000, random_state: Any = None,
                 num_warmup: int = 200, prior_scale: float = 3.0, kind: str | None = None):
        """Hyperparameter draws as ArviZ InferenceData, one variable per entry of ``theta``.

        ``posterior="laplace"``: ``n_draws`` draws from ``N(theta_hat, (-H)^-1)``, ``H`` the
        Hessian of the objective (``kind``, default ``objective_``) with the sites frozen;
        directions of non-positive curvature get variance ``prior_scale**2``.
        ``posterior="nuts"``: Pyro NUTS over theta with potential ``-objective(theta)`` (sites
        frozen at the fitted ones) plus a ``N(theta_hat, prior_scale^2)`` prior; one chain.
        One-vs-rest: each variable has a trailing ``class`` axis.
        """
        from probest.viz import gaussian_inference_data, to_inference_data

        check_is_fitted(self)
        kind = kind or self.objective_
        names = self.theta_names_
        K, p = len(self.gps_), len(names)
        if posterior == "laplace":
            mean = np.zeros(K * p)
            cov = np.zeros((K * p, K * p))
            for k, f in enumerate(self.gps_):
                A = self._neg_hessian(f, kind)
                vals, vecs = np.linalg.eigh(A)
                vals = np.where(vals > 1e-8, vals, 1.0 / prior_scale**2)
                C = (vecs / vals) @ vecs.T
                idx = np.arange(p) * K + k  # parameter-major layout: name -> K entries
                mean[idx] = f.theta().cpu().numpy()
                cov[np.ix_(idx, idx)] = C
            sl = {n: slice(i * K, (i + 1) * K) for i, n in enumerate(names)}
            shapes = {n: ((K,) if K > 1 else ()) for n in names}
            return gaussian_inference_data(mean, cov, names=sl, shapes=shapes, n_draws=n_draws,
                                           random_state=random_state,
                                           attrs={"approximation": f"laplace ({kind})"})
        if posterior != "nuts":
            raise ValueError(f"posterior={posterior!r}; use 'laplace' or 'nuts'.")
        draws = np.stack([self._nuts(f, kind, n_draws, num_warmup, prior_scale, random_state)
                          for f in self.gps_], -1)  # (draws, p, K)
        post = {n: (draws[:, i, :] if K > 1 else draws[:, i, 0]) for i, n in enumerate(names)}
        return to_inference_data(post, chains=1, attrs={"approximation": f"nuts ({kind})"})

    @staticmethod
    def _nuts(f: GPFit, kind, n_draws, num_warmup, prior_scale, random_state):
        from pyro.infer import MCMC, NUTS

        from probest._torch import draw_seed, seeded

        theta0 = f.theta()

        def potential(params):
            th = params["theta"]
            prior = 0.5 * (((th - theta0) / prior_scale) ** 2).sum()
            return -_objective_of(f, kind, th) + prior

        with seeded(draw_seed(random_state)):
            kernel = NUTS(potential_fn=potential, adapt_step_size=True)
            mcmc = MCMC(kernel, num_samples=n_draws, warmup_steps=num_warmup,
                        initial_params={"theta": theta0.clone()}, disable_progbar=True)
            mcmc.run()
        f.set_theta(theta0)
        return mcmc.get_samples()["theta"].detach().cpu().numpy()


class _Objective(torch.nn.Module):
    def __init__(self, fit: GPFit, kind: str):
        super().__init__()
        self.model = fit.model
        self._fit, self._kind = fit, kind

    def forward(self):
        return self._fit.objective(self._kind)


def _objective_of(f: GPFit, kind: str, th: torch.Tensor) -> torch.Tensor:
    """``f.objective(kind)`` as a differentiable function of the flat vector ``th``."""
    from torch.func import functional_call

    chunks, i = {}, 0
    for n, q in f.model.named_parameters():
        if q.requires_grad:
            chunks["model." + n] = th[i:i + q.numel()].reshape(q.shape)
            i += q.numel()
    with torch.enable_grad():
        return functional_call(_Objective(f, kind), chunks, ())

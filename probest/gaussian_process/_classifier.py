"""GaussianProcessClassifier: binary and one-vs-rest GP classification, four inference modes."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import Interval, Options
from probest.base import EstimatorSpec
from probest.gaussian_process._base import _GP_FITTED, _GPBase
from probest.gaussian_process._guards import check_input_scale
from probest.gaussian_process._likelihoods import make_likelihood
from probest.gaussian_process._softmax import Softmax


class GaussianProcessClassifier(ClassifierMixin, _GPBase):
    """GP classification with Laplace, EP, VI (CVI) or the hybrid hyperparameter learning.

    The latent GP has a GPyTorch kernel (default ``ScaleKernel(MaternKernel(nu=2.5))``,
    isotropic, lengthscale initialised at the median pairwise distance).  All inference modes
    share one site-based posterior ``q(f) ∝ N(f; 0, K) prod_n exp(l1_n f_n - l2_n f_n^2/2)``:

    * ``"laplace"``: sites from the curvature at the mode; theta by the Laplace evidence
      (with ``link="logit"`` this is scikit-learn's GaussianProcessClassifier);
    * ``"ep"``: damped parallel EP sites; theta by the EP energy;
    * ``"vi"``: CVI natural-gradient sites; theta by the ELBO;
    * ``"hybrid"`` (default, Li et al., ICML 2023): CVI sites; theta by the EP energy
      evaluated at the frozen CVI sites, stopping (with rollback) when it decreases.

    Parameters
    ----------
    kernel : None, str or gpytorch.kernels.Kernel, default=None
        None (Matérn-5/2 with an output scale), a name ("matern12", "matern32", "matern52",
        "rbf", optionally with "_ard") or a GPyTorch kernel (a template: it is copied, never
        trained in place).
    inference : {"hybrid", "vi", "ep", "laplace"}, default="hybrid"
        The inference mode (above).
    link : {"probit", "logit"}, default="probit"
        Likelihood ``p(y = 1 | f)``.
    multi_class : {"one_vs_rest", "softmax"}, default="one_vs_rest"
        ``"one_vs_rest"``: one binary GP per class, probabilities normalised.
        ``"softmax"``: one latent GP per class (shared kernel) under a joint softmax
        likelihood and one joint posterior (sites per point and class; Monte Carlo
        expectations with fixed quasi-random draws); for ``inference`` "hybrid", "vi" and
        "laplace", exact or sparse (EP is refused: its tilted moments have no closed form).
        Binary problems use the one-GP binary model either way.
    inducing_points : array-like of shape (n_inducing, n_features), optional
        Given points make the model sparse.
    n_inducing : int, optional
        Forces a sparse model with that many k-means inducing points.
    sparse_threshold : int or None, default=2000
        Above this many samples the model becomes sparse automatically (256 k-means
        inducing points).  None: never automatic.
    max_iter : int, default=50
        Outer iterations (E-step + M-step), or L-BFGS iterations for Laplace.
    e_steps : int, default=3
        CVI/EP steps per E-step.
    m_steps : int, default=3
        L-BFGS iterations per M-step.
    cvi_lr : float, default=0.5
        CVI natural-gradient step ``b``.
    tol : float, default=1e-4
        Relative change of the objective that counts as converged.
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds the k-means inducing points.
    verbose : int, default=0
        0 silent, 1 a progress bar with the objective, 2 also one line per iteration.
    device : {"cpu", "cuda", "cuda:N", "auto"}, default="cpu"
        Torch device of the fit.
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of the fit.
    batch_size : int or None, default=None
        Minibatched sparse inference (``inference`` "vi" or "hybrid"; binary and
        one-vs-rest): sites on the inducing values updated by stochastic CVI steps from
        batches of this many rows streamed from host memory, hyperparameters by Adam on
        minibatch estimates of the objective, ``max_iter`` counting epochs; the model is
        sparse (256 k-means inducing points unless ``n_inducing``/``inducing_points``).  The
        step sizes are in ``docs/gaussian_process.md``.  None: full-batch inference.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    kernel_ : gpytorch.kernels.Kernel
        The fitted kernel.
    hyperparameters_ : dict
        Fitted hyperparameter values by name.
    theta_ : ndarray
        The flat (log-)hyperparameter vector optimised.
    theta_names_ : list of str
        Names of the entries of ``theta_``.
    sites_ : dict
        The site parameters ``{"l1", "l2"}`` of the posterior: per point (shape ``(n,)``),
        per class and point for ``multi_class="softmax"`` (``(n_classes, n)``), or on the
        inducing values for ``batch_size`` (``(m,)`` and ``(m, m)``).
    log_marginal_likelihood_value_ : float
        The objective named by ``objective_`` at the optimum.
    objective_ : str
        Which objective: ``"laplace"``, ``"ep"`` or ``"elbo"``.
    n_iter_ : int
        Outer iterations run.
    converged_ : bool
        Whether ``tol`` was reached.
    stopped_by_ : str
        ``"tolerance"``, ``"ep_energy_decrease"`` (hybrid rollback) or ``"max_iter"``.
    sparse_ : bool
        Whether the model uses inducing points.
    inducing_points_ : ndarray or None
        The inducing points.
    gps_ : list
        The fitted latent GPs.
    history_ : list of dict
        One dict per outer iteration (``objective``, ``elbo``, ``ep_energy``; Laplace logs its
        evidence per L-BFGS evaluation).
    n_features_in_ : int
        Number of features seen in ``fit``.

    One-vs-rest makes per-class lists of the per-GP attributes; the softmax model has one
    joint fit (one ``theta`` shared by the classes).

    Examples
    --------
    >>> from probest.datasets import make_gp_classification
    >>> from probest.gaussian_process import GaussianProcessClassifier
    >>> X, y = make_gp_classification(60, random_state=0)
    >>> clf = GaussianProcessClassifier(inference="hybrid", random_state=0).fit(X, y)
    >>> sorted(clf.hyperparameters_), clf.objective_
    (['lengthscale', 'outputscale'], 'ep')
    >>> clf.predict_proba(X[:2]).shape, clf.to_pyro(X[:3]).batch_shape
    ((2, 2), torch.Size([3]))
    >>> from sklearn.datasets import load_iris
    >>> Xi, yi = load_iris(return_X_y=True)
    >>> soft = GaussianProcessClassifier(multi_class="softmax", inference="vi",
    ...                                  random_state=0).fit(Xi[::3], yi[::3])
    >>> soft.predict_proba(Xi[:2]).shape, soft.to_pyro(Xi[:4], latent=True).batch_shape
    ((2, 3), torch.Size([3]))
    """
    _spec = EstimatorSpec(outputs=("predict", "predict_proba"))
    _constraints = {**_GPBase._constraints, "link": (Options({"probit", "logit"}),),
                    "multi_class": (Options({"one_vs_rest", "softmax"}),),
                    "batch_size": (Interval(int, 1, None), None)}

    _fitted_attributes = _GP_FITTED + ("classes_",)

    def __init__(self, kernel=None, *, inference="hybrid", link="probit",
                 multi_class="one_vs_rest", inducing_points=None, n_inducing=None,
                 sparse_threshold=2000, max_iter=50, e_steps=3, m_steps=3, cvi_lr=0.5,
                 tol=1e-4, random_state=None, verbose=0, device="cpu", dtype="float64",
                 batch_size=None):
        self._store_params(locals())

    def fit(self, X, y):
        """Fit the latent GP(s) and their hyperparameters."""
        self._validate_params()
        if self.batch_size is not None and self.inference not in ("vi", "hybrid"):
            raise ValueError(
                f"batch_size={self.batch_size} needs inference='vi' or 'hybrid' (minibatched "
                f"CVI sites); got inference={self.inference!r}. Use batch_size=None.")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(
                f"y has only one class ({self.classes_[0]!r}); GP classification needs at "
                "least two classes in the training labels.")
        problems = ([self.classes_[1]] if self.classes_.size == 2 else list(self.classes_))
        joint = self._joint()
        if joint and self.inference == "ep":
            Softmax(self.classes_.size).tilted_moments(None, None, None)  # says why not
        if joint and self.batch_size is not None:
            raise ValueError("batch_size is not available with multi_class='softmax' (the "
                             "minibatched path is binary / one-vs-rest); use batch_size=None.")
        with self._fit_context() as ctx:
            check_input_scale(X, self.dtype_, type(self).__name__)
            host = self.batch_size is not None  # minibatches stream from host memory
            tens = (lambda a: torch.as_tensor(a, dtype=self.dtype_)) if host else self._tensor
            Xt = tens(X)
            Z = self._inducing(X, ctx)
            fits = []
            with self._progress(None, f"GPC[{self.inference}]") as prog:
                if joint:  # one joint softmax fit, class indices as targets
                    lik = Softmax(self.classes_.size, seed=int(ctx.seed % 2**31))
                    problems = []
                    fit = self._new_fit(X, Xt, self._tensor(np.searchsorted(self.classes_, y),
                                                            dtype=torch.int64), lik, Z, ctx)
                    fits.append(fit.fit(_Tagged(prog, 0)))
                for k, c in enumerate(problems):
                    yt = tens(np.where(y == c, 1.0, -1.0))
                    fit = self._new_fit(X, Xt, yt, make_likelihood(self.link), Z, ctx)
                    fit.fit(_Tagged(prog, k))
                    fits.append(fit)
        self._collect(fits)
        return self

    def _joint(self) -> bool:
        """Whether this fit is the native multiclass (softmax) model."""
        n = self.classes_.size if hasattr(self, "classes_") else 0
        return self.multi_class == "softmax" and n > 2

    # -- probabilities -------------------------------------------------------------------
    def _log_pos(self, X) -> torch.Tensor:
        """``log p(y=+1)`` and ``log p(y=-1)`` per latent GP, shape (n, n_gps) each."""
        m, v = self._latent(X)
        lik = self.gps_[0].lik
        one = torch.ones_like(m)
        return lik.log_tilted(one, m, v), lik.log_tilted(-one, m, v)

    def predict_log_proba(self, X):
        check_is_fitted(self)
        if self._joint():
            m, v = self._latent(X)
            P = self.gps_[0].lik.predict_proba(m.T, v.T)
            return torch.log(P.clamp_min(1e-300)).cpu().numpy()
        lp, ln = self._log_pos(X)
        if lp.shape[1] == 1:  # quadrature: renormalise so the two classes sum to one exactly
            out = torch.cat([ln, lp], 1)
            out = out - torch.logsumexp(out, 1, keepdim=True)
        else:  # one-vs-rest: normalise the per-class probabilities of "this class"
            out = lp - torch.logsumexp(lp, 1, keepdim=True)
        return out.cpu().numpy()

    def predict_proba(self, X):
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]

    def log_predictive_density(self, X, y):
        """``log p(y_i | x_i, data)`` per sample (its negative mean is the NLPD)."""
        check_is_fitted(self)
        y = np.asarray(y)
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.size - 1)
        if not np.all(self.classes_[idx] == y):
            raise ValueError("y contains labels not seen in fit; they have no probability.")
        return self.predict_log_proba(X)[np.arange(len(y)), idx]

    def _predictive_pyro(self, X):
        """``Categorical`` over class indices, ``batch_shape == (n,)``."""
        import pyro.distributions as dist

        return dist.Categorical(logits=torch.tensor(self.predict_log_proba(X)))

    def _likelihood_for_load(self):
        if self._joint():
            return Softmax(self.classes_.size)
        return make_likelihood(self.link)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class _Tagged:
    """Progress wrapper adding ``problem=k`` (one-vs-rest index) to each history record."""

    def __init__(self, prog, k):
        self.prog, self.k = prog, k

    def log(self, **values):
        return self.prog.log(problem=self.k, **values)

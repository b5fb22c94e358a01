"""Bayesian (and hierarchical) Rescorla–Wagner learners: the collapsed model in two dimensions.

Per subject theta = (logit alpha, log beta); the population model is independent Normals::

    mu_a ~ Normal(mu_alpha_loc, mu_alpha_scale), tau_a ~ HalfNormal(tau_alpha_scale)
    mu_b ~ Normal(mu_beta_loc, mu_beta_scale),   tau_b ~ HalfNormal(tau_beta_scale)
    logit alpha_s ~ Normal(mu_a, tau_a),          log beta_s ~ Normal(mu_b, tau_b)

As for Exp3 (:mod:`probest.bandits._collapsed`), each subject's likelihood is tabulated once
on rectangular cells (a coarse grid over the MLE's search box and a fine grid over the
rectangle where it is within ``WINDOW_NATS`` of its best value), so that
``p(choices_s | mu, tau) = sum_ij exp(l_s(cell_ij)) P_a(i) P_b(j)`` with closed-form Normal
cell probabilities per axis; NUTS samples the four hyperparameters and every subject's
(alpha, beta) is drawn exactly given them.  ``log_likelihood_`` is that per-subject
marginal, the same quantity as :class:`BayesianExp3`'s, so the two models compare by LOO.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit

from probest._persist import Fitted
from probest._validation import Interval, Options
from probest.bandits._collapsed import _Numpy, draw_cells, log_cell_mass, run_collapsed
from probest.bandits._common import NUTS_CONSTRAINTS, ChoiceModel, fit_doc, fit_quietly
from probest.bandits._replay import replay_rw
from probest.bandits._rw import _BOX, RescorlaWagnerMLE, replay_rw_fitted

N_COARSE_2D = 40
WINDOW_NATS = 30.0


def rw_grids(loglik, theta_mle: np.ndarray, n_fine: int):
    """Two levels of per-subject rectangular cells: ``[(edges_a (S, na + 1), edges_b
    (S, nb + 1), loglik (S, na, nb)), ...]``, the coarse cells the fine rectangle covers
    set to ``-inf``.  ``loglik(ta (S, C), tb (S, C)) -> (S, C)``."""
    S = len(theta_mle)

    def tabulate(ea, eb):
        ma, mb = 0.5 * (ea[:, :-1] + ea[:, 1:]), 0.5 * (eb[:, :-1] + eb[:, 1:])
        na, nb = ma.shape[1], mb.shape[1]
        ta = np.repeat(ma, nb, 1)
        tb = np.tile(mb, (1, na))
        ll = np.asarray(loglik(ta, tb)).reshape(S, na, nb)
        return np.where(np.isfinite(ll), ll, -np.inf)

    (a0, a1), (b0, b1) = _BOX
    ea = np.broadcast_to(np.linspace(a0, a1, N_COARSE_2D + 1), (S, N_COARSE_2D + 1))
    eb = np.broadcast_to(np.linspace(b0, b1, N_COARSE_2D + 1), (S, N_COARSE_2D + 1))
    ll_c = tabulate(ea, eb)
    ll_mle = np.asarray(loglik(theta_mle[:, :1], theta_mle[:, 1:]))[:, 0]
    top = np.maximum(ll_c.reshape(S, -1).max(1), np.where(np.isfinite(ll_mle), ll_mle, -np.inf))
    inside = ll_c > (top - WINDOW_NATS)[:, None, None]
    fine_a, fine_b, spans = [], [], []
    for axis, edges, t in ((1, ea, theta_mle[:, 0]), (2, eb, theta_mle[:, 1])):
        hit = inside.any(axis=3 - axis)  # (S, n) cells of this axis inside the window
        j = np.clip((edges <= t[:, None]).sum(1) - 1, 0, N_COARSE_2D - 1)
        first = np.where(hit.any(1), hit.argmax(1), j)
        last = np.where(hit.any(1), N_COARSE_2D - 1 - hit[:, ::-1].argmax(1), j)
        first = np.maximum(np.minimum(first, j) - 1, 0)
        last = np.minimum(np.maximum(last, j) + 1, N_COARSE_2D - 1)
        lo = np.take_along_axis(edges, first[:, None], 1)
        hi = np.take_along_axis(edges, last[:, None] + 1, 1)
        (fine_a if axis == 1 else fine_b).append(lo + (hi - lo) * np.linspace(0, 1, n_fine + 1))
        spans.append((first, last))
    cells = np.arange(N_COARSE_2D)
    (fa0, fa1), (fb0, fb1) = spans
    in_a = (cells[None] >= fa0[:, None]) & (cells[None] <= fa1[:, None])
    in_b = (cells[None] >= fb0[:, None]) & (cells[None] <= fb1[:, None])
    ll_c = np.where(in_a[:, :, None] & in_b[:, None, :], -np.inf, ll_c)
    fa, fb = fine_a[0], fine_b[0]
    return [(np.array(ea), np.array(eb), ll_c), (fa, fb, tabulate(fa, fb))]


def _level_terms(level, p, ops):
    ea, eb, ll = level
    la = log_cell_mass(ea[:, :-1], ea[:, 1:], p["mu_alpha"], p["tau_alpha"], ops)
    lb = log_cell_mass(eb[:, :-1], eb[:, 1:], p["mu_beta"], p["tau_beta"], ops)
    return ll + la[:, :, None] + lb[:, None, :]  # (S, na, nb)


def rw_log_lik(levels):
    """The collapsed Rescorla–Wagner log-likelihood ``f(hyperparameters)`` for
    :func:`probest.bandits._collapsed.run_collapsed`."""
    def factory(ops, asarray):
        lv = [tuple(asarray(x) for x in level) for level in levels]

        def f(p):  # one logsumexp over both levels' cells: a level can be all -inf
            parts = [_level_terms(level, p, ops).reshape(level[2].shape[0], -1) for level in lv]
            return ops.logsumexp(ops.concatenate(parts, 1), 1).sum()
        return f
    return factory


def rw_conditional_draws(levels, hyper: dict, rng, chunk: int = 8):
    """Exact draws of (logit alpha_s, log beta_s) given each hyperparameter draw, and the
    per-subject marginal ``log p(choices_s | hyper)``: ``(n, S, 2)``, ``(n, S)``."""
    n = len(next(iter(hyper.values())))
    S = levels[0][2].shape[0]
    theta, marginal = np.empty((n, S, 2)), np.empty((n, S))
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        p = {k: np.asarray(v[sl])[:, None, None] for k, v in hyper.items()}
        flat, meta = [], []
        for ea, eb, ll in levels:
            la = log_cell_mass(ea[None, :, :-1], ea[None, :, 1:], p["mu_alpha"], p["tau_alpha"],
                               _Numpy)
            lb = log_cell_mass(eb[None, :, :-1], eb[None, :, 1:], p["mu_beta"], p["tau_beta"],
                               _Numpy)
            w = ll[None] + la[..., :, None] + lb[..., None, :]
            flat.append(w.reshape(w.shape[0], S, -1))
            meta.append((ea, eb, ll.shape[2]))
        g, marginal[sl] = draw_cells(np.concatenate(flat, -1), rng)  # g: (chunk, S)
        offset = 0
        out = np.empty(g.shape + (2,))
        for (ea, eb, nb), part in zip(meta, flat):
            size = part.shape[-1]
            here = (g >= offset) & (g < offset + size)
            k = np.where(here, g - offset, 0)
            ia, ib = k // nb, k % nb
            s_idx = np.broadcast_to(np.arange(S), g.shape)
            for d, (edges, idx) in enumerate(((ea, ia), (eb, ib))):
                lo, hi = edges[s_idx, idx], edges[s_idx, idx + 1]
                out[..., d] = np.where(here, lo + rng.uniform(size=g.shape) * (hi - lo),
                                       out[..., d])
            offset += size
        theta[sl] = out
    return theta, marginal


class BayesianRescorlaWagner(ChoiceModel):
    """Posterior of Rescorla–Wagner (alpha, beta) per subject, partially pooled, by NUTS.

    The likelihood is :class:`RescorlaWagnerMLE`'s replay; subjects' (logit alpha,
    log beta) are Normal around population means with population scales (``hierarchical
    =True``) or have fixed independent Normal priors.  Every subject's (alpha, beta) is
    integrated out on rectangular cells (40 x 40 over the MLE's search box, ``n_grid`` x
    ``n_grid`` over the rectangle within 30 nats of the subject's best value), NUTS samples
    the four hyperparameters from their marginal posterior and (alpha_s, beta_s) are drawn
    exactly given them.  ``log_likelihood_`` holds ``log p(choices_s | hyperparameters)``,
    as in :class:`BayesianExp3` (``method="collapsed"``), so ``az.compare`` of the two is a
    leave-one-subject-out comparison of the learning models.

    Parameters
    ----------
    n_arms : int, optional
        Number of arms (default: largest observed action + 1).
    q0 : float, default=0.5
        Initial value of every arm.
    hierarchical : bool, default=True
        Partial pooling over subjects. ``False`` needs no MCMC: every subject's draws are
        exact and independent (only ``num_chains`` x ``num_samples`` is used).
    backend : {"numpyro", "pyro"}, default="numpyro"
        Sampler implementation.
    mu_alpha_loc, mu_alpha_scale, tau_alpha_scale : float, default=0.0, 1.5, 1.0
        Prior of the population mean / scale of logit alpha (``hierarchical=False``: the
        prior of each logit alpha is Normal(mu_alpha_loc, mu_alpha_scale)).
    mu_beta_loc, mu_beta_scale, tau_beta_scale : float, default=1.0, 1.5, 1.0
        The same for log beta.
    n_grid : int, default=100
        Fine cells per axis.
    num_warmup, num_samples, num_chains, target_accept, max_tree_depth
        NUTS settings, as in :class:`BayesianExp3`.
    device : str, default="cpu"
        Torch device of the replay (and of the Pyro model).
    random_state : int, RandomState, Generator or None
        Seeds the chains and the conditional draws.
    verbose : int, default=0
        Progress output.

    Attributes
    ----------
    n_arms_, subjects_, n_subjects_, n_trials_
        As in :class:`BayesianExp3`.
    alpha_mle_, beta_mle_ : ndarray of shape (n_subjects,)
        Per-subject MLE (chains' start, centre of each subject's cells).
    posterior_ : dict of ndarray
        ``(chain, draw, ...)`` draws: ``logit_alpha``, ``log_beta`` (subject last) and, if
        hierarchical, ``mu_alpha``, ``tau_alpha``, ``mu_beta``, ``tau_beta``.
    log_likelihood_ : ndarray of shape (chain, draw, n_subjects)
        ``log p(choices_s | hyperparameters)`` (the prior predictive if not hierarchical).
    diverging_ : ndarray of shape (chain, draw)
        Divergent transitions.
    alpha_, beta_ : ndarray of shape (n_subjects,)
        Posterior medians.
    alpha_ci_, beta_ci_ : ndarray of shape (n_subjects, 2)
        Central 95% credible intervals.
    loglik_, aic_, bic_ : ndarray of shape (n_subjects,)
        Log-likelihood and information criteria at the posterior medians (two parameters).
    history_ : list of dict
        The sampling stage's record.

    Examples
    --------
    >>> from probest.bandits import BayesianRescorlaWagner, simulate_rescorla_wagner
    >>> sim = simulate_rescorla_wagner(3, 60, alpha=0.3, beta=5.0, random_state=0)
    >>> est = BayesianRescorlaWagner(backend="pyro", n_grid=20, num_warmup=5, num_samples=6,
    ...                              num_chains=1, max_tree_depth=3, random_state=0)
    >>> est.fit(sim.actions, sim.rewards).log_likelihood_.shape
    (1, 6, 3)
    """

    _n_params = 2
    _hyper = ("mu_alpha", "tau_alpha", "mu_beta", "tau_beta")
    _constraints = {
        "n_arms": (Interval(int, 2, None), None),
        "q0": (Interval(float, 0.0, 1.0, "both"),),
        "hierarchical": ("boolean",),
        "backend": (Options({"numpyro", "pyro"}),),
        "mu_alpha_loc": (Interval(float, None, None),),
        "mu_alpha_scale": (Interval(float, 0.0, None, "neither"),),
        "tau_alpha_scale": (Interval(float, 0.0, None, "neither"),),
        "mu_beta_loc": (Interval(float, None, None),),
        "mu_beta_scale": (Interval(float, 0.0, None, "neither"),),
        "tau_beta_scale": (Interval(float, 0.0, None, "neither"),),
        "n_grid": (Interval(int, 5, None),),
        **NUTS_CONSTRAINTS,
    }
    _fitted_attributes = (
        "n_arms_", "subjects_", "n_subjects_", "n_trials_", "alpha_mle_", "beta_mle_",
        "posterior_", Fitted("log_likelihood_", ndim=3), "diverging_",
        Fitted("alpha_", ndim=1, finite=True), Fitted("beta_", ndim=1, finite=True),
        "alpha_ci_", "beta_ci_", "loglik_", "aic_", "bic_")

    def __init__(self, n_arms=None, *, q0=0.5, hierarchical=True, backend="numpyro",
                 mu_alpha_loc=0.0, mu_alpha_scale=1.5, tau_alpha_scale=1.0, mu_beta_loc=1.0,
                 mu_beta_scale=1.5, tau_beta_scale=1.0, n_grid=100, num_warmup=500,
                 num_samples=500, num_chains=2, target_accept=0.9, max_tree_depth=8,
                 device="cpu", random_state=None, verbose=0):
        self._store_params(locals())

    def _loglik(self, log):
        A, R, L = self._tensors(log)

        def f(ta, tb):
            a = torch.sigmoid(torch.as_tensor(ta, dtype=torch.float64, device=A.device))
            b = torch.exp(torch.as_tensor(tb, dtype=torch.float64, device=A.device))
            with torch.no_grad():
                return replay_rw(a, b, A, R, L, self.n_arms_, q0=float(self.q0))[0].cpu().numpy()
        return f

    def _levels(self, log):
        theta = np.stack([np.log(self.alpha_mle_) - np.log1p(-self.alpha_mle_),
                          np.log(self.beta_mle_)], 1)
        return rw_grids(self._loglik(log), theta, int(self.n_grid))

    @fit_doc("Sample the posterior of every subject's (alpha, beta).", "RescorlaWagnerMLE")
    def fit(self, actions, rewards=None, subject=None):
        with self._fitting(actions, rewards, subject) as (log, ctx):
            mle = RescorlaWagnerMLE(self.n_arms_, q0=self.q0, ci=None, random_state=ctx.seed,
                                    device=str(self.device_))
            fit_quietly(mle, *log.ragged())  # only the estimates are used
            self.alpha_mle_, self.beta_mle_ = mle.alpha_, mle.beta_
            levels = self._levels(log)
            shape = (int(self.num_chains), int(self.num_samples))
            with self._progress(1, "NUTS") as prog:
                if self.hierarchical:
                    draws, div = self._nuts(levels, mle, ctx.seed)
                    hyper = {k: draws[k].ravel() for k in self._hyper}
                else:
                    n = shape[0] * shape[1]
                    hyper = {"mu_alpha": np.full(n, float(self.mu_alpha_loc)),
                             "tau_alpha": np.full(n, float(self.mu_alpha_scale)),
                             "mu_beta": np.full(n, float(self.mu_beta_loc)),
                             "tau_beta": np.full(n, float(self.mu_beta_scale))}
                    draws, div = {}, np.zeros(shape, dtype=bool)
                theta, marginal = rw_conditional_draws(
                    levels, hyper, np.random.default_rng(int(ctx.seed) + 1))
                draws["logit_alpha"] = theta[..., 0].reshape(shape + (-1,))
                draws["log_beta"] = theta[..., 1].reshape(shape + (-1,))
                self.posterior_, self.diverging_ = draws, div
                self.log_likelihood_ = marginal.reshape(shape + (-1,))
                prog.log(stage="nuts", objective=float(self.log_likelihood_.sum(-1).mean()),
                         divergences=int(div.sum()))
            a = expit(draws["logit_alpha"]).reshape(-1, log.n_subjects)
            b = np.exp(draws["log_beta"]).reshape(-1, log.n_subjects)
            self.alpha_, self.beta_ = np.median(a, 0), np.median(b, 0)
            self.alpha_ci_ = np.percentile(a, [2.5, 97.5], axis=0).T
            self.beta_ci_ = np.percentile(b, [2.5, 97.5], axis=0).T
            self.loglik_ = self._replay_fitted(log, np.arange(log.n_subjects), False)[0]
            self._set_information_criteria()
        return self

    def _nuts(self, levels, mle, seed):
        ta = np.log(mle.alpha_) - np.log1p(-mle.alpha_)
        tb = np.log(mle.beta_)
        init = {"mu_alpha": float(ta.mean()), "tau_alpha": float(max(ta.std(), 0.05)),
                "mu_beta": float(tb.mean()), "tau_beta": float(max(tb.std(), 0.05))}
        hyper = (("mu_alpha", "normal", float(self.mu_alpha_loc), float(self.mu_alpha_scale)),
                 ("tau_alpha", "halfnormal", 0.0, float(self.tau_alpha_scale)),
                 ("mu_beta", "normal", float(self.mu_beta_loc), float(self.mu_beta_scale)),
                 ("tau_beta", "halfnormal", 0.0, float(self.tau_beta_scale)))
        return run_collapsed(self.backend, hyper, rw_log_lik(levels), device=self.device_,
                             init=init, num_warmup=int(self.num_warmup),
                             num_samples=int(self.num_samples), num_chains=int(self.num_chains),
                             target_accept=float(self.target_accept), seed=int(seed),
                             max_tree_depth=int(self.max_tree_depth))

    def _replay_fitted(self, log, index, record):
        return replay_rw_fitted(self, log, index, record)

    def to_arviz(self):
        """The draws as ArviZ InferenceData: ``posterior`` (hyperparameters, ``alpha``,
        ``beta``, ``logit_alpha``, ``log_beta`` over ``subject``), ``log_likelihood``
        (``choices``: one value per subject) and ``sample_stats`` (``diverging``).

        Returns
        -------
        arviz.InferenceData
        """
        from sklearn.utils.validation import check_is_fitted

        from probest.viz import import_arviz

        check_is_fitted(self)
        az = import_arviz()
        post = dict(self.posterior_)
        post["alpha"] = expit(self.posterior_["logit_alpha"])
        post["beta"] = np.exp(self.posterior_["log_beta"])
        dims = {k: ["subject"] for k in ("logit_alpha", "log_beta", "alpha", "beta", "choices")}
        return az.from_dict(posterior=post, log_likelihood={"choices": self.log_likelihood_},
                            sample_stats={"diverging": self.diverging_},
                            coords={"subject": [str(s) for s in self.subjects_]}, dims=dims)

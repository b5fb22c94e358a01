"""The "ten simple rules" workflow: parameter recovery and model confusion by simulation."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from sklearn.base import clone

from probest._torch import draw_seed
from probest.bandits._common import fit_quietly


def _model_of(est) -> str:
    from probest.bandits._bayes_rw import BayesianRescorlaWagner
    from probest.bandits._rw import RescorlaWagnerMLE

    return "rw" if isinstance(est, (RescorlaWagnerMLE, BayesianRescorlaWagner)) else "exp3"


#: per model: {parameter: (fitted attribute, scale of the recovery statistics)}
_PARAMS = {"exp3": {"learning_rate": ("learning_rate_", "log")},
           "rw": {"alpha": ("alpha_", "linear"), "beta": ("beta_", "log")}}


def _default_params(model: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    if model == "exp3":
        return {"learning_rate": np.exp(rng.uniform(np.log(0.05), np.log(1.0), n))}
    return {"alpha": rng.uniform(0.1, 0.9, n), "beta": np.exp(rng.uniform(np.log(2), np.log(15), n))}


def _simulate(est, params, T, reward_means, seed):
    from probest.bandits._simulate import simulate_exp3, simulate_rescorla_wagner

    n = len(next(iter(params.values())))
    if _model_of(est) == "rw":
        return simulate_rescorla_wagner(n, T, reward_means, alpha=params["alpha"],
                                        beta=params["beta"], q0=est.q0, random_state=seed)
    return simulate_exp3(n, T, reward_means, learning_rate=params["learning_rate"],
                         schedule=est.schedule, alpha=est.alpha, gamma=est.gamma,
                         iw_estimator=est.iw_estimator, random_state=seed)


def _fit_quietly(est, sim):  # boundary hits are counted, not warned, here
    return fit_quietly(est, sim.actions, sim.rewards)


@dataclasses.dataclass
class RecoveryResult:
    """True vs fitted parameters of simulated subjects.

    Parameters
    ----------
    true, fitted : dict of ndarray
        Per parameter, one value per simulated subject.
    scales : dict of str
        "log" (statistics on log values) or "linear" per parameter.
    hit_bound : ndarray of bool
        Subjects whose fit hit the end of the search range.

    Attributes
    ----------
    true, fitted, scales, hit_bound
        As given.
    stats : dict
        Per parameter: ``r`` (Pearson correlation), ``bias`` (mean fitted - true),
        ``rmse``, on the parameter's scale, and ``boundary_rate``.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.bandits import RecoveryResult
    >>> res = RecoveryResult({"c": np.array([0.1, 0.2, 0.4])}, {"c": np.array([0.1, 0.22, 0.4])},
    ...                      {"c": "log"}, np.zeros(3, bool))
    >>> round(res.stats["c"]["r"], 3)
    0.997
    """

    true: dict
    fitted: dict
    scales: dict
    hit_bound: np.ndarray

    @property
    def stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for k in self.true:
            t, f = np.asarray(self.true[k], float), np.asarray(self.fitted[k], float)
            if self.scales[k] == "log":
                t, f = np.log(t), np.log(f)
            d = f - t
            r = float(np.corrcoef(t, f)[0, 1]) if np.std(t) > 0 and np.std(f) > 0 else float("nan")
            out[k] = {"r": r, "bias": float(d.mean()), "rmse": float(np.sqrt((d**2).mean())),
                      "boundary_rate": float(np.mean(self.hit_bound))}
        return out

    def plot(self, axes=None):
        """True vs fitted, one panel per parameter (boundary hits in red).

        Parameters
        ----------
        axes : sequence of matplotlib Axes, optional
            One per parameter.

        Returns
        -------
        list of matplotlib Axes
        """
        import matplotlib.pyplot as plt

        names = list(self.true)
        if axes is None:
            _, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.6), squeeze=False)
            axes = axes[0]
        for ax, k in zip(axes, names):
            t, f = np.asarray(self.true[k]), np.asarray(self.fitted[k])
            ax.scatter(t[~self.hit_bound], f[~self.hit_bound], s=12, label="fit")
            if self.hit_bound.any():
                ax.scatter(t[self.hit_bound], f[self.hit_bound], s=14, c="C3", label="hit bound")
            lims = [min(t.min(), f.min()), max(t.max(), f.max())]
            ax.plot(lims, lims, "k:", lw=1)
            if self.scales[k] == "log":
                ax.set_xscale("log")
                ax.set_yscale("log")
            s = self.stats[k]
            ax.set_title(f"{k}: r={s['r']:.2f}, bias={s['bias']:+.2g}, RMSE={s['rmse']:.2g}",
                         fontsize=9)
            ax.set_xlabel(f"true {k}")
            ax.set_ylabel(f"fitted {k}")
            ax.legend(fontsize=7)
        return list(axes)


def parameter_recovery(estimator, true_params: dict | None = None, *, n_subjects: int = 50,
                       T: int | None = None, reward_means: Any = (0.3, 0.7),
                       random_state: Any = None) -> RecoveryResult:
    """Simulate subjects from the estimator's model, refit, compare with the truth.

    Parameters
    ----------
    estimator : Exp3LearningRateMLE, BayesianExp3, RescorlaWagnerMLE or BayesianRescorlaWagner
        The model and fitting settings.  If it is fitted and ``true_params`` is None, its
        own estimates are the truth and each subject keeps its number of trials (recovery
        "at the fitted parameters").
    true_params : dict of array, optional
        ``{"learning_rate": ...}`` (Exp3) or ``{"alpha": ..., "beta": ...}`` (RW); default:
        the fitted values, or draws over a typical range (c log-uniform in [0.05, 1];
        alpha uniform in [0.1, 0.9], beta log-uniform in [2, 15]).
    n_subjects : int
        Simulated subjects when the parameters are drawn.
    T : int, optional
        Trials per simulated subject (default: the fitted subjects' maximum, else 200).
    reward_means : sequence of float, (n_subjects, K) array or "empirical"
        Bernoulli means of the arms; "empirical": each fitted subject's mean reward per arm.
    random_state : int, RandomState, Generator or None
        Seeds the draws, the simulations and the refits.

    Returns
    -------
    RecoveryResult

    Examples
    --------
    >>> from probest.bandits import Exp3LearningRateMLE, parameter_recovery
    >>> res = parameter_recovery(Exp3LearningRateMLE(gamma=0.05, ci=None), n_subjects=8,
    ...                          T=150, random_state=0)
    >>> res.stats["learning_rate"]["r"] > 0.8
    True
    """
    model = _model_of(estimator)
    rng = np.random.default_rng(draw_seed(random_state))
    fitted = hasattr(estimator, "subjects_")
    if true_params is None:
        if fitted:
            true_params = {p: np.asarray(getattr(estimator, a)) for p, (a, _) in
                           _PARAMS[model].items()}
        else:
            true_params = _default_params(model, int(n_subjects), rng)
    true_params = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in true_params.items()}
    if set(true_params) != set(_PARAMS[model]):
        raise ValueError(f"true_params must have the keys {sorted(_PARAMS[model])}.")
    n = len(next(iter(true_params.values())))
    if T is None:
        T = int(estimator.n_trials_.max()) if fitted else 200
    if isinstance(reward_means, str):
        if reward_means != "empirical" or not hasattr(estimator, "_fit_log"):
            raise ValueError("reward_means='empirical' needs an estimator fitted in this session.")
        log = estimator._fit_log
        mu = np.full((log.n_subjects, log.n_arms), 0.5)
        for s in range(log.n_subjects):
            a, r = log.actions[s, : log.lengths[s]], log.rewards[s, : log.lengths[s]]
            for k in range(log.n_arms):
                if np.any(a == k):
                    mu[s, k] = r[a == k].mean()
        reward_means = mu
    sim = _simulate(estimator, true_params, int(T), reward_means, int(rng.integers(2**31)))
    refit = clone(estimator)
    if "random_state" in refit.get_params():
        refit.set_params(random_state=int(rng.integers(2**31)))
    if "ci" in refit.get_params() and refit.get_params()["ci"] == "bootstrap":
        refit.set_params(ci=None)
    _fit_quietly(refit, sim)
    got = {p: np.asarray(getattr(refit, a)) for p, (a, _) in _PARAMS[model].items()}
    hit = np.asarray(getattr(refit, "diagnostics_", {}).get("hit_bound", np.zeros(n, bool)))
    return RecoveryResult(true_params, got, {p: s for p, (_, s) in _PARAMS[model].items()}, hit)


@dataclasses.dataclass
class ConfusionResult:
    """Which model wins on data simulated from each model.

    Parameters
    ----------
    names : list of str
        Model names (rows: simulated from, columns: selected).
    bic, aic : ndarray of shape (n_models, n_models)
        Fraction of simulated subjects from row model i best fitted by column model j.

    Attributes
    ----------
    names, bic, aic
        As given.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.bandits import ConfusionResult
    >>> res = ConfusionResult(["a", "b"], np.eye(2), np.eye(2))
    >>> float(np.trace(res.bic)) / 2
    1.0
    """

    names: list
    bic: np.ndarray
    aic: np.ndarray

    def plot(self, ax=None, criterion: str = "bic"):
        """The confusion matrix as a heat map.

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw.
        criterion : {"bic", "aic"}
            Which matrix.

        Returns
        -------
        matplotlib Axes
        """
        import matplotlib.pyplot as plt

        M = getattr(self, criterion)
        if ax is None:
            _, ax = plt.subplots(figsize=(3.8, 3.4))
        ax.imshow(M, vmin=0, vmax=1, cmap="Blues")
        for i in range(len(self.names)):
            for j in range(len(self.names)):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center",
                        color="white" if M[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(self.names)), self.names)
        ax.set_yticks(range(len(self.names)), self.names)
        ax.set_xlabel(f"selected by {criterion.upper()}")
        ax.set_ylabel("simulated from")
        return ax


def model_confusion(estimators: dict, *, n_subjects: int = 30, T: int = 200,
                    reward_means: Any = (0.3, 0.7), true_params: dict | None = None,
                    random_state: Any = None) -> ConfusionResult:
    """Simulate from each model, fit every model to each data set, tally the BIC/AIC winners.

    Parameters
    ----------
    estimators : dict of str to estimator
        The candidate models (Exp3 / RW estimators, unfitted settings).
    n_subjects : int
        Simulated subjects per generating model.
    T : int
        Trials per subject.
    reward_means : sequence of float
        Bernoulli arm means of the simulated task.
    true_params : dict of str to dict, optional
        Generating parameters per model name (default: drawn as in
        :func:`parameter_recovery`).
    random_state : int, RandomState, Generator or None
        Seeds everything.

    Returns
    -------
    ConfusionResult

    Examples
    --------
    >>> import numpy as np
    >>> from probest.bandits import Exp3LearningRateMLE, RescorlaWagnerMLE, model_confusion
    >>> res = model_confusion({"exp3": Exp3LearningRateMLE(gamma=0.05, ci=None),
    ...                        "rw": RescorlaWagnerMLE(ci=None)}, n_subjects=6, T=150,
    ...                       random_state=0)
    >>> res.bic.shape, bool(np.allclose(res.bic.sum(1), 1.0))
    ((2, 2), True)
    """
    names = list(estimators)
    rng = np.random.default_rng(draw_seed(random_state))
    bic = np.zeros((len(names), len(names)))
    aic = np.zeros_like(bic)
    for i, gen in enumerate(names):
        model = _model_of(estimators[gen])
        params = (true_params or {}).get(gen) or _default_params(model, int(n_subjects), rng)
        sim = _simulate(estimators[gen], params, int(T), reward_means, int(rng.integers(2**31)))
        B, A = [], []
        for name in names:
            est = clone(estimators[name])
            if "random_state" in est.get_params():
                est.set_params(random_state=int(rng.integers(2**31)))
            _fit_quietly(est, sim)
            B.append(est.bic_)
            A.append(est.aic_)
        for M, vals in ((bic, np.stack(B)), (aic, np.stack(A))):
            win = vals.argmin(0)
            M[i] = np.bincount(win, minlength=len(names)) / len(win)
    return ConfusionResult(names, bic, aic)

"""PartialBayesianMLPClassifier: categorical likelihood, BMA class probabilities."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import check_scale
from probest.bnn import _mlp
from probest.bnn._base import _DOC_ATTRS, _DOC_PARAMS, _PartialBayesianMLP


class PartialBayesianMLPClassifier(ClassifierMixin, _PartialBayesianMLP):
    __doc__ = """A partial Bayesian MLP classifier trained by Feynman–Kac SMC.

    Softmax likelihood over ``classes_``; ``predict_proba`` is the Bayesian model average
    ``sum_s w_s softmax(f_s(x))`` over the particles of the stochastic block.

    Parameters
    ----------""" + _DOC_PARAMS + """
    Attributes
    ----------""" + _DOC_ATTRS + """    classes_ : ndarray
        The class labels (any values).

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from probest.bnn import PartialBayesianMLPClassifier
    >>> X, y = make_moons(120, noise=0.2, random_state=0)
    >>> clf = PartialBayesianMLPClassifier(hidden_layer_sizes=(16, 8), stochastic_layers=(1,),
    ...                                    n_particles=50, max_epochs=5, device="cpu",
    ...                                    random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape, clf.classes_.tolist()
    ((2, 2), [0, 1])
    """

    _spec = _PartialBayesianMLP._spec.__class__(outputs=("predict", "predict_proba"))
    _fitted_attributes = ("classes_",)

    def __init__(self, hidden_layer_sizes=(50, 20, 5), activation="gelu", stochastic_layers=(2,),
                 prior_scale=1.0, sampler="ohsmc", n_particles=1000, kernel="rw",
                 kernel_scale=1e-3, resampling="stratified", ess_threshold=1.0,
                 likelihood_power=1.0, final_smc=None, final_mh_steps=20, batch_size=32,
                 max_epochs=200, learning_rate=1e-2,
                 early_stopping=True, validation_fraction=0.2, patience=20, n_restarts=1,
                 device="auto", dtype="float32", random_state=None, verbose=0):
        self._store_params(locals())

    def _loglik(self, module):
        return _mlp.categorical_loglik

    def _stratify(self, stratify):
        if stratify is None:
            return None
        counts = np.bincount(stratify)
        return stratify if counts[counts > 0].min() >= 2 else None

    def fit(self, X, y):
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` (at least two classes)."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        check_scale(X, owner=type(self).__name__, dtype=self.dtype or "float32")
        self.classes_, idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"y holds a single class ({self.classes_[0]!r}); a classifier "
                             "needs at least two.")
        return self._fit(X, idx.astype(np.float64), len(self.classes_), stratify=idx)

    def predict_proba(self, X):
        """``(n, n_classes)`` BMA class probabilities."""
        fk = self._engine()
        out = fk.predict_outputs(self._inputs(X))  # (S, n, K)
        w = torch.exp(fk.log_weights_ - torch.logsumexp(fk.log_weights_, 0))
        p = torch.einsum("s,snk->nk", w, torch.softmax(out, -1))
        p = p.double().cpu().numpy()
        return p / p.sum(1, keepdims=True)

    def predict(self, X):
        """The most probable class under the BMA predictive."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), 1)]

    def _label_index(self, y):
        y = np.asarray(y)
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y holds labels {unseen.tolist()[:5]} that were not seen in fit "
                             f"(classes_ = {self.classes_.tolist()[:10]}).")
        return np.searchsorted(self.classes_, y)

    def score_nlpd(self, X, y):
        """Mean negative log BMA predictive probability of the true labels (nats)."""
        check_is_fitted(self)
        _, y = validate_data(self, X, y, reset=False, dtype=np.float64)
        idx = self._label_index(y)
        p = self.predict_proba(X)[np.arange(len(idx)), idx]
        return float(-np.mean(np.log(np.clip(p, 1e-300, None))))

    def sample_predictive(self, X, n_samples=1, random_state=None):
        """``(n_samples, n)`` label draws: a particle by weight, then its softmax."""
        fk = self._engine()
        prob = torch.softmax(fk.predict_outputs(self._inputs(X)), -1).double().cpu().numpy()
        idx, rng = self._draw_particles(int(n_samples), random_state)
        p = prob[idx]  # (n_samples, n, K)
        u = rng.random(p.shape[:2])[..., None]
        k = (np.cumsum(p, -1) < u).sum(-1).clip(max=p.shape[-1] - 1)
        return self.classes_[k]

    def to_pyro(self, X=None):
        """``to_pyro(X)``: the BMA predictive ``Categorical`` over class indices at ``X``
        (``batch_shape == (n,)``).  ``to_pyro()``: a
        :class:`~probest.bnn._pyro.PartialBayesianPyroModule` (block posterior as ``Empirical``
        in ``module.posterior`` plus the frozen net; ``y`` as class indices)."""
        import pyro.distributions as dist

        check_is_fitted(self)
        if X is None:
            from probest.bnn._pyro import PartialBayesianPyroModule

            named = dict(self.module_.named_parameters())
            return PartialBayesianPyroModule(
                self.module_, self.stochastic_names_,
                [named[n].shape for n in self.stochastic_names_], self._empirical(),
                lambda out: dist.Categorical(logits=out))
        return dist.Categorical(probs=torch.tensor(self.predict_proba(X)))

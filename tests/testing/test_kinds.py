"""The conformance suite on a toy estimator of every input kind, and proof that each kind
still catches a broken estimator (accepts bad values, ignores a wrong length, touches the
global RNG)."""

import numpy as np
import pytest
from sklearn.base import ClassifierMixin, ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._torch import draw_seed
from probest.base import EstimatorSpec, ProbestEstimator
from probest.testing import EstimatorConformance

# ------------------------------------------------------------------------------ toys


class _Toy(ProbestEstimator):
    """Shared toy behaviour: ``sloppy=True`` skips validation and touches numpy's global RNG
    (the broken estimator every meta-test below must catch)."""

    sloppy = False

    def _rng(self) -> np.random.Generator:
        if self.sloppy:
            np.random.random()  # the bug under test: advances the global RNG
        return np.random.default_rng(draw_seed(self.random_state))


class TextClassifier(ClassifierMixin, _Toy):
    """Multinomial naive Bayes over whitespace tokens (a list of strings in, labels out)."""

    _spec = EstimatorSpec(input_kind="text", outputs=("predict", "predict_proba"))

    def __init__(self, alpha=1.0, random_state=None):
        self._store_params(locals())

    def _check_text(self, X):
        if self.sloppy:
            return [str(x) for x in X]
        if isinstance(X, np.ndarray) and X.ndim != 1 or not all(isinstance(x, str) for x in X):
            raise ValueError("X must be a list of str; got a non-string entry.")
        if any(not x.strip() for x in X):
            raise ValueError("X holds an empty string; every document needs a token.")
        return list(X)

    def fit(self, X, y):
        X = self._check_text(X)
        y = np.asarray(y)
        if not self.sloppy and len(y) != len(X):
            raise ValueError(f"X has {len(X)} samples but y has length {len(y)}.")
        rng = self._rng()
        self.classes_ = np.unique(y)
        vocab = sorted({t for x in X for t in x.split()})
        self.vocabulary_ = {t: i for i, t in enumerate(vocab)}
        counts = np.zeros((len(self.classes_), len(vocab)))
        for x, label in zip(X, y, strict=False):  # sloppy: a short y silently truncates
            k = int(np.searchsorted(self.classes_, label))
            for t in x.split():
                counts[k, self.vocabulary_[t]] += 1
        counts += self.alpha * (1 + 0.01 * rng.random(counts.shape))  # seeded smoothing
        self.log_prob_ = np.log(counts / counts.sum(1, keepdims=True))
        self.log_prior_ = np.log(np.bincount(np.searchsorted(self.classes_, y[:len(X)]),
                                             minlength=len(self.classes_)) / min(len(X), len(y)))
        return self

    def _joint(self, X):
        check_is_fitted(self)
        X = self._check_text(X)
        out = np.tile(self.log_prior_, (len(X), 1))
        for i, x in enumerate(X):
            for t in x.split():
                if t in self.vocabulary_:
                    out[i] += self.log_prob_[:, self.vocabulary_[t]]
        return out

    def predict_proba(self, X):
        j = self._joint(X)
        p = np.exp(j - j.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)

    def predict(self, X):
        return self.classes_[self._joint(X).argmax(1)]

    def score(self, X, y):
        """Mean log-probability of the true labels (unknown labels are an error)."""
        y = np.asarray(y, dtype=object)
        known = set(self.classes_.tolist())
        unseen = [v for v in y if v not in known]
        if unseen:
            raise ValueError(f"unknown labels {unseen[:3]}; the classifier knows {sorted(known)}.")
        idx = np.searchsorted(self.classes_, y.astype(self.classes_.dtype))
        return float(np.log(self.predict_proba(X)[np.arange(len(y)), idx]).mean())


class ActionValueModel(_Toy):
    """Mean reward per action with per-subject offsets, from an event log."""

    _spec = EstimatorSpec(input_kind="events", outputs=("predict",))

    def __init__(self, shrinkage=1.0, random_state=None):
        self._store_params(locals())

    def _check_events(self, X, fitting):
        if not self.sloppy:
            missing = {"actions", "rewards", "subjects"} - set(X)
            if missing:
                raise ValueError(f"the event log lacks {sorted(missing)} (subject ids are "
                                 "required).")
        a = np.asarray(X["actions"])
        r = np.asarray(X.get("rewards", np.zeros(len(a))), dtype=np.float64)
        s = np.asarray(X.get("subjects", np.zeros(len(a))))
        if self.sloppy:
            n = min(len(a), len(r), len(s))  # silently truncates ragged columns
            return a[:n], r[:n], s[:n]
        if not len(a) == len(r) == len(s):
            raise ValueError(f"event columns disagree in length: {len(a)} actions, {len(r)} "
                             f"rewards, {len(s)} subjects.")
        if fitting and not np.all(np.isfinite(r)):
            raise ValueError("rewards contain NaN or inf.")
        if fitting and (np.any(a < 0) or not np.all(a == np.round(a))):
            raise ValueError("action ids must be non-negative integers.")
        if not fitting and not np.isin(a, self.actions_).all():
            raise ValueError(f"unknown action ids {sorted(set(a) - set(self.actions_))[:3]}.")
        return a, r, s

    def fit(self, X, y=None):
        a, r, s = self._check_events(X, fitting=True)
        rng = self._rng()
        self.actions_ = np.unique(a)
        self.values_ = np.array([r[a == k].sum() / (self.shrinkage + (a == k).sum())
                                 for k in self.actions_]) + 1e-3 * rng.standard_normal(
                                     len(self.actions_))
        return self

    def predict(self, X):
        check_is_fitted(self)
        a, _, _ = self._check_events(X, fitting=False)
        return self.values_[np.clip(np.searchsorted(self.actions_, a), 0, len(self.actions_) - 1)]


class CentreClusterer(ClusterMixin, _Toy):
    """A few Lloyd steps from seeded random centres; only ``fit_predict``/``labels_``."""

    _spec = EstimatorSpec(outputs=("fit_predict",))

    def __init__(self, n_clusters=2, n_iter=5, random_state=None):
        self._store_params(locals())

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float) if self.sloppy else validate_data(self, X)
        if X.ndim != 2:  # the sloppy one still needs a 2-D view to run
            X = X.reshape(len(X), -1)
        rng = self._rng()
        centres = X[rng.choice(len(X), self.n_clusters, replace=False)]
        for _ in range(self.n_iter):
            labels = ((X[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            centres = np.array([X[labels == k].mean(0) if np.any(labels == k) else centres[k]
                                for k in range(self.n_clusters)])
        self.labels_ = labels
        self.cluster_centers_ = centres
        return self


class ClientGaussian(_Toy):
    """A diagonal Gaussian pooled from client sufficient statistics."""

    _spec = EstimatorSpec(input_kind="clients", outputs=("score_samples",))

    def __init__(self, reg=1e-3, random_state=None):
        self._store_params(locals())

    def fit(self, X, y=None):
        parts = [np.asarray(c, dtype=np.float64) for c in X]
        if not self.sloppy:
            if not parts:
                raise ValueError("no clients: pass at least one client array.")
            for i, c in enumerate(parts):
                if c.ndim != 2 or c.shape[0] == 0:
                    raise ValueError(f"client {i} is empty (no samples) or not 2-D.")
                if not np.all(np.isfinite(c)):
                    raise ValueError(f"client {i} contains NaN or inf.")
                if c.shape[1] != parts[0].shape[1]:
                    raise ValueError(f"client {i} has {c.shape[1]} features, client 0 has "
                                     f"{parts[0].shape[1]}.")
        d = min(c.shape[1] for c in parts if c.ndim == 2)  # sloppy: drops extra columns
        parts = [c[:, :d] for c in parts]
        n = sum(len(c) for c in parts)
        s1 = sum(c.sum(0) for c in parts)
        s2 = sum((c**2).sum(0) for c in parts)
        rng = self._rng()
        self.mean_ = s1 / n
        self.var_ = s2 / n - self.mean_**2 + self.reg * (1 + 0.01 * rng.random(d))
        self.n_features_in_ = d
        return self

    def score_samples(self, X):
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[-1]} features, expected {self.n_features_in_}.")
        return -0.5 * (((X - self.mean_) ** 2 / self.var_) + np.log(2 * np.pi * self.var_)).sum(1)


# ------------------------------------------------------------------------- conformance

_NOT_PROBEST = "probest.load refuses classes outside probest, and these toys live in tests/"


class _ToyConformance(EstimatorConformance):
    has_posterior = False  # point estimates
    has_pyro = False  # no Pyro form
    supports_save = False  # _NOT_PROBEST
    toy: type = None  # type: ignore[assignment]

    def make_estimator(self, **params):
        return self.toy(**params)


def _text():
    rng = np.random.default_rng(0)
    words = {"a": ["sun", "sea", "sand", "surf"], "b": ["snow", "ice", "ski", "cold"]}
    y = np.array(["a", "b"] * 10)
    X = [" ".join(rng.choice(words[label], 4)) for label in y]
    return X, y


def _events():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 3, 40)
    return {"actions": a, "rewards": a * 0.5 + rng.normal(size=40),
            "subjects": rng.integers(0, 5, 40)}, None


def _blobs():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(15, 2)), rng.normal(size=(15, 2)) + 4]), None


def _clients():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(12, 3)), rng.normal(size=(9, 3)) + 1, rng.normal(size=(10, 3))], None


class TestTextConformance(_ToyConformance):
    toy = TextClassifier

    def make_data(self):
        return _text()


class TestEventsConformance(_ToyConformance):
    toy = ActionValueModel

    def make_data(self):
        return _events()


class TestClustererConformance(_ToyConformance):
    toy = CentreClusterer

    def make_data(self):
        return _blobs()


class TestClientsConformance(_ToyConformance):
    toy = ClientGaussian

    def make_data(self):
        return _clients()


# ---------------------------------------------------------------------- broken ones

def _broken(suite_cls):
    """The suite class on a sloppy subclass of its toy."""
    # it also skips the base's fitted-state check, so that the bad values it swallows reach
    # the conformance suite (which must catch them on its own)
    sloppy = type("Sloppy" + suite_cls.toy.__name__, (suite_cls.toy,),
                  {"sloppy": True, "_check_fitted_finite": lambda self: None})
    return type("Broken" + suite_cls.__name__, (suite_cls,), {"toy": sloppy})()


_SUITES = [TestTextConformance, TestEventsConformance, TestClustererConformance,
           TestClientsConformance]


@pytest.mark.parametrize("suite_cls", _SUITES, ids=lambda c: c.toy.__name__)
def test_global_rng_violation_is_caught(suite_cls):
    with pytest.raises(AssertionError, match="numpy global RandomState"):
        _broken(suite_cls).test_fit_leaves_global_rng_untouched()


@pytest.mark.parametrize("suite_cls", _SUITES, ids=lambda c: c.toy.__name__)
def test_accepting_bad_values_is_caught(suite_cls):
    # text: empty string; events: NaN reward; clusterer: NaN; clients: NaN in one client
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        _broken(suite_cls).test_bad_values_rejected()


@pytest.mark.parametrize("suite_cls", _SUITES, ids=lambda c: c.toy.__name__)
def test_ignoring_a_wrong_length_is_caught(suite_cls):
    # text: y of another length; events: ragged columns; clusterer: 1-D X;
    # clients: an empty client / different widths
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        _broken(suite_cls).test_bad_shapes_rejected()


@pytest.mark.parametrize("suite_cls", [TestTextConformance, TestEventsConformance],
                         ids=lambda c: c.toy.__name__)
def test_unchecked_predict_input_is_caught(suite_cls):
    suite = _broken(suite_cls)
    X, y = suite.make_data()
    est = suite.make_estimator(random_state=0).fit(X) if y is None else \
        suite.make_estimator(random_state=0).fit(X, y)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        suite.test_bad_predict_input_rejected((est, X, y))


@pytest.mark.parametrize(("suite_cls", "name"), [
    (TestTextConformance, "empty string"), (TestEventsConformance, "nan reward"),
    (TestClustererConformance, "nan"), (TestClientsConformance, "nan in one client")])
def test_each_bad_input_is_named_in_the_failure(suite_cls, name):
    with pytest.raises(pytest.fail.Exception, match=f"bad input {name!r}"):
        _broken(suite_cls).test_bad_values_rejected()


def test_skipped_bad_inputs_need_reasons_and_real_names():
    suite = TestTextConformance()
    suite.skip_bad_inputs = {"empty string": ""}
    with pytest.raises(ValueError, match="written reason"):
        suite.test_bad_values_rejected()
    suite.skip_bad_inputs = {"nan": "tabular only, not a text input"}
    with pytest.raises(ValueError, match="does not generate"):
        suite.test_bad_values_rejected()
    # a switched-off check is really off: the sloppy toy passes once empty strings are allowed
    broken = _broken(TestTextConformance)
    broken.skip_bad_inputs = {"empty string": "this toy treats an empty document as valid",
                              "non-string entry": "this toy casts entries to str"}
    broken.test_bad_values_rejected()


def test_undeclared_kind_and_missing_spec_are_caught():
    suite = TestClientsConformance()
    suite.input_kind = "text"
    with pytest.raises(AssertionError, match="not declared"):
        suite.test_spec_declares_real_methods()

    class NoSpec(ClusterMixin, ProbestEstimator):
        def __init__(self, random_state=None):
            self.random_state = random_state

    class NoSpecSuite(_ToyConformance):
        toy = NoSpec

    with pytest.raises(AssertionError, match="declares no _spec"):
        NoSpecSuite().test_spec_declares_real_methods()

    class Lying(CentreClusterer):
        _spec = EstimatorSpec(outputs=("predict",))

    class LyingSuite(TestClustererConformance):
        toy = Lying

    with pytest.raises(AssertionError, match="no such method"):
        LyingSuite().test_spec_declares_real_methods()


def test_spec_refuses_unknown_kinds_and_outputs():
    with pytest.raises(ValueError, match="input kind"):
        EstimatorSpec(input_kind="images")
    with pytest.raises(ValueError, match="tuple of method names"):
        EstimatorSpec(outputs="predict")
    assert EstimatorSpec(outputs=("fit_predict",)).transductive
    assert not EstimatorSpec(outputs=("predict",)).transductive

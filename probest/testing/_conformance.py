"""The conformance base class: subclass it once per estimator in a family's tests.

Example::

    from probest.testing import EstimatorConformance

    class TestLogisticConformance(EstimatorConformance):
        def make_estimator(self, **params):
            return WeightedLogisticRegression(alpha=1.0, **params)

        def make_data(self):
            X, y = make_classification(60, 4, random_state=0)
            return X, y

Class attributes switch checks off where a family honestly has no such feature (with the
reason in the subclass): ``has_posterior`` (``to_arviz``), ``has_pyro`` (``to_pyro``),
``supports_save`` (safetensors/JSON persistence), ``fit_kwargs``.
"""

from __future__ import annotations

import copy
import pickle
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor

from probest.testing._rng import assert_rng_untouched

_OUTPUT_METHODS = (
    "predict_proba",
    "predict",
    "score_samples",
    "decision_function",
    "transform",
    "predict_log_ratio",
)


def _outputs(est, X) -> dict[str, np.ndarray]:
    """Every deterministic output method the estimator has, evaluated on X."""
    out = {}
    for name in _OUTPUT_METHODS:
        fn = getattr(est, name, None)
        if fn is None:
            continue
        try:
            out[name] = np.asarray(fn(X))
        except (AttributeError, NotImplementedError):
            continue
    if not out:
        raise AssertionError(f"{type(est).__name__} has no output method among {_OUTPUT_METHODS}.")
    return out


def _assert_outputs_equal(a: dict, b: dict, rtol: float, what: str) -> None:
    assert a.keys() == b.keys(), f"{what}: different output methods {a.keys()} vs {b.keys()}"
    for k in a:
        if a[k].dtype.kind in "fc":
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol, err_msg=f"{what}: {k}")
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


class EstimatorConformance:
    """Checks every probest estimator must pass; pytest collects them on subclasses.

    Subclass it once per estimator (the class name must start with ``Test``), returning a
    tiny-budget estimator from ``make_estimator(**params)`` and small ``(X, y)`` from
    ``make_data()``; every ``test_*`` method is then a pytest test.

    Attributes
    ----------
    has_posterior : bool
        Check ``to_arviz`` (switch off, with the reason, for point estimators).
    has_pyro : bool
        Check ``to_pyro`` inside a ``pyro.plate``.
    supports_save : bool
        Check the ``probest.save``/``probest.load`` round trip.
    fit_kwargs : dict
        Extra keyword arguments of ``fit`` (e.g. ``{"X_target": ...}``).
    reproducibility_rtol : float
        Tolerance of "identical" refits with the same ``random_state`` (0 = bitwise).

    Examples
    --------
    >>> import numpy as np
    >>> from probest.shift import WeightedLinearRegression
    >>> from probest.testing import EstimatorConformance
    >>> class TestLinear(EstimatorConformance):
    ...     has_posterior = False
    ...     def make_estimator(self, **params):
    ...         return WeightedLinearRegression(**params)
    ...     def make_data(self):
    ...         X = np.random.default_rng(0).normal(size=(30, 2))
    ...         return X, X @ [1.0, -2.0]
    >>> suite = TestLinear()  # pytest runs every test_* method; here two by hand
    >>> suite.test_init_only_stores_params()
    >>> suite.test_nan_and_inf_rejected()
    """

    has_posterior: bool = True
    has_pyro: bool = True
    supports_save: bool = True
    fit_kwargs: dict[str, Any] = {}
    #: tolerance for "identical" refits (0 = bitwise); float32 GPU kernels may need more.
    reproducibility_rtol: float = 1e-10

    # --- to implement ------------------------------------------------------------------
    def make_estimator(self, **params: Any):
        raise NotImplementedError("subclass must return a tiny-budget estimator")

    def make_data(self) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError("subclass must return small (X, y) data; y=None if unsupervised")

    # --- helpers -------------------------------------------------------------------------
    def fit(self, est, X, y):
        return est.fit(X, **self.fit_kwargs) if y is None else est.fit(X, y, **self.fit_kwargs)

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls):
        """One tiny fit per class, shared by the read-only checks."""
        self = cls()
        X, y = self.make_data()
        est = self.make_estimator(**self._seed_params(0))
        return self.fit(est, X, y), X, y

    def _seed_params(self, seed) -> dict[str, Any]:
        return {"random_state": seed} if "random_state" in self.make_estimator().get_params() else {}

    # --- sklearn contract -----------------------------------------------------------------
    def test_init_only_stores_params(self):
        est = self.make_estimator()
        params = est.get_params(deep=False)
        fitted_attrs = [k for k in vars(est) if k.endswith("_") and not k.startswith("__")]
        assert not fitted_attrs, f"__init__ set fitted attributes {fitted_attrs}"
        assert set(vars(est)) >= set(params), "__init__ must store every parameter unchanged"
        cloned = clone(est)
        assert cloned.get_params(deep=False).keys() == params.keys()

    def test_pickle_deepcopy_clone_round_trip(self, fitted):
        est, X, _ = fitted
        ref = _outputs(est, X)
        for name, other in (
            ("pickle", pickle.loads(pickle.dumps(est))),
            ("deepcopy", copy.deepcopy(est)),
        ):
            _assert_outputs_equal(ref, _outputs(other, X), 1e-12, name)
        unfitted = clone(est)
        assert not any(k.endswith("_") and not k.startswith("_") for k in vars(unfitted))

    def test_random_state_reproducible(self):
        X, y = self.make_data()
        if "random_state" not in self.make_estimator().get_params():
            pytest.skip("estimator is deterministic (no random_state parameter)")
        a = _outputs(self.fit(self.make_estimator(random_state=7), X, y), X)
        b = _outputs(self.fit(self.make_estimator(random_state=7), X, y), X)
        _assert_outputs_equal(a, b, self.reproducibility_rtol, "same random_state")
        rs = np.random.RandomState(7)
        c = _outputs(self.fit(self.make_estimator(random_state=rs), X, y), X)
        assert all(np.all(np.isfinite(v)) for v in c.values() if v.dtype.kind == "f")

    def test_fit_leaves_global_rng_untouched(self):
        X, y = self.make_data()
        params = self.make_estimator().get_params()
        for seed in ([None, 3] if "random_state" in params else [None]):
            kw = {"random_state": seed} if "random_state" in params else {}
            with assert_rng_untouched():
                est = self.fit(self.make_estimator(**kw), X, y)
                _outputs(est, X)

    # --- bad input ------------------------------------------------------------------------
    def _expect_value_error(self, X, y, pattern: str):
        est = self.make_estimator(**self._seed_params(0))
        with pytest.raises(ValueError, match=pattern):
            self.fit(est, X, y)

    def test_nan_and_inf_rejected(self):
        X, y = self.make_data()
        for bad in (np.nan, np.inf):
            Xb = np.array(X, dtype=np.float64, copy=True)
            Xb[1, 0] = bad
            self._expect_value_error(Xb, y, r"(?i)nan|inf")

    def test_wrong_shapes_rejected(self):
        X, y = self.make_data()
        X = np.asarray(X)
        self._expect_value_error(X[:, 0], y, r"(?i)2d|reshape|dimension")
        self._expect_value_error(X[..., None], y, r"(?i)dim|2d|shape")
        if y is not None:
            self._expect_value_error(X, np.asarray(y)[:-1], r"(?i)inconsistent|samples|length|shape")

    def test_predict_with_wrong_n_features_rejected(self, fitted):
        est, X, _ = fitted
        X = np.asarray(X)
        Xw = np.hstack([X, X[:, :1]])
        for name in _OUTPUT_METHODS:
            fn = getattr(est, name, None)
            if fn is not None:
                with pytest.raises(ValueError, match=r"(?i)features"):
                    fn(Xw)

    # --- composition ----------------------------------------------------------------------
    def _is_conditional(self, est) -> bool:
        return is_classifier(est) or is_regressor(est)

    def test_to_pyro_traces_inside_plate(self, fitted):
        est, X, y = fitted
        if not self.has_pyro:
            with pytest.raises(NotImplementedError):
                est.to_pyro()
            return
        import pyro
        import pyro.distributions as dist
        from pyro import poutine

        X = np.asarray(X)
        n = X.shape[0]
        params_before = set(pyro.get_param_store().keys())  # other tests' SVI may leave some
        cond = self._is_conditional(est)
        obj = est.to_pyro(X) if cond else est.to_pyro()
        if isinstance(obj, dist.Distribution):
            if cond:
                assert obj.batch_shape == (n,), f"to_pyro(X) batch_shape {obj.batch_shape} != ({n},)"
                if is_classifier(est):
                    obs = torch.tensor(np.searchsorted(est.classes_, y))
                else:
                    obs = torch.as_tensor(np.asarray(y), dtype=obj.sample().dtype)
                site = "y"
            else:
                assert obj.event_shape == (X.shape[1],), (
                    f"to_pyro() event_shape {obj.event_shape} != ({X.shape[1]},)")
                obs = torch.as_tensor(X, dtype=obj.sample().dtype)
                site = "x"

            def model(obs=None):
                with pyro.plate("data", n):
                    return pyro.sample(site, obj, obs=obs)

            tr = poutine.trace(model).get_trace(obs)
            tr.compute_log_prob()
            lp = tr.nodes[site]["log_prob"]
            assert lp.shape == (n,) and torch.isfinite(lp).all()
            draws = poutine.trace(model).get_trace().nodes[site]["value"]
            assert draws.shape[0] == n
        else:  # a PyroModule / model callable taking X
            assert callable(obj), "to_pyro() must return a pyro Distribution or a callable model"
            xt = torch.as_tensor(X)
            tr = poutine.trace(obj).get_trace(xt)
            sites = [s for s in tr.nodes.values() if s["type"] == "sample"]
            assert sites, "the Pyro model has no sample sites"
        new = set(pyro.get_param_store().keys()) - params_before
        assert not new, f"to_pyro wrote {sorted(new)} to the global param store"

    def test_to_arviz_summary(self, fitted):
        est, _, _ = fitted
        if not self.has_posterior:
            with pytest.raises(NotImplementedError):
                est.to_arviz()
            return
        from probest.viz import import_arviz

        az = import_arviz()
        idata = est.to_arviz()
        post = idata.posterior
        for name, var in post.data_vars.items():
            assert var.dims[:2] == ("chain", "draw"), f"{name} dims {var.dims}"
            assert np.all(np.isfinite(var.values)), f"{name} has non-finite draws"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # r_hat on one chain warns; not our concern here
            summ = az.summary(idata)
        assert len(summ) > 0 and np.all(np.isfinite(np.asarray(summ["mean"], dtype=float)))

    # --- long-work conventions --------------------------------------------------------------
    def test_verbose_progress_fills_history(self, capsys):
        X, y = self.make_data()
        params = self.make_estimator().get_params()
        if "verbose" not in params:
            pytest.skip("estimator has no verbose parameter")
        est = self.fit(self.make_estimator(verbose=2, **self._seed_params(0)), X, y)
        hist = est.history_
        assert isinstance(hist, list) and hist, "history_ must be a non-empty list"
        assert all(isinstance(h, dict) and "time" in h for h in hist)
        times = [h["time"] for h in hist]
        assert times == sorted(times)
        err = capsys.readouterr().err
        assert err, "verbose=2 printed nothing to stderr"

    def test_save_load_round_trip(self, fitted, tmp_path):
        est, X, _ = fitted
        if not self.supports_save:
            pytest.skip("estimator declares supports_save = False")
        import probest

        probest.save(est, tmp_path / "m")
        assert not list((tmp_path / "m").glob("*.pkl"))
        loaded = probest.load(tmp_path / "m")
        _assert_outputs_equal(_outputs(est, X), _outputs(loaded, X), 1e-12, "save/load")

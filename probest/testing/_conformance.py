"""The conformance base class: subclass it once per estimator in a family's tests.

Example::

    from probest.testing import EstimatorConformance

    class TestLogisticConformance(EstimatorConformance):
        def make_estimator(self, **params):
            return WeightedLogisticRegression(alpha=1.0, **params)

        def make_data(self):
            X, y = make_classification(60, 4, random_state=0)
            return X, y

The estimator class declares what it takes and gives (``_spec``, an
:class:`probest.base.EstimatorSpec`): the suite evaluates the declared outputs and draws bad
inputs from the declared input kind (:mod:`probest.testing._kinds`).  Class attributes
switch checks off where a family honestly has no such feature (with the reason in the
subclass): ``has_posterior`` (``to_arviz``), ``has_pyro`` (``to_pyro``), ``supports_save``
(safetensors/JSON persistence), ``skip_bad_inputs`` (``{bad input name: reason}``);
``input_kind`` picks another kind the spec ``also_accepts``; ``fit_kwargs``.
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

from probest.testing._kinds import KINDS, BadInput
from probest.testing._rng import assert_rng_untouched


def spec_of(est):
    """The estimator's declared :class:`probest.base.EstimatorSpec` (required)."""
    spec = getattr(type(est), "_spec", None)
    if spec is None or not getattr(spec, "outputs", ()):
        raise AssertionError(
            f"{type(est).__name__} declares no _spec with outputs: add "
            "`_spec = EstimatorSpec(outputs=(...))` to its class body.")
    return spec


def _outputs(est, X, kind=None) -> dict[str, np.ndarray]:
    """Every declared deterministic output of the estimator, evaluated on X (a clusterer's
    ``fit_predict`` output is its fitted ``labels_``)."""
    spec = spec_of(est)
    kind = kind or KINDS[spec.input_kind]
    if spec.transductive:
        return {"labels_": np.asarray(est.labels_)}
    Xe = kind.eval_input(X)
    return {name: np.asarray(getattr(est, name)(Xe)) for name in spec.outputs}


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
    input_kind : str or None
        None: the input kind the estimator's ``_spec`` declares; else one of the kinds its
        spec ``also_accepts`` (e.g. ``"tabular"`` for a federated estimator given one array).
    skip_bad_inputs : dict
        ``{bad input name: reason}`` for bad inputs of the kind this estimator may accept
        (every entry needs a written reason; unknown names fail).
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
    >>> suite.test_bad_values_rejected()
    >>> suite.test_bad_shapes_rejected()
    """

    has_posterior: bool = True
    has_pyro: bool = True
    supports_save: bool = True
    fit_kwargs: dict[str, Any] = {}
    #: None: the spec's input kind; else one of the kinds the spec ``also_accepts``.
    input_kind: str | None = None
    #: bad inputs (by name, see probest.testing._kinds) this estimator may accept, with why.
    skip_bad_inputs: dict[str, str] = {}
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

    def kind(self):
        """The :class:`~probest.testing._kinds.InputKind` of the data ``make_data`` returns."""
        spec = spec_of(self.make_estimator())
        name = self.input_kind or spec.input_kind
        if name not in (spec.input_kind, *spec.also_accepts):
            raise AssertionError(f"input_kind={name!r} is not declared by the estimator's spec "
                                 f"{spec}.")
        return KINDS[name]

    def outputs(self, est, X) -> dict[str, np.ndarray]:
        return _outputs(est, X, self.kind())

    def _bad(self, group: str, X, y) -> list[BadInput]:
        kind = self.kind()
        for name, why in self.skip_bad_inputs.items():
            if not isinstance(why, str) or len(why.strip()) < 10:
                raise ValueError(f"skip_bad_inputs[{name!r}] needs a written reason.")
        if group == "predict":
            found = kind.bad_predict_inputs(kind.eval_input(X), kind.eval_target(y))
        else:
            found = [b for b in kind.bad_fit_inputs(X, y) if b.group == group]
        unknown = set(self.skip_bad_inputs) - {b.name for b in found} - {
            b.name for b in kind.bad_fit_inputs(X, y)} - {
            b.name for b in kind.bad_predict_inputs(kind.eval_input(X), kind.eval_target(y))}
        if unknown:
            raise ValueError(f"skip_bad_inputs names {sorted(unknown)}, which the {kind.name!r} "
                             "kind does not generate.")
        return [b for b in found if b.name not in self.skip_bad_inputs]

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
        ref = self.outputs(est, X)
        for name, other in (
            ("pickle", pickle.loads(pickle.dumps(est))),
            ("deepcopy", copy.deepcopy(est)),
        ):
            _assert_outputs_equal(ref, self.outputs(other, X), 1e-12, name)
        unfitted = clone(est)
        assert not any(k.endswith("_") and not k.startswith("_") for k in vars(unfitted))

    def test_random_state_reproducible(self):
        X, y = self.make_data()
        if "random_state" not in self.make_estimator().get_params():
            pytest.skip("estimator is deterministic (no random_state parameter)")
        a = self.outputs(self.fit(self.make_estimator(random_state=7), X, y), X)
        b = self.outputs(self.fit(self.make_estimator(random_state=7), X, y), X)
        _assert_outputs_equal(a, b, self.reproducibility_rtol, "same random_state")
        rs = np.random.RandomState(7)
        c = self.outputs(self.fit(self.make_estimator(random_state=rs), X, y), X)
        assert all(np.all(np.isfinite(v)) for v in c.values() if v.dtype.kind == "f")

    def test_fit_leaves_global_rng_untouched(self):
        X, y = self.make_data()
        params = self.make_estimator().get_params()
        for seed in ([None, 3] if "random_state" in params else [None]):
            kw = {"random_state": seed} if "random_state" in params else {}
            with assert_rng_untouched():
                est = self.fit(self.make_estimator(**kw), X, y)
                self.outputs(est, X)

    # --- bad input (drawn from the declared input kind) -----------------------------------
    def _expect_value_error(self, bad: BadInput):
        est = self.make_estimator(**self._seed_params(0))
        try:
            with pytest.raises(ValueError, match=bad.match):
                self.fit(est, bad.X, bad.y)
        except pytest.fail.Exception as exc:
            pytest.fail(f"{self.kind().name} bad input {bad.name!r}: {exc}")

    def test_bad_values_rejected(self):
        """NaN/inf (tabular, a client), empty or non-string text, NaN rewards (events)."""
        X, y = self.make_data()
        for bad in self._bad("values", X, y):
            self._expect_value_error(bad)

    def test_bad_shapes_rejected(self):
        """1-D/3-D X, a short y, an empty client, clients of different widths, ragged event
        columns, missing subject ids."""
        X, y = self.make_data()
        for bad in self._bad("shapes", X, y):
            self._expect_value_error(bad)

    def test_bad_predict_input_rejected(self, fitted):
        """Every declared output refuses a wrong n_features, unknown action ids, non-string
        text... (a clusterer has no output on new data)."""
        est, X, y = fitted
        spec = spec_of(est)
        for bad in self._bad("predict", X, y):
            try:
                if bad.call is not None:
                    with pytest.raises(ValueError, match=bad.match):
                        bad.call(est)
                    continue
                for name in () if spec.transductive else spec.outputs:
                    with pytest.raises(ValueError, match=bad.match):
                        getattr(est, name)(bad.X)
            except pytest.fail.Exception as exc:
                pytest.fail(f"{self.kind().name} bad input {bad.name!r}: {exc}")

    def test_spec_declares_real_methods(self):
        """The declared outputs exist and the declared kinds are known."""
        est = self.make_estimator()
        spec = spec_of(est)
        self.kind()  # raises on an undeclared input_kind
        for name in spec.outputs:
            assert callable(getattr(est, name, None)), (
                f"{type(est).__name__} declares output {name!r} but has no such method")

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

        X, y = self.kind().eval_input(X), self.kind().eval_target(y)
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
        from probest._persist import declared_fitted

        declared = declared_fitted(type(est))
        undeclared = [k for k in vars(est) if k.endswith("_") and not k.startswith("_")
                      and declared is not None and k not in declared]
        assert not undeclared, f"fitted attributes {undeclared} missing from _fitted_attributes"
        probest.save(est, tmp_path / "m")
        assert not list((tmp_path / "m").glob("*.pkl"))
        loaded = probest.load(tmp_path / "m")
        _assert_outputs_equal(self.outputs(est, X), self.outputs(loaded, X), 1e-12, "save/load")

"""Shared machinery for probest estimators.

:class:`ProbestEstimator` is the root of every public estimator (``to_pyro``/``to_arviz``
hooks, saving without pickle).  :class:`TorchEstimator` adds what torch-backed estimators
share: ``device`` ("auto" picks CUDA), ``dtype``, seeding that never touches global RNG
state, a ``verbose`` progress bar that feeds ``history_``, and CPU-safe pickling.

A torch-backed ``fit`` reads::

    def fit(self, X, y=None):
        X = validate_data(self, X, dtype=np.float64)          # numpy, sklearn rules
        with self._fit_context() as ctx:                      # device_, dtype_, seeded torch
            Xt = self._tensor(X)
            with self._progress(self.max_iter, "EM") as prog:
                for it in range(self.max_iter):
                    ...
                    prog.log(objective=lower_bound)           # history_ + progress bar
        return self

Subclasses declare ``device``, ``dtype``, ``random_state`` and ``verbose`` in their own
``__init__`` signature (sklearn's ``get_params`` reads the signature).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator

from probest._persist import PersistMixin
from probest._torch import (
    as_tensor,
    draw_seed,
    move_to,
    resolve_device,
    resolve_dtype,
    seeded,
    to_numpy,
)

#: what ``fit`` takes: a 2-D float array, a list of client arrays (federated), a list of
#: strings, or an event log (a dict of equal-length ``actions``/``rewards``/``subjects``).
INPUT_KINDS = ("tabular", "clients", "text", "events")


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    """What an estimator class takes and gives, declared once in its class body::

        class GaussianMixture(DensityMixin, TorchEstimator):
            _spec = EstimatorSpec(outputs=("predict", "predict_proba", "score_samples"))

    ``input_kind`` is what ``fit`` takes (one of :data:`INPUT_KINDS`); ``also_accepts``
    lists further kinds ``fit`` takes (a federated estimator also takes one 2-D array as a
    single client).  ``outputs`` are the deterministic output methods, called on data of
    the input kind (``predict``, ``predict_proba``, ``score_samples``, ``transform``,
    ``decision_function``, ``predict_log_ratio``, ...).  A clusterer is tabular input that
    declares ``outputs=("fit_predict",)``: a transductive output read from ``labels_``
    after ``fit`` (it has no method that labels new data).  :mod:`probest.testing` reads
    the spec to choose its inputs, bad inputs and the methods it compares.

    Parameters
    ----------
    input_kind : {"tabular", "clients", "text", "events"}, default="tabular"
        What ``fit`` takes (see :data:`INPUT_KINDS`).
    outputs : tuple of str, default=()
        The deterministic output methods (``("fit_predict",)`` for a clusterer).
    also_accepts : tuple of str, default=()
        Further input kinds ``fit`` takes.

    Attributes
    ----------
    transductive : bool
        True for a clusterer (its only output is ``fit_predict``, read from ``labels_``).

    Examples
    --------
    >>> from probest.base import EstimatorSpec
    >>> from probest.mixture import FederatedGaussianMixture
    >>> FederatedGaussianMixture._spec.input_kind, FederatedGaussianMixture._spec.also_accepts
    ('clients', ('tabular',))
    >>> EstimatorSpec(outputs=("fit_predict",)).transductive
    True
    >>> EstimatorSpec(input_kind="images")
    Traceback (most recent call last):
    ...
    ValueError: input kind 'images' is not one of ('tabular', 'clients', 'text', 'events').
    """

    input_kind: str = "tabular"
    outputs: tuple[str, ...] = ()
    also_accepts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind in (self.input_kind, *self.also_accepts):
            if kind not in INPUT_KINDS:
                raise ValueError(f"input kind {kind!r} is not one of {INPUT_KINDS}.")
        if not isinstance(self.outputs, tuple) or not all(
                isinstance(o, str) and o.isidentifier() for o in self.outputs):
            raise ValueError(f"outputs must be a tuple of method names, got {self.outputs!r}.")

    @property
    def transductive(self) -> bool:
        """True for a clusterer: its only output is ``fit_predict`` (``labels_``)."""
        return self.outputs == ("fit_predict",)


class ProbestEstimator(PersistMixin, BaseEstimator):
    """Root class: the ``to_pyro``/``to_arviz`` hooks and non-pickle persistence.

    Every public probest estimator derives from it (torch-backed ones through
    :class:`TorchEstimator`).  The defaults raise ``NotImplementedError`` with a message saying
    what to use instead; ``probest.save``/``probest.load`` work on every subclass whose fitted
    attributes are arrays, tensors, numbers, strings or torch modules.

    Hooks with their defaults (override in the family's class):

    * ``_spec`` — the :class:`EstimatorSpec` (input kind, output methods).
    * ``_constraints`` — ``{param: (constraint, ...)}`` checked by :meth:`_validate_params`
      together with the shared ``device``/``dtype``/``random_state``/``verbose`` checks.
    * :meth:`_default_data` — the data ``probest fit NAME`` uses without ``--data``.
    * :meth:`_extra_metrics` — extra held-out metrics ``probest fit`` prints.

    Attributes
    ----------
    n_features_in_ : int
        Set by ``validate_data`` in every subclass's ``fit`` (tabular input).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.utils.validation import validate_data
    >>> from probest.base import ProbestEstimator
    >>> class Mean(ProbestEstimator):
    ...     def fit(self, X, y=None):
    ...         X = validate_data(self, X)
    ...         self.mean_ = X.mean(axis=0)
    ...         return self
    >>> Mean().fit([[1.0], [3.0]]).mean_
    array([2.])
    >>> Mean().to_arviz()
    Traceback (most recent call last):
    ...
    NotImplementedError: Mean is a point estimate and has no posterior to convert to ArviZ.
    """

    _spec: ClassVar[EstimatorSpec] = EstimatorSpec()
    _constraints: ClassVar[dict[str, tuple]] = {}
    #: fitted attributes that may legitimately hold inf/NaN (a subclass lists them, with the
    #: reason in a comment); every other public fitted attribute is checked after ``fit``.
    _nonfinite_ok: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # every ``fit`` a subclass defines ends with the one finiteness check of the base
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if callable(fit) and not getattr(fit, "_checks_finite", False):
            cls.fit = _finite_fit(fit)

    def _check_fitted_finite(self) -> None:
        """Raise ``ValueError`` when a public fitted attribute (name ending in ``_``: arrays,
        tensors, floats, nested lists/dicts of them, torch module parameters) holds inf or
        NaN, unless the class lists it in ``_nonfinite_ok``."""
        allowed = {n for k in type(self).__mro__ for n in vars(k).get("_nonfinite_ok", ())}
        for key, value in vars(self).items():
            if key.endswith("_") and not key.startswith("_") and key not in allowed:
                if not _all_finite(value):
                    raise ValueError(
                        f"{type(self).__name__}.fit ended with a non-finite {key}: the inputs "
                        "are outside what float64 can fit (extreme scales or degenerate rows). "
                        "Rescale X (and y), e.g. with sklearn's StandardScaler.")

    def _validate_params(self) -> None:
        """Check every parameter against ``_constraints`` and the shared parameters
        (:data:`probest._validation.SHARED_CONSTRAINTS`); raise ``ValueError`` naming the
        parameter, what it must be and what it got."""
        from probest._validation import check_params

        check_params(self, self._constraints)

    def _store_params(self, values: dict[str, Any]) -> None:
        """Store the constructor arguments unchanged: ``self._store_params(locals())`` is
        the whole body of an ``__init__`` whose signature lists the parameters (sklearn's
        ``get_params`` reads the signature, so each class still spells it out)."""
        for name, value in values.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _default_data(self) -> tuple[Any, Any, str, dict[str, Any]]:
        """``(X, y, name, fit_kwargs)`` for ``probest fit NAME`` without ``--data``.

        Default: standardised breast cancer for classifiers, diabetes (standardised ``y``)
        for regressors, iris features (``y=None``) otherwise.
        """
        from sklearn.base import is_classifier, is_regressor
        from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
        from sklearn.preprocessing import StandardScaler

        if is_classifier(self):
            X, y = load_breast_cancer(return_X_y=True)
            name = "breast_cancer"
        elif is_regressor(self):
            X, y = load_diabetes(return_X_y=True)
            y = (y - y.mean()) / y.std()
            name = "diabetes (standardised y)"
        else:
            X, y = load_iris(return_X_y=True)
            y, name = None, "iris features"
        return StandardScaler().fit_transform(X), y, name, {}

    def _extra_metrics(self, X: Any, y: Any = None) -> dict[str, float]:
        """Family-specific ``{metric: value}`` on the held-out split ``probest fit`` prints
        after the standard ones (default: none)."""
        return {}

    def to_pyro(self, *args: Any, **kwargs: Any):
        """The fitted model as a Pyro object (a distribution or a ``PyroModule``)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no Pyro form yet; use its numpy/torch outputs "
            "(predict, score_samples) inside your model instead."
        )

    def to_arviz(self, *args: Any, **kwargs: Any):
        """Posterior draws as ArviZ InferenceData (``(chain, draw)`` leading dims)."""
        raise NotImplementedError(
            f"{type(self).__name__} is a point estimate and has no posterior to convert "
            "to ArviZ."
        )

    # persistence without pickle (probest.save/load): probest._persist.PersistMixin


def _finite_fit(fit: Any) -> Any:
    """``fit`` followed by :meth:`ProbestEstimator._check_fitted_finite`."""

    @functools.wraps(fit)
    def checked_fit(self, *args: Any, **kwargs: Any) -> Any:
        out = fit(self, *args, **kwargs)
        self._check_fitted_finite()
        return out

    checked_fit._checks_finite = True
    return checked_fit


def _all_finite(value: Any, depth: int = 0) -> bool:
    """False when ``value`` (a float, array, tensor, module, or a list/tuple/dict of them)
    holds inf or NaN; other values (ints, strings, fitted child estimators) count as finite."""
    if isinstance(value, (float, np.floating, complex, np.complexfloating)):
        return bool(np.isfinite(value))
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, torch.Tensor):
        return not (value.is_floating_point() or value.is_complex()) or bool(
            torch.isfinite(value.detach()).all())
    if isinstance(value, torch.nn.Module):
        return all(_all_finite(p) for p in value.parameters())
    if depth < 4 and isinstance(value, (list, tuple)):
        return all(_all_finite(v, depth + 1) for v in value)
    if depth < 4 and isinstance(value, dict):
        return all(_all_finite(v, depth + 1) for v in value.values())
    return True


@dataclasses.dataclass
class FitContext:
    """What ``_fit_context`` hands the engine: the seed and generators derived from it.

    Parameters
    ----------
    seed : int
        The seed drawn from ``random_state``.
    generator : torch.Generator
        Torch generator on the estimator's device, seeded with ``seed``.
    rng : numpy.random.Generator
        Numpy generator for host-side randomness, seeded with ``seed``.
    device : torch.device
        The resolved device (``device_``).
    dtype : torch.dtype
        The resolved dtype (``dtype_``).

    Attributes
    ----------
    seed, generator, rng, device, dtype
        The parameters.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from probest.base import FitContext
    >>> ctx = FitContext(seed=0, generator=torch.Generator().manual_seed(0),
    ...                  rng=np.random.default_rng(0), device=torch.device("cpu"),
    ...                  dtype=torch.float64)
    >>> ctx.device, ctx.dtype
    (device(type='cpu'), torch.float64)
    """

    seed: int
    generator: torch.Generator  # torch generator on the estimator's device
    rng: np.random.Generator  # numpy generator for host-side randomness
    device: torch.device
    dtype: torch.dtype

    def restart(self, k: int) -> FitContext:
        """The context of restart ``k`` of a multi-start fit: ``k = 0`` is this one, every
        other ``k`` a fixed seed derived from ``seed`` with fresh generators."""
        if k == 0:
            return self
        seed = (self.seed + 7919 * int(k)) % (2**63 - 1)
        return dataclasses.replace(
            self, seed=seed, rng=np.random.default_rng(seed),
            generator=torch.Generator(device=self.generator.device).manual_seed(seed))


class Progress:
    """A ``verbose``-aware progress bar that appends one dict per step to ``history_``.

    ``log(**values)`` records ``{"iter", "time", **values}`` (tensors become floats: one
    host sync per logged step; log every k steps in GPU loops).  ``verbose=1`` shows a tqdm
    bar with the latest values, ``verbose=2`` also prints one line per step.

    Parameters
    ----------
    history : list
        The list to append to (an estimator's ``history_``).
    total : int or None
        Expected number of steps (for the bar).
    desc : str
        Label of the bar.
    verbose : int
        0 silent, 1 a progress bar, 2 a bar and one printed line per step.

    Attributes
    ----------
    history : list of dict
        One record per logged step.
    verbose : int
        The verbosity.
    n : int
        Number of steps logged so far.

    Examples
    --------
    >>> from probest.base import Progress
    >>> history = []
    >>> with Progress(history, total=2, desc="demo", verbose=0) as prog:
    ...     _ = prog.log(objective=1.5)
    ...     _ = prog.log(objective=1.25)
    >>> [(h["iter"], h["objective"]) for h in history]
    [(1, 1.5), (2, 1.25)]
    """

    def __init__(self, history: list, total: int | None, desc: str, verbose: int):
        self.history = history
        self.verbose = int(verbose or 0)
        self.n = 0
        self._t0 = time.perf_counter()
        self._bar = None
        if self.verbose >= 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)

    def log(self, step: int | None = None, **values: Any) -> dict[str, Any]:
        self.n += 1
        record: dict[str, Any] = {"iter": self.n if step is None else int(step)}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.detach().cpu().item() if v.numel() == 1 else to_numpy(v)
            elif isinstance(v, np.generic):
                v = v.item()
            record[k] = v
        record["time"] = time.perf_counter() - self._t0
        self.history.append(record)
        if self._bar is not None:
            shown = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k not in
                     ("iter", "time")}
            self._bar.set_postfix({k: f"{v:.5g}" for k, v in shown.items()}, refresh=False)
            self._bar.update(1)
            if self.verbose >= 2:
                self._bar.write(
                    f"[{record['iter']}] " + " ".join(f"{k}={v:.6g}" for k, v in shown.items())
                )
        return record

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class TorchEstimator(ProbestEstimator):
    """Base for torch-backed estimators (device, dtype, seeding, progress, pickling).

    Expected constructor parameters (declared by the subclass): ``device`` ("auto",
    "cpu", "cuda", "cuda:N"), ``dtype`` ("float32"/"float64"), ``random_state`` and
    ``verbose``.  Missing ones fall back to "cpu", "float64", None and 0.

    Attributes
    ----------
    device_ : torch.device
        Device the fit ran on (set by ``_fit_context``).
    dtype_ : torch.dtype
        Floating dtype of the fitted tensors.
    history_ : list of dict
        One record per logged step (``iter``, objective values, ``time``), set by ``_progress``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.utils.validation import validate_data
    >>> from probest.base import TorchEstimator
    >>> class Mean(TorchEstimator):
    ...     def __init__(self, max_iter=2, device="cpu", dtype="float64", random_state=None,
    ...                  verbose=0):
    ...         self.max_iter, self.device, self.dtype = max_iter, device, dtype
    ...         self.random_state, self.verbose = random_state, verbose
    ...     def fit(self, X, y=None):
    ...         X = validate_data(self, X)
    ...         with self._fit_context():
    ...             Xt = self._tensor(X)
    ...             with self._progress(self.max_iter, "mean") as prog:
    ...                 for _ in range(self.max_iter):
    ...                     self.mean_ = Xt.mean(0)
    ...                     prog.log(objective=Xt.var(0).sum())
    ...         return self
    >>> est = Mean().fit(np.array([[1.0], [3.0]]))
    >>> est.device_, est.dtype_, len(est.history_), est.mean_.tolist()
    (device(type='cpu'), torch.float64, 2, [2.0])
    """

    #: ``history_`` records what each step logged, a -inf or NaN objective included (the
    #: training loop reports and stops on a non-finite loss; the record stays honest).
    _nonfinite_ok: ClassVar[tuple[str, ...]] = ("history_",)

    # --- fit scaffolding -------------------------------------------------------------
    @contextlib.contextmanager
    def _fit_context(self) -> Iterator[FitContext]:
        """Resolve ``device_``/``dtype_``, seed torch inside ``fork_rng``, keep Pyro local.

        Global torch/numpy/Python RNG states are the same after the block as before it,
        and Pyro's global param store is not used (``module_local_params=True``).  The
        parameters are validated first (:meth:`ProbestEstimator._validate_params`).
        """
        self._validate_params()
        self.device_ = resolve_device(getattr(self, "device", "cpu"))
        self.dtype_ = resolve_dtype(getattr(self, "dtype", "float64"))
        seed = draw_seed(getattr(self, "random_state", None))
        with seeded(seed, self.device_) as gen, _pyro_local_params():
            yield FitContext(
                seed=seed,
                generator=gen,
                rng=np.random.default_rng(seed),
                device=self.device_,
                dtype=self.dtype_,
            )

    def _tensor(self, a: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``a`` as a new tensor on ``device_`` with ``dtype_`` (or ``dtype``)."""
        return as_tensor(a, device=self.device_, dtype=dtype or self.dtype_)

    def _progress(self, total: int | None, desc: str | None = None) -> Progress:
        """Start a fresh ``history_`` and return the progress logger feeding it."""
        self.history_ = []
        return Progress(self.history_, total, desc or type(self).__name__, getattr(self, "verbose", 0))

    # --- device moves and pickling -------------------------------------------------
    def to(self, device: str | torch.device) -> TorchEstimator:
        """Move every fitted tensor/module to ``device`` (in place) and return self."""
        dev = resolve_device(device)
        for k, v in list(vars(self).items()):
            if k.endswith("_") or k.startswith("_"):
                setattr(self, k, move_to(v, dev))
        if hasattr(self, "device_"):
            self.device_ = dev
        return self

    def __getstate__(self) -> dict[str, Any]:
        # Like skorch: a model fitted on a GPU pickles with CPU tensors, so it unpickles on
        # any machine; call ``est.to("cuda")`` afterwards to move it back.
        state = super().__getstate__()
        state = {k: move_to(v, "cpu") for k, v in state.items()}
        if "device_" in state:
            state["device_"] = torch.device("cpu")
        return state


@contextlib.contextmanager
def _pyro_local_params() -> Iterator[None]:
    """``pyro.settings.context(module_local_params=True)``: PyroModules fitted here keep
    their parameters on the module, so the global param store stays empty and two
    estimators never share parameters."""
    import pyro

    with pyro.settings.context(module_local_params=True):
        yield

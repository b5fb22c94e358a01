"""Persistence without pickle: what an estimator declares, and the one mechanism that uses it.

Every public estimator declares its fitted attributes once, right before ``__init__``::

    class GaussianMixture(DensityMixin, TorchEstimator):
        _fitted_attributes = ("weights_", Fitted("means_", ndim=2, finite=True), ...)

and :meth:`PersistMixin._get_fitted_state` saves each of them by what it holds:

* data (arrays, tensors, numbers, strings, lists/dicts of those) -> safetensors + JSON;
* a ``torch.nn.Module`` -> its state dict; loading builds fresh modules with the family's
  :meth:`~PersistMixin._rebuild_modules` hook and loads the state dicts into them;
* a fitted probest estimator (a *sub-estimator*, e.g. the base of a covariate-shift model)
  -> saved recursively, its tensors under the prefix ``"<name>/"``;
* an attribute declared with :func:`reference` (a large frozen base model) -> only its
  source (a name or path) and the sha256 of its content; loading re-resolves it with
  :meth:`~PersistMixin._resolve_reference` and refuses it if the hash differs.

Families with engine objects that are none of these convert them with the small hook pair
``_export_fitted`` / ``_import_fitted``; attributes derived from others are listed in
``_unsaved_attributes`` and recomputed by ``_restore_unsaved``.

Trust model: a saved model is data.  Loading resolves class names only against the
registry of probest estimators, sets only declared attributes, names dtypes from a
whitelist, and executes nothing named in the file (see ``probest._io.load``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import math
import os
import pathlib
import re
from typing import Any, ClassVar

import numpy as np
import torch

from probest._codec import _is_json_scalar, join_state, split_state

#: sub-estimators nest at most this deep (a model holding itself is refused, not followed).
MAX_CHILD_DEPTH = 4
_FITTED_NAME = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*_")
#: fitted attributes any estimator may have (set by sklearn's validate_data and the torch base).
COMMON_FITTED = ("n_features_in_", "feature_names_in_", "device_", "dtype_", "history_")


@dataclasses.dataclass(frozen=True)
class Fitted:
    """A fitted attribute with checks applied on load.

    ``ndim``/``shape``: the array's rank and shape (an entry is an int, ``None`` for any,
    or the name of an int parameter/fitted attribute, e.g. ``"n_features_in_"``);
    ``finite``: every entry finite.  Checks run only when the value is an array/tensor.
    """

    name: str
    ndim: int | None = None
    shape: tuple[int | str | None, ...] | None = None
    finite: bool = False


@dataclasses.dataclass(frozen=True)
class SavedByReference:
    """A fitted attribute saved as ``(source, sha256)`` instead of its weights.

    ``source`` names the estimator parameter whose value (a model id or path) says where
    the part comes from; see :func:`reference`.
    """

    name: str
    source: str


def reference(name: str, *, source: str) -> SavedByReference:
    """Declare fitted attribute ``name`` as saved by reference to parameter ``source``.

    Saving records ``getattr(est, source)`` and the sha256 of the attribute's content
    (:func:`content_hash`); loading calls ``est._resolve_reference(name, source_value)``
    and raises ValueError when the resolved content hashes differently.
    """
    return SavedByReference(name, source)


def declared_fitted(cls: type) -> dict[str, Any] | None:
    """``{name: declaration}`` over the MRO plus :data:`COMMON_FITTED`; None if undeclared."""
    decls = [c.__dict__["_fitted_attributes"] for c in reversed(cls.__mro__)
             if c.__dict__.get("_fitted_attributes") is not None]
    if not decls:
        return None
    out: dict[str, Any] = {n: n for n in COMMON_FITTED}
    for decl in decls:
        for d in decl:
            out[d if isinstance(d, str) else d.name] = d
    return out


def content_hash(value: Any) -> str:
    """sha256 over a module's state dict, a tensor/array, a dict of those, or a file/folder."""
    h = hashlib.sha256()
    if isinstance(value, (str, os.PathLike)):
        root = pathlib.Path(value)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for p in files:
            h.update(str(p.relative_to(root) if root.is_dir() else p.name).encode() + b"\0")
            h.update(p.read_bytes())
        return h.hexdigest()
    if isinstance(value, torch.nn.Module):
        value = value.state_dict()
    items = sorted(value.items()) if isinstance(value, dict) else [("", value)]
    for k, t in items:
        t = torch.as_tensor(t).detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


_REGISTERED: dict[str, type] = {}


def register_estimator(cls: type) -> type:
    """Make ``cls`` loadable although it is not in :func:`probest.all_estimators` (e.g. a
    toy estimator of a test suite).  Only code can extend the registry, never a file."""
    if not (isinstance(cls, type) and issubclass(cls, PersistMixin)
            and declared_fitted(cls) is not None):
        raise TypeError("only probest estimators that declare _fitted_attributes can be registered.")
    _REGISTERED[class_name(cls)] = cls
    return cls


def estimator_registry() -> dict[str, type]:
    """``{"module.QualName": class}`` of every public probest estimator (what load resolves)."""
    import probest

    out = {class_name(c): c for _, c in probest.all_estimators() if issubclass(c, PersistMixin)}
    return {**_REGISTERED, **out}


def class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


#: dtypes an array-valued parameter (``means_init``, ...) may have in a model file
_ARRAY_DTYPES = ("float64", "float32", "int64", "int32", "bool")


def encode_param(v: Any) -> Any:
    """One constructor parameter as JSON: scalars and flat lists as they are, numeric arrays
    as ``{"__ndarray__": nested list, "dtype"}`` (JSON writes each float64 with a repr that
    reads back exactly; :func:`construct` decodes it without running any code), anything
    else as ``{"__repr__": ...}``, which :func:`construct` refuses."""
    if _is_json_scalar(v) and not (isinstance(v, float) and not math.isfinite(v)):
        return v
    if isinstance(v, (list, tuple)) and all(_is_json_scalar(x) for x in v):
        return list(v)
    if (isinstance(v, np.ndarray) and str(v.dtype) in _ARRAY_DTYPES
            and (v.dtype.kind != "f" or bool(np.isfinite(v).all()))):
        return {"__ndarray__": v.tolist(), "dtype": str(v.dtype)}
    return {"__repr__": repr(v)}


def params_json(est) -> dict[str, Any]:
    return {k: encode_param(v) for k, v in est.get_params(deep=False).items()}


def _decode_param(k: str, v: Any) -> Any:
    """An array parameter written by :func:`params_json` back to an ndarray (data only)."""
    if not (isinstance(v, dict) and set(v) == {"__ndarray__", "dtype"}):
        return v
    if v["dtype"] not in _ARRAY_DTYPES:
        raise ValueError(f"parameter {k!r}: array dtype {v['dtype']!r} is not one of "
                         f"{_ARRAY_DTYPES}.")

    def numbers(x):
        if isinstance(x, list):
            return all(numbers(y) for y in x)
        return (isinstance(x, (int, float)) and not (isinstance(x, float)
                                                      and not math.isfinite(x)))

    if not numbers(v["__ndarray__"]):
        raise ValueError(f"parameter {k!r}: an array parameter holds only finite numbers.")
    try:
        return np.asarray(v["__ndarray__"], dtype=v["dtype"])
    except ValueError as e:  # ragged nesting
        raise ValueError(f"parameter {k!r}: not a rectangular array ({e}).") from e


def _check_param(cls: type, k: str, v: Any) -> None:
    def ok(x):
        return _is_json_scalar(x) and not (isinstance(x, float) and not math.isfinite(x))

    if isinstance(v, dict) and set(v) == {"__repr__"}:
        raise ValueError(f"parameter {k}={v['__repr__']} was not JSON-serialisable; re-create the "
                         "estimator in Python and call _set_fitted_state instead.")
    if not (ok(v) or (isinstance(v, list) and all(ok(x) for x in v))):
        raise ValueError(f"parameter {k!r} of {cls.__name__} is not a JSON scalar or list.")


def construct(name: Any, params: Any, registry: dict[str, type] | None = None):
    """``cls(**params)`` for a registered estimator class, after checking every parameter.

    Nothing is called before the class is known to be a registered probest estimator and
    every parameter is one of its constructor's, with a plain JSON value.
    """
    registry = estimator_registry() if registry is None else registry
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"refusing to load class {name!r}: not a probest estimator.")
    cls = registry[name]
    if declared_fitted(cls) is None:
        raise ValueError(f"refusing to load {name}: it declares no _fitted_attributes.")
    if not isinstance(params, dict):
        raise ValueError("params is not a JSON object.")
    sig = inspect.signature(cls.__init__).parameters
    allowed = {n for n, p in sig.items() if n != "self" and p.kind in
               (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"{cls.__name__} has no parameters {unknown}.")
    params = {k: _decode_param(k, v) for k, v in params.items()}
    for k, v in params.items():
        if not isinstance(v, np.ndarray):
            _check_param(cls, k, v)
    return cls(**params)


class PersistMixin:
    """Saving and loading the fitted state (used by :func:`probest.save` / :func:`probest.load`)."""

    #: fitted attribute names (``str``, :class:`Fitted` or :func:`reference`); None = undeclared.
    _fitted_attributes: ClassVar[tuple[Any, ...] | None] = None
    #: declared fitted attributes not written to the file; ``_restore_unsaved`` recomputes them.
    _unsaved_attributes: ClassVar[tuple[str, ...]] = ()

    # -- hooks a family may implement ------------------------------------------------------
    def _rebuild_modules(self) -> dict[str, torch.nn.Module]:
        """Fresh (untrained) modules for each fitted module attribute, built from the
        parameters and the plain fitted attributes already restored; their state dicts are
        loaded afterwards."""
        raise NotImplementedError(
            f"{type(self).__name__} holds torch modules: define _rebuild_modules() to load it."
        )

    def _export_fitted(self, name: str, value: Any) -> Any:
        """The saved form of fitted attribute ``name`` (default: the value itself)."""
        return value

    def _import_fitted(self, name: str, value: Any) -> Any:
        """Inverse of :meth:`_export_fitted`, called after the plain attributes are set."""
        return value

    def _restore_unsaved(self, name: str) -> Any:
        """Value of an ``_unsaved_attributes`` entry after loading (default None)."""
        return None

    def _resolve_reference(self, name: str, source: str) -> Any:
        """The part saved by reference as ``name`` (e.g. load a frozen model from ``source``)."""
        raise NotImplementedError(
            f"{type(self).__name__} saves {name!r} by reference: define _resolve_reference().")

    # -- the mechanism ---------------------------------------------------------------------
    def _fitted_items(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _get_fitted_state(self, _depth: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Fitted state split into tensors (safetensors) and JSON metadata."""
        from sklearn.base import BaseEstimator

        owner = type(self).__name__
        if _depth > MAX_CHILD_DEPTH:
            raise TypeError(f"{owner}: sub-estimators nest deeper than {MAX_CHILD_DEPTH} levels.")
        spec = declared_fitted(type(self))
        fitted = self._fitted_items()
        if spec is not None and set(fitted) - set(spec):
            raise TypeError(f"{owner}: fitted attributes {sorted(set(fitted) - set(spec))} are "
                            "not declared in _fitted_attributes.")
        tensors: dict[str, torch.Tensor] = {}
        plain: dict[str, Any] = {}
        special: dict[str, Any] = {}
        modules: list[str] = []
        for name in sorted(fitted):
            if name in self._unsaved_attributes:
                continue
            decl = spec.get(name) if spec else None
            if isinstance(decl, SavedByReference):
                src = getattr(self, decl.source)
                special[name] = {"__reference__": {"source": os.fspath(src),
                                                   "sha256": content_hash(fitted[name])}}
                continue
            value = self._export_fitted(name, fitted[name])
            if isinstance(value, torch.nn.Module):
                modules.append(name)
                tensors.update({f"{name}.{k}": v.detach().cpu().contiguous()
                                for k, v in value.state_dict().items()})
            elif isinstance(value, BaseEstimator):
                if not (isinstance(value, PersistMixin)
                        and class_name(type(value)) in estimator_registry()):
                    raise TypeError(f"{owner}: only built-in probest estimators can be saved as "
                                    f"sub-estimators without pickle, not {type(value).__name__} "
                                    f"({name}); pickle the estimator instead.")
                sub_t, sub_m = value._get_fitted_state(_depth + 1)
                tensors.update({f"{name}/{k}": v for k, v in sub_t.items()})
                special[name] = {"__estimator__": {"class": class_name(type(value)),
                                                   "params": params_json(value), "fitted": sub_m}}
            else:
                plain[name] = value
        plain_t, meta = split_state(plain, owner=owner)
        tensors.update(plain_t)
        meta.update(special)
        if modules:
            meta["__modules__"] = modules
        return tensors, meta

    def _set_fitted_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                          _depth: int = 0) -> None:
        """Restore what :meth:`_get_fitted_state` wrote; ValueError on anything else."""
        if _depth > MAX_CHILD_DEPTH:
            raise ValueError(f"sub-estimators nest deeper than {MAX_CHILD_DEPTH} levels.")
        if not isinstance(meta, dict) or not isinstance(tensors, dict):
            raise ValueError("fitted state is not a JSON object.")
        spec = declared_fitted(type(self))
        meta = dict(meta)
        modules = meta.pop("__modules__", [])
        if not (isinstance(modules, list) and all(isinstance(m, str) for m in modules)
                and len(set(modules)) == len(modules)):
            raise ValueError("__modules__ is not a list of distinct names.")
        for name in [*meta, *modules]:
            if not _FITTED_NAME.fullmatch(name) or name in self._unsaved_attributes or \
                    (spec is not None and name not in spec) or (name in meta and name in modules):
                raise ValueError(f"{type(self).__name__} has no saved fitted attribute {name!r}.")
        refs_declared = {n for n, d in (spec or {}).items() if isinstance(d, SavedByReference)}
        inline = sorted(n for n in refs_declared & set(meta) if not _special(meta[n]))
        if inline or refs_declared & set(modules):
            raise ValueError(f"{inline or sorted(refs_declared & set(modules))} must be saved by "
                             "reference (source + sha256), not inline.")
        used: set[str] = set()
        plain = {k: v for k, v in meta.items() if not _special(v)}
        values = join_state(tensors, plain, used)
        refs = {}
        for name, v in meta.items():
            if not _special(v):
                continue
            if "__estimator__" in v:
                values[name] = self._load_child(name, v["__estimator__"], tensors, used, _depth)
            else:
                if not isinstance(spec and spec.get(name), SavedByReference):
                    raise ValueError(f"{name!r} is not declared as saved by reference.")
                refs[name] = v["__reference__"]
        for k, v in values.items():
            setattr(self, k, v)
        for k in plain:
            setattr(self, k, self._import_fitted(k, values[k]))
        if "device_" in vars(self):  # loaded tensors live on the CPU; est.to("cuda") moves them
            self.device_ = torch.device("cpu")
        for name in self._unsaved_attributes:
            setattr(self, name, self._restore_unsaved(name))
        if modules:
            self._load_modules(modules, tensors, used)
        for name, ref in refs.items():
            setattr(self, name, self._load_reference(name, ref, spec[name]))
        extra = sorted(set(tensors) - used)
        if extra:
            raise ValueError(f"unexpected tensors {extra[:5]} in the safetensors file.")
        if spec is not None:
            _check_declared(self, spec)

    def _load_child(self, name, doc, tensors, used, depth):
        if not (isinstance(doc, dict) and set(doc) == {"class", "params", "fitted"}):
            raise ValueError(f"sub-estimator {name!r} is malformed.")
        child = construct(doc["class"], doc["params"])
        prefix = f"{name}/"
        sub = {k[len(prefix):]: t for k, t in tensors.items() if k.startswith(prefix)}
        child._set_fitted_state(sub, doc["fitted"], depth + 1)
        used.update(prefix + k for k in sub)
        return child

    def _load_modules(self, modules, tensors, used):
        _probe_module_shapes(self, modules, tensors)
        built = self._rebuild_modules()
        for name in modules:
            if not isinstance(built, dict) or not isinstance(built.get(name), torch.nn.Module):
                raise ValueError(f"{type(self).__name__} has no module attribute {name!r}.")
            module = built[name]
            sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            used.update(f"{name}.{k}" for k in sd)
            fresh = module.state_dict()
            for k, v in sd.items():
                if k in fresh and v.is_floating_point() != fresh[k].is_floating_point():
                    raise ValueError(f"{name}.{k} has dtype {v.dtype}, expected a "
                                     f"{'floating' if fresh[k].is_floating_point() else 'integer'}"
                                     " tensor.")
            try:
                module.load_state_dict(sd, assign=True)  # keeps the saved dtypes exactly
            except RuntimeError as e:
                raise ValueError(f"state of module {name!r} does not fit: {e}") from None
            setattr(self, name, module.eval())

    def _load_reference(self, name: str, ref: Any, decl: SavedByReference) -> Any:
        if not (isinstance(ref, dict) and set(ref) == {"source", "sha256"}
                and all(isinstance(x, str) for x in ref.values())):
            raise ValueError(f"reference {name!r} is malformed.")
        if ref["source"] != os.fspath(getattr(self, decl.source)):
            raise ValueError(f"reference {name!r} names {ref['source']!r} but parameter "
                             f"{decl.source}={getattr(self, decl.source)!r}.")
        part = self._resolve_reference(name, ref["source"])
        got = content_hash(part)
        if got != ref["sha256"]:
            raise ValueError(f"{name!r} resolved from {ref['source']!r} has sha256 {got[:12]}..., "
                             f"but the model was saved with {ref['sha256'][:12]}...: the referenced "
                             "part changed since saving.")
        return part


def _probe_module_shapes(est, modules, tensors) -> None:
    """Build the modules on the ``meta`` device first (no memory) and compare their shapes
    with the saved ones, so a tampered size (e.g. ``n_features_in_ = 10**9``) is refused
    before anything large is allocated.  Families whose rebuild cannot run on ``meta`` skip it."""
    try:
        with torch.device("meta"):
            probe = est._rebuild_modules()
        shapes = {f"{n}.{k}": tuple(v.shape) for n in modules
                  for k, v in probe[n].state_dict().items()}
    except Exception:  # the real rebuild below reports its own errors
        return
    for key, shape in shapes.items():
        if key in tensors and tuple(tensors[key].shape) != shape:
            raise ValueError(f"{key} has shape {tuple(tensors[key].shape)}, but the saved "
                             f"parameters build {shape}.")


def _special(v: Any) -> bool:
    return isinstance(v, dict) and len(v) == 1 and next(iter(v)) in ("__estimator__",
                                                                      "__reference__")


def _check_declared(est, spec: dict[str, Any]) -> None:
    """Shape/rank/finiteness checks of the :class:`Fitted` declarations."""
    for name, d in spec.items():
        if not isinstance(d, Fitted) or name not in vars(est):
            continue
        v = vars(est)[name]
        if not isinstance(v, (np.ndarray, torch.Tensor)) or (isinstance(v, np.ndarray)
                                                             and v.dtype.kind not in "biufc"):
            continue
        shape = tuple(v.shape)
        if d.ndim is not None and len(shape) != d.ndim:
            raise ValueError(f"{name} has {len(shape)} dimensions, expected {d.ndim}.")
        if d.shape is not None:
            want = tuple(getattr(est, s, None) if isinstance(s, str) else s for s in d.shape)
            if len(want) != len(shape) or any(w is not None and w != s
                                              for w, s in zip(want, shape)):
                raise ValueError(f"{name} has shape {shape}, expected {want}.")
        if d.finite and not bool(torch.isfinite(torch.as_tensor(v)).all()):
            raise ValueError(f"{name} has non-finite entries.")

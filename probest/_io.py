"""Save and load fitted estimators without pickle: safetensors for arrays + JSON for the rest.

A saved model is a folder with ``model.json`` (class, params, fitted metadata, probest
version) and ``model.safetensors`` (every fitted array/tensor).  Loading imports the class
by name only if it lives inside ``probest`` — a model file cannot run arbitrary code.
"""

from __future__ import annotations

import importlib
import json
import pathlib
from typing import Any

import numpy as np
import torch

_ARRAY = "__tensor__"


def _is_json_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _is_json_key(k: Any) -> bool:
    if isinstance(k, tuple):
        return all(_is_json_scalar(x) or isinstance(x, np.generic) for x in k)
    return _is_json_scalar(k) or isinstance(k, np.generic)


def _enc_key(k: Any) -> Any:
    if isinstance(k, tuple):
        return {"__tuple__": [x.item() if isinstance(x, np.generic) else x for x in k]}
    return k.item() if isinstance(k, np.generic) else k


def split_state(state: dict[str, Any], owner: str = "estimator") -> tuple[dict, dict]:
    """Split ``{name: value}`` into (tensors for safetensors, JSON-able metadata)."""
    tensors: dict[str, torch.Tensor] = {}

    def enc(key: str, v: Any) -> Any:
        if isinstance(v, torch.Tensor) or (isinstance(v, np.ndarray) and v.dtype.kind in "biuf"):
            t = v.detach().cpu() if isinstance(v, torch.Tensor) else torch.tensor(v)
            tensors[key] = t.contiguous()
            return {_ARRAY: key, "numpy": isinstance(v, np.ndarray)}
        if isinstance(v, np.ndarray) and v.dtype.kind in "UO":  # e.g. string class labels
            return {"__strarray__": [str(x) for x in v.tolist()], "dtype": v.dtype.kind}
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, torch.device):
            return {"__device__": str(v)}
        if isinstance(v, torch.dtype):
            return {"__dtype__": str(v).removeprefix("torch.")}
        if _is_json_scalar(v):
            if isinstance(v, float) and not np.isfinite(v):
                return {"__float__": repr(v)}
            return v
        if isinstance(v, (list, tuple)):
            return [enc(f"{key}.{i}", x) for i, x in enumerate(v)]
        if isinstance(v, dict) and all(isinstance(k, str) for k in v):
            return {"__dict__": {k: enc(f"{key}.{k}", x) for k, x in v.items()}}
        if isinstance(v, dict) and all(_is_json_key(k) for k in v):
            # e.g. {(sigma, lam): score}: keys kept as JSON scalars or tuples of scalars
            return {"__items__": [[_enc_key(k), enc(f"{key}.{i}", x)]
                                  for i, (k, x) in enumerate(v.items())]}
        raise TypeError(
            f"{owner} cannot be saved without pickle: fitted attribute {key!r} is a "
            f"{type(v).__name__}. The estimator must override _get_fitted_state."
        )

    meta = {k: enc(k, v) for k, v in state.items()}
    return tensors, meta


def join_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_state`."""

    def dec(v: Any) -> Any:
        if isinstance(v, dict):
            if _ARRAY in v:
                t = tensors[v[_ARRAY]]
                return t.numpy() if v.get("numpy") else t
            if "__strarray__" in v:
                return np.asarray(v["__strarray__"], dtype=object if v["dtype"] == "O" else None)
            if "__device__" in v:
                return torch.device(v["__device__"])
            if "__dtype__" in v:
                return getattr(torch, v["__dtype__"])
            if "__float__" in v:
                return float(v["__float__"])
            if "__dict__" in v:
                return {k: dec(x) for k, x in v["__dict__"].items()}
            if "__items__" in v:
                return {(tuple(k["__tuple__"]) if isinstance(k, dict) else k): dec(x)
                        for k, x in v["__items__"]}
        if isinstance(v, list):
            return [dec(x) for x in v]
        return v

    return {k: dec(v) for k, v in meta.items()}


def _params_json(est) -> dict[str, Any]:
    out = {}
    for k, v in est.get_params(deep=False).items():
        if _is_json_scalar(v) and not (isinstance(v, float) and not np.isfinite(v)):
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(_is_json_scalar(x) for x in v):
            out[k] = list(v)
        else:
            out[k] = {"__repr__": repr(v)}
    return out


def save(est, path: str | pathlib.Path) -> pathlib.Path:
    """Save fitted ``est`` to folder ``path`` (``model.json`` + ``model.safetensors``).

    Arrays and torch state go to ``model.safetensors``; the class, the constructor parameters
    and the other fitted attributes to ``model.json``.  Nothing is pickled.

    Parameters
    ----------
    est : ProbestEstimator
        A fitted probest estimator.
    path : str or pathlib.Path
        Folder to write (created if missing; existing model files are overwritten).

    Returns
    -------
    pathlib.Path
        ``path``.

    See Also
    --------
    load : Read it back.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import probest
    >>> from probest.shift import WeightedLinearRegression
    >>> X = np.random.default_rng(0).normal(size=(20, 2))
    >>> est = WeightedLinearRegression().fit(X, X @ [1.0, -2.0])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sorted(p.name for p in probest.save(est, folder).iterdir())
    ['model.json', 'model.safetensors']
    """
    from safetensors.torch import save_file

    import probest

    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors, meta = est._get_fitted_state()
    doc = {
        "class": f"{type(est).__module__}.{type(est).__qualname__}",
        "probest_version": probest.__version__,
        "params": _params_json(est),
        "fitted": meta,
    }
    (path / "model.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
    save_file(tensors, str(path / "model.safetensors"))
    return path


def load(path: str | pathlib.Path):
    """Load an estimator saved by :func:`save`.

    Only probest classes are resolved (a file naming any other class is refused with
    ``ValueError``) and nothing named in the file is executed.

    Parameters
    ----------
    path : str or pathlib.Path
        Folder holding ``model.json`` and ``model.safetensors``.

    Returns
    -------
    ProbestEstimator
        The fitted estimator, its tensors on the CPU (``est.to("cuda")`` moves them).

    See Also
    --------
    save : Write a fitted estimator.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> import probest
    >>> from probest.shift import WeightedLinearRegression
    >>> X = np.random.default_rng(0).normal(size=(20, 2))
    >>> est = WeightedLinearRegression().fit(X, X @ [1.0, -2.0])
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     back = probest.load(probest.save(est, folder))
    >>> bool(np.allclose(back.predict(X), est.predict(X)))
    True
    """
    from safetensors.torch import load_file

    path = pathlib.Path(path)
    doc = json.loads((path / "model.json").read_text())
    modname, _, clsname = doc["class"].rpartition(".")
    if not (modname == "probest" or modname.startswith("probest.")):
        raise ValueError(f"refusing to load class {doc['class']!r}: not a probest estimator.")
    cls = getattr(importlib.import_module(modname), clsname)
    params = {}
    for k, v in doc["params"].items():
        if isinstance(v, dict) and "__repr__" in v:
            raise ValueError(
                f"parameter {k}={v['__repr__']} was not JSON-serialisable; re-create the "
                "estimator in Python and call _set_fitted_state instead."
            )
        params[k] = v
    est = cls(**params)
    tensors = load_file(str(path / "model.safetensors"))
    est._set_fitted_state(tensors, doc["fitted"])
    return est

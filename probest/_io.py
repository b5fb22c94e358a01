"""Save and load fitted estimators without pickle: safetensors for arrays + JSON for the rest.

A saved model is a folder with ``model.json`` (class, params, fitted metadata, probest
version) and ``model.safetensors`` (every fitted array/tensor).  A saved model is *data*:
:func:`load` resolves the class name only against the registry of probest estimators
(:func:`probest.all_estimators`), checks every parameter and fitted attribute against the
class's declarations, and executes nothing named in the file.  Every defect of the files
(missing, truncated, malformed, tampered) raises one :class:`ValueError` naming the file.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from probest._codec import check_depth, join_state, split_state
from probest._persist import class_name, construct, estimator_registry, params_json
from probest.base import ProbestEstimator

__all__ = ["join_state", "load", "save", "split_state"]

#: model.json larger than this is refused before parsing (real ones are a few kB).
MAX_JSON_BYTES = 64 * 2**20


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
        "class": class_name(type(est)),
        "probest_version": probest.__version__,
        "params": params_json(est),
        "fitted": meta,
    }
    (path / "model.json").write_text(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False))
    save_file(tensors, str(path / "model.safetensors"))
    return path


def _no_constants(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed.")


def _read_json(file: pathlib.Path) -> dict[str, Any]:
    if file.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES} bytes.")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"), parse_constant=_no_constants)
    except RecursionError:
        raise ValueError("JSON nests too deeply.") from None
    check_depth(doc)
    if not (isinstance(doc, dict) and {"class", "params", "fitted"} <= set(doc)):
        raise ValueError("not a probest model (needs 'class', 'params' and 'fitted').")
    return doc


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

    Raises
    ------
    ValueError
        If the files are missing or corrupt, name a class that is not a registered probest
        estimator, or hold parameters/attributes the class does not declare.

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
    where = path / "model.json"
    try:
        doc = _read_json(where)
        registry = estimator_registry()
        cls = registry.get(doc["class"]) if isinstance(doc["class"], str) else None
        if cls is None or not issubclass(cls, ProbestEstimator):
            raise ValueError(f"refusing to load class {doc['class']!r}: not a probest estimator.")
        est = construct(doc["class"], doc["params"], registry)
        where = path / "model.safetensors"
        tensors = load_file(str(where))
        where = f"{path / 'model.json'} + model.safetensors"
        est._set_fitted_state(tensors, doc["fitted"])
    except Exception as e:  # one error type for every defect of the files
        raise ValueError(f"cannot load a probest model from {where}: {e}") from e
    return est

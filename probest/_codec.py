"""Fitted state <-> (tensors for safetensors, plain JSON): the data codec behind probest.save.

The encoding is data only.  Decoding accepts exactly the markers :func:`split_state` writes,
resolves dtypes and devices against fixed whitelists (never ``getattr(torch, <name>)`` on a
name from a file), refuses tensor references that are missing, and bounds the nesting depth;
anything else raises :class:`ValueError`.  A leaf module: numpy and torch only.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch

_ARRAY = "__tensor__"
#: deepest JSON nesting a saved model may have (real models stay below 10).
MAX_DEPTH = 32

#: dtypes a saved model may name; every other name is refused.
DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
    "float64": torch.float64, "complex64": torch.complex64, "complex128": torch.complex128,
    "int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
    "uint8": torch.uint8, "bool": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
_DEVICE = re.compile(r"(cpu|cuda|mps)(:[0-9]{1,3})?")
_NONFINITE = {"inf": float("inf"), "-inf": float("-inf"), "nan": float("nan")}


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


def dtype_name(dt: torch.dtype) -> str:
    """The whitelisted name of ``dt`` (TypeError for a dtype outside the whitelist)."""
    if dt not in _DTYPE_NAMES:
        raise TypeError(f"dtype {dt} cannot be saved; supported: {', '.join(DTYPES)}.")
    return _DTYPE_NAMES[dt]


def dtype_from_name(name: Any) -> torch.dtype:
    """``torch.<name>`` for a whitelisted name; ValueError for anything else."""
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"dtype {name!r} is not one of the supported dtypes {sorted(DTYPES)}.")
    return DTYPES[name]


def device_from_name(name: Any) -> torch.device:
    if not isinstance(name, str) or not _DEVICE.fullmatch(name):
        raise ValueError(f"device {name!r} is not cpu, cuda[:N] or mps.")
    return torch.device(name)


def check_depth(obj: Any, limit: int = MAX_DEPTH) -> None:
    """ValueError if the JSON value ``obj`` nests deeper than ``limit`` (iterative walk)."""
    stack = [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            raise ValueError(f"JSON nests deeper than {limit} levels.")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)


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
            return {"__dtype__": dtype_name(v)}
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
            f"{type(v).__name__}. Declare how to save it (see probest._persist)."
        )

    meta = {k: enc(k, v) for k, v in state.items()}
    return tensors, meta


def _dec_key(k: Any) -> Any:
    if isinstance(k, dict) and set(k) == {"__tuple__"} and isinstance(k["__tuple__"], list) \
            and all(_is_json_scalar(x) for x in k["__tuple__"]):
        return tuple(k["__tuple__"])
    if _is_json_scalar(k):
        return k
    raise ValueError(f"bad dictionary key {k!r}.")


def join_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
               used: set[str] | None = None) -> dict[str, Any]:
    """Inverse of :func:`split_state`; ValueError on anything it did not write.

    ``used`` (optional) collects the names of the tensors the metadata refers to.
    """
    used = set() if used is None else used

    def dec(v: Any, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"fitted state nests deeper than {MAX_DEPTH} levels.")
        if _is_json_scalar(v):
            return v
        if isinstance(v, list):
            return [dec(x, depth + 1) for x in v]
        if not isinstance(v, dict):
            raise ValueError(f"unexpected value of type {type(v).__name__}.")
        keys = set(v)
        if keys == {_ARRAY, "numpy"}:
            name = v[_ARRAY]
            if not isinstance(name, str) or name not in tensors:
                raise ValueError(f"tensor {name!r} is missing from the safetensors file.")
            used.add(name)
            return tensors[name].numpy() if v["numpy"] is True else tensors[name]
        if keys == {"__strarray__", "dtype"}:
            items, kind = v["__strarray__"], v["dtype"]
            if not (isinstance(items, list) and all(isinstance(x, str) for x in items)
                    and kind in ("U", "O")):
                raise ValueError("bad string array.")
            return np.asarray(items, dtype=object if kind == "O" else None)
        if keys == {"__device__"}:
            return device_from_name(v["__device__"])
        if keys == {"__dtype__"}:
            return dtype_from_name(v["__dtype__"])
        if keys == {"__float__"}:
            if v["__float__"] not in _NONFINITE:
                raise ValueError(f"bad non-finite float {v['__float__']!r}.")
            return _NONFINITE[v["__float__"]]
        if keys == {"__dict__"} and isinstance(v["__dict__"], dict):
            return {k: dec(x, depth + 1) for k, x in v["__dict__"].items()}
        if keys == {"__items__"} and isinstance(v["__items__"], list):
            out = {}
            for pair in v["__items__"]:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError("bad dictionary item.")
                out[_dec_key(pair[0])] = dec(pair[1], depth + 1)
            return out
        raise ValueError(f"unknown entry with keys {sorted(map(str, keys))}.")

    if not isinstance(meta, dict):
        raise ValueError("fitted state is not a JSON object.")
    return {k: dec(v, 1) for k, v in meta.items()}

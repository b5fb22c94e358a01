"""The numpy <-> torch boundary: device/dtype resolution, tensor conversion, seeding.

Every estimator's data path goes through here: ``validate_data`` (numpy) ->
:func:`as_tensor` (on the estimator's device and dtype) -> engine -> numpy fitted
attributes.  Nothing in this module touches global RNG state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

_DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "double": torch.float64,
    "float": torch.float32,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"``/``torch.device`` into a device.

    ``"auto"`` (and ``None``) picks CUDA when ``torch.cuda.is_available()``, else CPU.
    Asking for CUDA on a machine without it is an error, not a silent fallback.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'auto', 'cpu' or 'cuda[:N]'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device='auto' or 'cpu'."
        )
    return dev


def resolve_dtype(dtype: Any = "float64") -> torch.dtype:
    """Turn ``"float32"``, ``np.float64``, ``torch.float32``... into a torch floating dtype."""
    if isinstance(dtype, torch.dtype):
        out = dtype
    elif isinstance(dtype, str) and dtype in _DTYPES:
        out = _DTYPES[dtype]
    else:
        try:
            out = _DTYPES[np.dtype(dtype).name]
        except (TypeError, KeyError) as exc:
            raise ValueError(
                f"dtype={dtype!r} is not a supported floating dtype; use 'float32' or 'float64'."
            ) from exc
    if not out.is_floating_point:
        raise ValueError(f"dtype={dtype!r} must be a floating dtype.")
    return out


def numpy_dtype(dtype: torch.dtype) -> np.dtype:
    """The numpy dtype matching a torch floating dtype (bf16/fp16 map to float32)."""
    return np.dtype({torch.float64: np.float64}.get(dtype, np.float32))


def as_tensor(a: Any, *, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
    """Copy array-like ``a`` into a new tensor (read-only numpy inputs are fine)."""
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype or a.dtype)
    arr = np.asarray(a)
    if dtype is None and arr.dtype.kind == "f":
        dtype = torch.float64 if arr.dtype == np.float64 else torch.float32
    return torch.tensor(arr, device=device, dtype=dtype)


def to_numpy(t: Any) -> Any:
    """Detach a tensor to a numpy array on the host; pass anything else through."""
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return t


def move_to(obj: Any, device: torch.device | str) -> Any:
    """Recursively move tensors and modules inside ``obj`` to ``device`` without mutating it.

    Tensors already on ``device`` are returned as they are; modules that need moving are
    deep-copied first so the caller's object is never changed.
    """
    device = torch.device(device)
    if isinstance(obj, torch.Tensor):
        return obj if obj.device == device else obj.to(device)
    if isinstance(obj, torch.nn.Module):
        tensors = list(obj.parameters()) + list(obj.buffers())
        if all(t.device == device for t in tensors):
            return obj
        import copy

        return copy.deepcopy(obj).to(device)
    if isinstance(obj, Mapping) and type(obj) in (dict,):
        return {k: move_to(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [move_to(v, device) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(move_to(v, device) for v in obj)
    return obj


def draw_seed(random_state: Any) -> int:
    """A 63-bit seed from ``random_state`` without touching numpy's global RNG.

    ``None`` draws fresh OS entropy (``np.random.check_random_state(None)`` would advance the
    *global* numpy state, which probest promises never to do); an int is mapped
    deterministically; a ``RandomState``/``Generator`` is advanced, as the user asked.
    """
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(2, dtype=np.uint32).view(np.uint64)[0]
                   >> np.uint64(1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        hi, lo = random_state.randint(0, 2**31 - 1, size=2)
        return int(hi) << 31 | int(lo)
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be non-negative, got {random_state}.")
        ss = np.random.SeedSequence(int(random_state))
        return int(ss.generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> np.uint64(1))
    raise ValueError(
        f"random_state={random_state!r} cannot be used to seed; pass None, an int, "
        "a numpy RandomState or Generator."
    )


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[torch.Generator]:
    """Run a block with torch seeded by ``seed``, restoring every global RNG afterwards.

    Uses :func:`torch.random.fork_rng` (CPU, and the CUDA device when ``device`` is CUDA)
    and yields an explicit ``torch.Generator`` on ``device`` seeded with ``seed`` too, for
    code that prefers explicit generators.  numpy and Python ``random`` are never seeded.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=True):
        torch.manual_seed(seed % (2**63 - 1))
        gen = torch.Generator(device=device)
        gen.manual_seed(seed % (2**63 - 1))
        yield gen

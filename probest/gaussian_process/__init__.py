"""probest.gaussian_process — GP classification and regression with Laplace, EP, VI (CVI) and
the hybrid hyperparameter learning of Li et al. (ICML 2023): CVI sites, EP-energy learning.

Imports are lazy (GPyTorch loads on first use)::

    from probest.gaussian_process import GaussianProcessClassifier
    clf = GaussianProcessClassifier(inference="hybrid").fit(X, y)
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "GaussianProcessClassifier": "_classifier",
    "GaussianProcessRegressor": "_regressor",
    "plot_objective_surface": "_plot",
    "objective_surface": "_plot",
})

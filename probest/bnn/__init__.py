"""probest.bnn — partial Bayesian neural networks trained by Feynman–Kac SMC (OHSMC, SGSMC),
with Pyro SVI and a deterministic net as in-house baselines."""

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "FeynmanKacTrainer": "_trainer",
    "ParticleDegeneracyWarning": "_trainer",
    "plot_particle_posterior": "_plot",
    "PartialBayesianMLPRegressor": "_regressor",
    "PartialBayesianMLPClassifier": "_classifier",
})

"""probest.bandits — learning models of choices in multi-armed bandits, fitted to behaviour.

* :class:`Exp3LearningRateMLE` — the maximum-likelihood estimator of the Exp3 learning rate
  (Aubert, Lehéricy & Reynaud-Bouret, ICML 2023): likelihood by replay, vectorised over
  candidates x subjects in torch, a jittered log-grid with refinement, the data-driven
  truncation rule, profile / Wald / bootstrap intervals and identifiability diagnostics;
* :class:`RescorlaWagnerMLE` — the Rescorla–Wagner softmax model with the same interface;
* :class:`BayesianExp3` — the same likelihood as a Pyro or NumPyro (``[jax]``) model,
  hierarchical over subjects (partial pooling of log c), sampled with NUTS on the
  hyperparameters with every subject's rate integrated out on a grid (or jointly);
* :class:`BayesianRescorlaWagner` — the same for Rescorla–Wagner (alpha, beta), so the two
  learning models compare by leave-one-subject-out LOO (``az.compare``);
* :func:`simulate_exp3`, :func:`simulate_rescorla_wagner`, :func:`parameter_recovery`,
  :func:`model_confusion` — the simulate / fit / recover / compare workflow.

Every estimator takes choices as arrays ``(T,)`` or ``(n_subjects, T)``, ragged lists, an
event log ``{"actions", "rewards", "subjects"}`` or a long-format DataFrame.
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "BanditSimulation": "_simulate",
    "BayesianExp3": "_bayes",
    "BayesianRescorlaWagner": "_bayes_rw",
    "ConfusionResult": "_workflow",
    "RecoveryResult": "_workflow",
    "model_confusion": "_workflow",
    "parameter_recovery": "_workflow",
    "Exp3LearningRateMLE": "_exp3",
    "IdentifiabilityWarning": "_common",
    "RescorlaWagnerMLE": "_rw",
    "simulate_exp3": "_simulate",
    "simulate_rescorla_wagner": "_simulate",
})

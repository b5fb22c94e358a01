"""FedGMMClassifier on real federations of scikit-learn's data sets (issue 12).

Label skew (Dirichlet 0.1 / 0.5 label proportions: clients miss classes) and covariate
shift (clients = k-means clusters of the inputs), against one global logistic regression on
the pooled rows, per-client logistic regressions and FedAvg (local refits averaged by client
size).  The splits and baselines live in ``benchmarks/fedgmm_real.py`` (the benchmark prints
the full table, digits included).
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from probest._torch import draw_seed
from probest.metrics import roc_auc
from probest.mixture import FedGMMClassifier

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import fedgmm_real as R

sys.path.pop(0)


def _digits_dirichlet_03():
    """The issue's federation: digits (10 PCA dims), 8 clients, Dirichlet(0.3) labels."""
    X, y = R.load("digits")
    return R.split(X, y, 8, "label", 0.3, seed=0)


def test_one_expert_is_the_pooled_logistic_regression():
    """n_experts=1: every row weighs 1 in the expert's M-step, so the expert is the pooled
    LogisticRegression(C=1) fit and predict_proba(client=k) is its predict_proba.  Before
    the fix (clients refit to convergence, then parameter averaging) this federation gave
    personalised accuracy 0.68 vs 0.92.  Measured max |diff| vs scikit-learn at tol=1e-12:
    ~1e-8 (lbfgs' own stopping); bound 1e-6."""
    tr, te = _digits_dirichlet_03()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = FedGMMClassifier(3, 1, covariance_type="diag", random_state=0, device="cpu",
                             max_iter=5).fit(*tr)
        ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=20000).fit(
            np.concatenate(tr[0]), np.concatenate(tr[1]))
    for k, x in enumerate(te[0]):
        np.testing.assert_allclose(f.predict_proba(x, client=k), ref.predict_proba(x),
                                   atol=1e-6, rtol=0)
    acc = R.accuracy(lambda k, x: f.predict(x, client=k), te)
    assert acc == pytest.approx(R.accuracy(lambda k, x: ref.predict(x), te), abs=1e-12)
    assert acc > 0.9


def test_one_torch_expert_is_pooled_full_batch_adam():
    """Torch expert, n_experts=1: the federated M-step is full-batch Adam on the pooled
    mean cross-entropy (clients send gradients of their summed loss), so it equals the
    same Adam loop on the pooled rows.  Measured max |diff| 2e-15; bound 1e-6."""
    X, y = R.load("wine")
    tr, te = R.split(X, y, 3, "label", 0.5, seed=0)
    net = torch.nn.Linear(X.shape[1], 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = FedGMMClassifier(2, 1, expert=net, covariance_type="diag", random_state=0,
                             device="cpu", max_iter=1, tol=0.0).fit(*tr)
    from probest.mixture._experts import TorchExpert

    e = TorchExpert(net, 3, "cpu", torch.float64)
    m = e.module
    e._load(e.initial_state(draw_seed(0) * 1000))
    Xp = torch.tensor(np.concatenate(tr[0]))
    yp = torch.tensor(np.concatenate(tr[1]))
    for _ in range(f.n_iter_ + 1):  # the initial M-step, then one per EM iteration
        opt = torch.optim.Adam(m.parameters(), lr=e.lr)
        for _ in range(e.epochs):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(Xp), yp).backward()
            opt.step()
    for k, x in enumerate(te[0]):
        want = torch.softmax(m(torch.tensor(x)), 1).detach().numpy()
        np.testing.assert_allclose(f.predict_proba(x, client=k), want, atol=1e-6, rtol=0)


#: measured on the default run's splits (seed 0); see benchmarks/RESULTS.md for the table
FAST_SPLITS = [s for s in R.SPLITS if s[0] in ("wine", "breast_cancer")]


@pytest.mark.parametrize("split", FAST_SPLITS, ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}")
def test_personalised_accuracy_at_least_global_and_local(split):
    """The FedGMM paper's claim on real data: personalised accuracy >= the better of the
    global and the local logistic baselines, and above FedAvg (which, on label-skewed
    clients, averages local optima that drive missing classes' logits to -inf)."""
    row, *_ = R.evaluate(*split)
    print(split, {k: round(v, 3) for k, v in row.items()})
    assert row["fedgmm"] >= max(row["global"], row["local"])
    assert row["fedgmm"] > row["fedavg"]


@pytest.mark.slow
@pytest.mark.parametrize("split", [s for s in R.SPLITS if s[0] == "digits"],
                         ids=lambda s: f"{s[0]}-{s[1]}-{s[2]}")
def test_personalised_accuracy_digits(split):
    row, *_ = R.evaluate(*split)
    print(split, {k: round(v, 3) for k, v in row.items()})
    assert row["fedgmm"] >= max(row["global"], row["local"])


def test_novelty_auroc_on_held_out_class():
    """Train on two wine cultivars (2 clients, Dirichlet(0.5)); the third cultivar is novel.
    novelty_score = -(log p_c(x)) ranks its rows above held-out rows of the seen classes.
    Measured AUROC 0.980 (x only); bound 0.9."""
    X, y = R.load("wine")
    seen = y != 2
    tr, te = R.split(X[seen], y[seen], 2, "label", 0.5, seed=0, min_rows=30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = FedGMMClassifier(2, 2, covariance_type="diag", random_state=0,
                             device="cpu").fit(*tr)
    normal = np.concatenate([f.novelty_score(x, client=k) for k, x in enumerate(te[0])])
    novel = f.novelty_score(X[~seen], client=0)
    auc = roc_auc(-normal, -novel)
    print("novelty AUROC", auc)
    assert auc >= 0.9

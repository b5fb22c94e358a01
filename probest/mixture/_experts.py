"""Conditional experts p(y | x; theta_b) for FedGMMClassifier, federated by weighted averaging.

An expert's state is a dict of numpy arrays (so fitted models save without pickle):

* sklearn linear classifiers accepting ``sample_weight`` (``LogisticRegression`` default):
  each client refits a warm-started copy on its data with weights ``sum_a q[a, b]``; the
  server averages ``coef_``/``intercept_`` weighted by the clients' expert mass.
* a torch ``nn.Module`` mapping ``x`` to class logits: each client takes ``epochs``
  full-batch Adam steps on the weighted cross-entropy from the global state; the server
  averages the state dicts weighted by mass (FedAvg).
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def make_expert(template, n_classes: int, device, dtype):
    if template is None:
        from sklearn.linear_model import LogisticRegression

        template = LogisticRegression(C=1.0, max_iter=200)
    if isinstance(template, torch.nn.Module):
        return TorchExpert(template, n_classes, device, dtype)
    if not hasattr(template, "fit"):
        raise TypeError(
            "expert must be a scikit-learn classifier accepting sample_weight (e.g. "
            "LogisticRegression()) or a torch.nn.Module returning class logits."
        )
    return SklearnExpert(template, n_classes, device, dtype)


class SklearnExpert:
    """Linear sklearn classifier expert (state: ``coef``, ``intercept``)."""

    def __init__(self, template, n_classes, device, dtype):
        self.template, self.C, self.device, self.dtype = template, n_classes, device, dtype

    def fit_local(self, state, X, y, w, seed):
        from sklearn.base import clone

        est = clone(self.template)
        params = est.get_params()
        if "random_state" in params:
            est.set_params(random_state=int(seed) % (2**32 - 1))
        present = np.unique(y)
        missing = np.setdiff1d(np.arange(self.C), present)
        if missing.size:  # zero-weight rows make every class known to the local fit
            X = np.vstack([X, np.repeat(X[:1], missing.size, axis=0)])
            y = np.concatenate([y, missing])
            w = np.concatenate([w, np.zeros(missing.size)])
        if w.sum() <= 0:
            return state
        if state is not None and "warm_start" in params:
            est.set_params(warm_start=True)
            est.coef_ = state["coef"].copy()
            est.intercept_ = state["intercept"].copy()
            est.classes_ = np.arange(self.C)
        est.fit(X, y, sample_weight=w)
        if not hasattr(est, "coef_"):
            raise TypeError(
                f"{type(est).__name__} has no coef_/intercept_ to average across clients; "
                "use a linear classifier (LogisticRegression, SGDClassifier(loss='log_loss'))"
                " or a torch.nn.Module expert."
            )
        return {"coef": np.asarray(est.coef_, float), "intercept": np.asarray(est.intercept_,
                                                                               float)}

    def log_proba(self, state, X: torch.Tensor) -> torch.Tensor:
        W = torch.tensor(state["coef"], device=X.device, dtype=X.dtype)
        b = torch.tensor(state["intercept"], device=X.device, dtype=X.dtype)
        z = X @ W.T + b
        if z.shape[1] == 1:  # binary: decision function of class 1
            return torch.cat([torch.nn.functional.logsigmoid(-z),
                              torch.nn.functional.logsigmoid(z)], 1)
        return torch.log_softmax(z, 1)


class TorchExpert:
    """torch module expert (state: the module's state dict as numpy arrays)."""

    def __init__(self, template, n_classes, device, dtype, epochs=20, lr=0.05):
        self.template, self.C, self.device, self.dtype = template, n_classes, device, dtype
        self.epochs, self.lr = epochs, lr
        self.module = copy.deepcopy(template).to(device=device, dtype=dtype)

    def _load(self, state):
        if state is not None:
            self.module.load_state_dict(
                {k: torch.tensor(v, device=self.device) for k, v in state.items()})
        return self.module

    def fit_local(self, state, X, y, w, seed):
        if state is None:  # each expert starts from its own random init
            g = torch.Generator().manual_seed(int(seed) % (2**63 - 1))
            for p in self.module.parameters():
                with torch.no_grad():
                    p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.1)
        else:
            self._load(state)
        m = self.module
        Xt = torch.tensor(X, device=self.device, dtype=self.dtype)
        yt = torch.tensor(y, device=self.device, dtype=torch.long)
        wt = torch.tensor(w, device=self.device, dtype=self.dtype)
        if float(wt.sum()) <= 0:
            return state
        opt = torch.optim.Adam(m.parameters(), lr=self.lr)
        for _ in range(self.epochs):
            opt.zero_grad()
            nll = torch.nn.functional.cross_entropy(m(Xt), yt, reduction="none")
            ((wt * nll).sum() / wt.sum()).backward()
            opt.step()
        return {k: v.detach().cpu().numpy().copy() for k, v in m.state_dict().items()}

    def log_proba(self, state, X: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(self._load(state)(X), 1)


def allreduce_average(states, masses, engine, like=None):
    """Mass-weighted average (FedAvg) of expert states over every rank's clients, skipping
    clients with no mass; two SUM all-reduces' worth of data.

    Each rank adds ``m_c * theta_c`` and ``m_c`` over its own clients; one all-reduce of
    that vector gives the global sums, so every rank gets the same mass-weighted average.
    ``like`` (the previous global state, identical on all ranks) fixes the keys and shapes;
    while no global state exists yet, the ranks exchange them once (an object gather).
    Returns None when no client anywhere gave the expert any mass.
    """
    pairs = [(s, m) for s, m in zip(states, masses, strict=True) if s is not None and m > 0]
    if like is None:
        specs = engine.gather(None if not pairs else
                              [(k, np.shape(v), np.asarray(v).dtype.str)
                               for k, v in pairs[0][0].items()])
        spec = next((s for s in specs if s is not None), None)
        if spec is None:
            return None
    else:
        spec = [(k, np.shape(v), np.asarray(v).dtype.str) for k, v in like.items()]
    sizes = [int(np.prod(shape)) for _, shape, _ in spec]
    vec = np.zeros(sum(sizes) + 1)
    for s, m in pairs:
        vec[:-1] += m * np.concatenate([np.asarray(s[k], float).ravel() for k, _, _ in spec])
        vec[-1] += m
    tot = engine.allreduce(torch.from_numpy(vec)).cpu().numpy()
    if not tot[-1] > 0:
        return None
    out, i = {}, 0
    for (k, shape, dt), size in zip(spec, sizes, strict=True):
        out[k] = (tot[i: i + size] / tot[-1]).reshape(shape).astype(np.dtype(dt))
        i += size
    return out

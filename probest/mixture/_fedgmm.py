"""FedGMMClassifier: the FedGMM joint model (Wu et al., ICML 2023), local or torch.distributed.

Client ``c`` models ``p_c(x, y) = sum_{a,b} pi_c[a,b] N(phi(x); mu_a, Sigma_a) p(y|x; theta_b)``:
``M1 = n_input_components`` shared Gaussians over ``phi(x)``, ``M2 = n_experts`` shared
conditional experts and a personal ``M1 x M2`` weight table ``pi_c``.  Federated EM:

* E-step on each client, in log space: ``q[a,b] ∝ pi_c[a,b] N(phi(x_i); a) p(y_i|x_i; b)``.
* ``pi_c = mean_i q_i`` (closed form, personal).
* Gaussians: clients send sufficient statistics of ``w[a] = sum_b q[a,b]``; the server adds
  them and runs the exact pooled M-step (:mod:`probest.mixture._stats`).
* Experts: clients update a copy with weights ``sum_a q[a,b]``; the server averages them
  weighted by the clients' expert mass (:mod:`probest.mixture._experts`).

With ``engine="torch.distributed"`` each rank holds some clients and runs the same loop:
the Gaussian statistics, the experts' weighted parameter sums and mass totals, the
log-likelihood and the PCA moments are all-reduced (SUM); weight tables stay on their rank.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import Interval, Options, check_finite_rows, check_scale
from probest.base import EstimatorSpec, TorchEstimator
from probest.mixture import _base
from probest.mixture._em import ChunkedData, LocalEngine, initial_params
from probest.mixture._experts import allreduce_average, make_expert
from probest.mixture._federated import is_client_list, split_clients
from probest.mixture._stats import COVARIANCE_TYPES, log_gaussian_prob, m_step, stats_from_resp


def _split_labels(y, groups, parts_ids, X):
    if is_client_list(X):
        if not isinstance(y, (list, tuple)) or len(y) != len(X):
            raise ValueError("With a list of client arrays, y must be a list of the same length.")
        return [np.asarray(v) for v in y]
    y = np.asarray(y)
    if groups is None:
        return [y]
    g = np.asarray(groups)
    return [y[g == i] for i in parts_ids]


def _global_classes(engine, n_features, classes, n_samples):
    """Union of the ranks' classes and the total sample count; checks the feature counts."""
    got = engine.gather((int(n_features), classes, int(n_samples)))
    counts = [g[0] for g in got]
    if len(set(counts)) > 1:
        raise ValueError(
            "Mismatched feature counts across ranks: "
            + ", ".join(f"rank {r} has {c}" for r, c in enumerate(counts))
            + "; every rank's clients must use the same features in the same order.")
    classes = np.unique(np.concatenate([g[1] for g in got])) if len(got) > 1 else classes
    return classes, sum(g[2] for g in got)


class FedGMMClassifier(ClassifierMixin, TorchEstimator):
    """Personalised federated classifier: GMM on inputs x per-client weights x experts.

    ``fit(X_by_client, y_by_client)`` (lists) or ``fit(X, y, groups=)``.  Personalised
    predictions use ``client=``; ``adapt(X_new, y_new=None)`` adds a client by closed-form
    EM on its weight table only; ``novelty_score(X, y=None, client=)`` is
    ``-(log p_c(x) [+ log p_c(y|x)])``.

    Parameters
    ----------
    n_input_components : int, default=3
        Gaussian components over ``phi(x)`` (M1).
    n_experts : int, default=3
        Conditional experts (M2).
    expert : estimator or torch.nn.Module, optional
        A sklearn linear classifier with ``sample_weight`` (default
        ``LogisticRegression(C=1.0)``) or a ``torch.nn.Module`` mapping x to class logits.
    phi : None, int, transformer or callable, optional
        None (identity), an int (PCA to that many dimensions, fitted from federated
        first/second moments: exact pooled PCA), a fitted transformer with ``transform``,
        or a callable ``ndarray -> ndarray``.  Fixed during training.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        As :class:`GaussianMixture`.
    reg_covar : float, default=1e-6
        As :class:`GaussianMixture`.
    max_iter : int, default=30
        EM rounds.
    tol : float, default=1e-4
        Stop when the mean log-likelihood improves by less than this.
    init_params : str, default="kmeans"
        As :class:`GaussianMixture`.
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds the initialisation and the experts.
    verbose : int, default=0
        0 silent, 1 a progress bar, 2 also one line per round.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Torch device ("auto" picks CUDA when present).
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of the fit.
    engine : {"local", "torch.distributed"}, default="local"
        "local" (all clients in this process) or "torch.distributed": every rank of an
        initialised process group calls ``fit`` with its own clients; shared parameters are
        all-reduced (SUM) each round, so every rank ends with the same Gaussians and experts.
        ``client_weights_``/``client_ids_``/``client_n_samples_`` then hold this rank's
        clients only (personal tables never leave their rank); ``weights_`` is global.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels over all clients.
    means_ : ndarray of shape (n_input_components, n_phi)
        Means of the Gaussians over ``phi(x)``.
    covariances_ : ndarray
        Their covariances (shape by ``covariance_type``).
    precisions_ : ndarray
        Inverses of ``covariances_``.
    precisions_cholesky_ : ndarray
        Cholesky factors of ``precisions_``.
    experts_ : list
        The fitted conditional experts.
    client_weights_ : ndarray of shape (n_clients, n_input_components, n_experts)
        Each client's weight table ``pi_c[a, b]``.
    client_ids_ : list
        Client labels.
    client_n_samples_ : ndarray of shape (n_clients,)
        Rows per client.
    weights_ : ndarray of shape (n_input_components, n_experts)
        Pooled weight table.
    phi_mean_ : ndarray
        Mean of the pooled PCA (``phi`` an int only).
    phi_components_ : ndarray
        Its components (``phi`` an int only).
    n_iter_ : int
        EM rounds run.
    converged_ : bool
        Whether the mean log-likelihood converged.
    lower_bound_ : float
        Final mean log-likelihood.
    history_ : list of dict
        One record per round.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> from probest.datasets import make_federated_gmm
    >>> from probest.mixture import FedGMMClassifier
    >>> fed = make_federated_gmm(n_clients=3, n_samples=100, n_components=2, n_features=2,
    ...                          labels=True, random_state=0)
    >>> clf = FedGMMClassifier(2, 2, device="cpu", random_state=0).fit(fed.X, fed.y)
    >>> clf.classes_, clf.client_weights_.shape
    (array([0, 1]), (3, 2, 2))
    >>> clf.predict_proba(fed.X[0][:3], client=0).shape
    (3, 2)
    >>> clf = clf.adapt(fed.X[1][:30], fed.y[1][:30], client="new")
    >>> clf.novelty_score(fed.X[2][:3], fed.y[2][:3], client="new").shape
    (3,)
    """

    _spec = EstimatorSpec(input_kind="clients", also_accepts=("tabular",),
                          outputs=("predict", "predict_proba"))
    _constraints = {
        "n_input_components": (Interval(int, 1, None),),
        "n_experts": (Interval(int, 1, None),),
        "expert": ("any",),
        "phi": ("any",),
        "covariance_type": (Options(COVARIANCE_TYPES),),
        "reg_covar": (Interval(float, 0.0, None),),
        "max_iter": (Interval(int, 1, None),),
        "tol": (Interval(float, 0.0, None),),
        "init_params": (Options({"kmeans", "k-means++", "random", "random_from_data"}),),
        "engine": (Options({"local", "torch.distributed"}),),
    }

    _fitted_attributes = (
        "classes_", "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
        "client_ids_", "client_weights_", "client_n_samples_", "experts_", "phi_components_",
        "phi_mean_", "converged_", "n_iter_", "lower_bound_")

    def __init__(self, n_input_components=3, n_experts=3, *, expert=None, phi=None,
                 covariance_type="full", reg_covar=1e-6, max_iter=30, tol=1e-4,
                 init_params="kmeans", random_state=None, verbose=0, device="auto",
                 dtype="float64", engine="local"):
        self._store_params(locals())

    # ------------------------------------------------------------------ helpers
    def _phi(self, X: np.ndarray) -> np.ndarray:
        if self.phi is None:
            return X
        if isinstance(self.phi, (int, np.integer)):
            return (X - self.phi_mean_) @ self.phi_components_.T
        if hasattr(self.phi, "transform"):
            return np.asarray(self.phi.transform(X), dtype=float)
        return np.asarray(self.phi(X), dtype=float)

    def _fit_phi(self, parts, engine) -> None:
        if isinstance(self.phi, (int, np.integer)):
            k, d = int(self.phi), parts[0].shape[1]
            if not 1 <= k <= d:
                raise ValueError(f"phi={k} PCA components must be in [1, n_features].")
            # federated PCA: clients send (n, sum x, sum x x^T); server eigendecomposes
            loc = np.concatenate([[float(sum(p.shape[0] for p in parts))],
                                  sum(p.sum(0) for p in parts),
                                  sum(p.T @ p for p in parts).ravel()]).astype(np.float64)
            tot = engine.allreduce(torch.from_numpy(loc)).cpu().numpy()
            n, s1, s2 = tot[0], tot[1:d + 1], tot[d + 1:].reshape(d, d)
            mean = s1 / n
            cov = s2 / n - np.outer(mean, mean)
            vals, vecs = np.linalg.eigh(cov)
            self.phi_mean_ = mean
            self.phi_components_ = vecs[:, ::-1][:, :k].T.copy()

    def _log_expert(self, X: np.ndarray) -> torch.Tensor:
        """(n, M2, C) expert log-probabilities."""
        Xt = torch.tensor(X, device=self.device_, dtype=self.dtype_)
        if getattr(self, "_expert", None) is None:  # after probest.load
            self._expert = make_expert(self.expert, len(self.classes_), self.device_,
                                       self.dtype_)
        return torch.stack([self._expert.log_proba(s, Xt) for s in self.experts_], 1)

    def _log_gauss(self, X: np.ndarray) -> torch.Tensor:
        Z = torch.tensor(self._phi(X), device=self.device_, dtype=self.dtype_)
        return log_gaussian_prob(Z, _base.params_from_numpy(self))

    def _client_table(self, client) -> torch.Tensor:
        check_is_fitted(self)
        if client is None:
            t = self.weights_
        else:
            if client not in self.client_ids_:
                raise ValueError(f"Unknown client {client!r}; call adapt(X_new, client=...) "
                                 "to add a new client.")
            t = self.client_weights_[self.client_ids_.index(client)]
        return torch.tensor(t, device=self.device_, dtype=self.dtype_)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y, groups=None):
        """Federated EM over clients (lists of arrays, or ``X, y`` with ``groups``)."""
        self._validate_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None.")
        if not is_client_list(X):  # one array, with or without groups: sklearn's checks first
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32],
                                 ensure_min_samples=2)
        parts, ids = split_clients(X, groups)
        ys = _split_labels(y, groups, ids, X)
        for c, (p, v) in enumerate(zip(parts, ys, strict=True)):
            if p.shape[0] != v.shape[0]:
                raise ValueError(f"Client {ids[c]!r}: X has {p.shape[0]} rows but y has "
                                 f"{v.shape[0]}; pass one label per row.")
        # every path (one client, groups, client lists) sets n_features_in_ the same way
        Xall, yall = validate_data(self, np.concatenate(parts), np.concatenate(ys),
                                   dtype=[np.float64, np.float32], ensure_min_samples=2)
        check_classification_targets(yall)
        if len(parts) == 1:
            parts = [Xall]
        engine = self._make_engine()
        self.classes_, n_all = _global_classes(engine, Xall.shape[1], np.unique(yall),
                                               Xall.shape[0])
        y_idx = [np.searchsorted(self.classes_, v) for v in ys]
        M1, M2, ct = self.n_input_components, self.n_experts, self.covariance_type
        if n_all < M1:
            raise ValueError(f"n_input_components={M1} exceeds n_samples={n_all}.")
        self._fit_phi(parts, engine)
        with self._fit_context() as ctx:
            seed = int(engine.broadcast(ctx.seed))  # one seed on every rank
            self._expert = make_expert(self.expert, len(self.classes_), self.device_, self.dtype_)
            feats = [self._phi(p) for p in parts]
            for name, arrs in (("X", parts), ("phi(X)", feats)):
                for c, a in zip(ids, arrs, strict=True):
                    check_scale(a, owner=type(self).__name__, dtype=self.dtype_,
                                name=f"{name} of client {c!r}", n_rows=n_all)
            clients = [ChunkedData(f, device=self.device_, dtype=self.dtype_) for f in feats]
            params, weights, ref, _ = initial_params(
                clients, M1, ct, self.reg_covar, self.init_params, seed, ctx.generator,
                engine=engine)
            Zs = [cl._X for cl in clients]
            # initial association input component a -> expert a mod M2 breaks the symmetry
            D = torch.full((M1, M2), 0.1 / max(M2 - 1, 1), device=self.device_,
                           dtype=self.dtype_)
            D[torch.arange(M1), torch.arange(M1) % M2] = 0.9
            tables, experts = [], [None] * M2
            resp0 = []
            for Z in Zs:
                lg = log_gaussian_prob(Z, params) + torch.log(weights)
                r = torch.softmax(lg, 1)
                resp0.append(r.unsqueeze(2) * D)  # (n, M1, M2)
                tables.append(resp0[-1].mean(0))
            experts = self._update_experts(experts, parts, y_idx, resp0, seed, engine)
            prev = -np.inf
            converged = False
            with self._progress(self.max_iter, "FedGMM") as prog:
                for it in range(1, self.max_iter + 1):
                    total, qs, ll, n = None, [], 0.0, 0
                    self.experts_ = experts
                    for c, Z in enumerate(Zs):
                        logq = (torch.log(tables[c]) + log_gaussian_prob(Z, params).unsqueeze(2)
                                + self._expert_ll(parts[c], y_idx[c]).unsqueeze(1))
                        norm = torch.logsumexp(logq.flatten(1), 1)
                        q = torch.exp(logq - norm[:, None, None])
                        ll += float(norm.sum())
                        n += Z.shape[0]
                        st = stats_from_resp(Z, q.sum(2), ref, ct)
                        total = st if total is None else total + st
                        qs.append(q)
                        tab = q.mean(0) + 10 * torch.finfo(q.dtype).eps
                        tables[c] = tab / tab.sum()
                    total = engine.allreduce_stats(total)
                    _, params, _ = m_step(total, ref, ct, self.reg_covar, previous=params)
                    experts = self._update_experts(experts, parts, y_idx, qs, seed + it,
                                                   engine)
                    ll, n = engine.allreduce(torch.tensor([ll, float(n)],
                                                          dtype=torch.float64)).tolist()
                    obj = ll / n
                    prog.log(objective=obj)
                    if abs(obj - prev) < self.tol:
                        converged = True
                        break
                    prev = obj
            self.experts_ = experts
            _base.params_to_numpy(self, params, None)
        npd = self.means_.dtype
        self.client_ids_ = list(ids)
        self.client_weights_ = np.stack([t.cpu().numpy() for t in tables]).astype(npd)
        self.client_n_samples_ = np.array([p.shape[0] for p in parts])
        pooled = (self.client_n_samples_[:, None, None] * self.client_weights_).sum(0)
        pooled = engine.allreduce(torch.from_numpy(pooled.astype(np.float64))).cpu().numpy()
        self.weights_ = (pooled / pooled.sum()).astype(npd)
        self.n_iter_, self.converged_, self.lower_bound_ = it, converged, obj
        if not converged:
            warnings.warn("FedGMM EM did not converge; increase max_iter or tol.",
                          ConvergenceWarning, stacklevel=2)
        return self

    def _expert_ll(self, X, y_idx) -> torch.Tensor:
        """(n, M2) log p(y_i | x_i; theta_b) under the current experts."""
        lp = self._log_expert(X)
        idx = torch.tensor(y_idx, device=lp.device).view(-1, 1, 1).expand(-1, lp.shape[1], 1)
        return lp.gather(2, idx).squeeze(2)

    def _make_engine(self):
        if self.engine == "torch.distributed":
            from probest.mixture._distributed import TorchDistributedEngine

            return TorchDistributedEngine()
        return LocalEngine()

    def _update_experts(self, experts, parts, y_idx, qs, seed, engine):
        new = []
        for b in range(self.n_experts):
            states, masses = [], []
            for c, (X, q) in enumerate(zip(parts, qs, strict=True)):
                w = q[:, :, b].sum(1).cpu().numpy()
                states.append(self._expert.fit_local(experts[b], X, y_idx[c], w,
                                                     seed * 1000 + b))
                masses.append(float(w.sum()))
            avg = allreduce_average(states, masses, engine, like=experts[b])
            new.append(avg if avg is not None else experts[b])
        return new

    # --------------------------------------------------------------- prediction
    def _joint_resp(self, X, client, what="predict_proba") -> tuple[torch.Tensor, torch.Tensor]:
        """``log r_c[a,b](x)`` (n, M1, M2) and ``log p_c(x)`` (n,)."""
        tab = self._client_table(client)
        lg = self._log_gauss(X).unsqueeze(2) + torch.log(tab)
        _base.check_finite_log_density(self, lg, X, what)
        norm = torch.logsumexp(lg.flatten(1), 1)
        return lg - norm[:, None, None], norm

    def predict_proba(self, X, client=None):
        """Personalised ``p_c(y|x) = sum_ab r_c[a,b](x) p(y|x; theta_b)`` (pooled if None)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        logr, _ = self._joint_resp(X, client)
        lp = torch.logsumexp(logr.unsqueeze(3) + self._log_expert(X).unsqueeze(1), (1, 2))
        return check_finite_rows(torch.exp(lp).cpu().numpy(), owner=type(self).__name__,
                                 what="predict_proba", X=X)

    def predict(self, X, client=None):
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X, client=client).argmax(1)]

    def score(self, X, y, sample_weight=None, client=None):
        """Accuracy of ``predict(X, client=client)`` (weighted by ``sample_weight``)."""
        from sklearn.metrics import accuracy_score

        return accuracy_score(y, self.predict(X, client=client), sample_weight=sample_weight)

    def novelty_score(self, X, y=None, client=None):
        """``-(log p_c(x) + log p_c(y|x))`` (``y`` optional): larger means more novel."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        _, logpx = self._joint_resp(X, client, "novelty_score")
        s = logpx
        if y is not None:
            proba = torch.tensor(self.predict_proba(X, client=client))
            idx = torch.tensor(np.searchsorted(self.classes_, np.asarray(y)))
            s = s + torch.log(proba.gather(1, idx.view(-1, 1)).squeeze(1)).to(s)
        return -s.cpu().numpy()

    def adapt(self, X, y=None, client=None, max_iter=200, tol=1e-8):
        """Add a client: closed-form EM on its weight table only (no gradient training).

        With ``y`` the expert likelihoods enter the responsibilities; without, only the
        Gaussian part does (the split over experts within a component stays pooled).
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        client = _base.new_client_id(self.client_ids_, client)
        base = _base.check_finite_log_density(self, self._log_gauss(X).unsqueeze(2), X, "adapt")
        if y is not None:
            base = base + self._expert_ll(X, np.searchsorted(self.classes_, np.asarray(y))
                                          ).unsqueeze(1)
        tab = self._client_table(None)
        prev = -np.inf
        for _ in range(max_iter):
            lq = base + torch.log(tab)
            norm = torch.logsumexp(lq.flatten(1), 1)
            tab = torch.exp(lq - norm[:, None, None]).mean(0) + 10 * torch.finfo(lq.dtype).eps
            tab = tab / tab.sum()
            ll = float(norm.mean())
            if abs(ll - prev) < tol:
                break
            prev = ll
        self.client_ids_ = [*self.client_ids_, client]
        self.client_weights_ = np.concatenate([self.client_weights_,
                                               tab.cpu().numpy()[None].astype(self.means_.dtype)])
        return self

    def to_pyro(self, X, client=None):
        """``Categorical`` over class indices for each row of ``X`` (batch shape ``(n,)``)."""
        import pyro.distributions as dist

        return dist.Categorical(probs=torch.tensor(self.predict_proba(X, client=client)))

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

import json
import warnings

import numpy as np
import torch
from sklearn.base import ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import Interval, Options, check_finite_rows
from probest.base import EstimatorSpec, TorchEstimator
from probest.mixture import _base
from probest.mixture._driver import run_driver
from probest.mixture._experts import make_expert
from probest.mixture._federated import is_client_list, split_clients
from probest.mixture._fedgmm_program import ClassifierProgram, labels_from_clients
from probest.mixture._stats import COVARIANCE_TYPES, log_gaussian_prob
from probest.mixture._tasks import Client


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
    engine : {"local", "torch.distributed", "flower"}, default="local"
        "local" (all clients in this process) or "torch.distributed": every rank of an
        initialised process group calls ``fit`` with its own clients; shared parameters are
        all-reduced (SUM) each round, so every rank ends with the same Gaussians and experts.
        ``client_weights_``/``client_ids_``/``client_n_samples_`` then hold this rank's
        clients only (personal tables never leave their rank); ``weights_`` is global.
        "flower": a real Flower deployment on 127.0.0.1 (one SuperNode per client, labels
        on the nodes, the experts' Newton rounds as Flower messages); ``phi`` must be None
        or an int and the expert the default logistic one.  Across machines see
        :mod:`probest.mixture.flower`.
    round_timeout : float, default=60.0
        Seconds a Flower round may take (a node that has not answered by then is dropped).

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
    dropped_clients_ : list of tuple
        ``(round, client, reason)`` for every client that stopped answering (Flower).
    flower_timing_ : dict
        ``engine="flower"`` only: ``fit_seconds`` and ``round_seconds`` of the ServerApp.

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
        "engine": (Options({"local", "torch.distributed", "flower"}),),
        "round_timeout": (Interval(float, 0, None, closed="neither"),),
    }

    _fitted_attributes = (
        "classes_", "weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_",
        "client_ids_", "client_weights_", "client_n_samples_", "experts_", "phi_components_",
        "phi_mean_", "converged_", "n_iter_", "lower_bound_", "dropped_clients_",
        "flower_timing_")

    def __init__(self, n_input_components=3, n_experts=3, *, expert=None, phi=None,
                 covariance_type="full", reg_covar=1e-6, max_iter=30, tol=1e-4,
                 init_params="kmeans", random_state=None, verbose=0, device="auto",
                 dtype="float64", engine="local", round_timeout=60.0):
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
        if self.engine == "flower":  # a real Flower deployment on this machine
            from probest.mixture import flower

            return flower.fit_local_deployment(self, parts, ids, labels=ys)
        from probest.mixture._engines import make_engine

        with self._fit_context() as ctx:
            clients = [Client(c, p, v, index=i, device=self.device_, dtype=self.dtype_)
                       for i, (c, p, v) in enumerate(zip(ids, parts, ys, strict=True))]
            engine = make_engine(self.engine, clients)
            if engine.world_size > 1:
                offset = sum(engine.gather(len(clients))[: engine.rank])
                for cl in clients:
                    cl.index += offset
            classes, n_all = _global_classes(engine, Xall.shape[1], np.unique(yall),
                                             Xall.shape[0])
            self._fit_engine(engine, ctx, classes=classes, n_all=n_all, parts=parts, ids=ids)
        return self

    def _fit_engine(self, engine, ctx=None, *, classes=None, n_all=None, parts=None,
                    ids=None) -> None:
        """EM over ``engine``'s clients; sets the fitted attributes (every engine).  On a
        Flower ServerApp (no data, ``classes=None``) a ``labels`` round gives the classes,
        the number of rows and of features."""
        if ctx is None:
            with self._fit_context() as ctx:
                return self._fit_engine(engine, ctx)
        if classes is None:
            if callable(self.phi) or not isinstance(self.expert, (str, type(None))):
                raise ValueError("engine='flower' needs phi=None or an int and the default "
                                 "logistic expert (Python objects cannot travel).")
            classes, self.n_features_in_, n_all = labels_from_clients(engine)
        self.classes_ = classes
        if len(classes) < 2:
            raise ValueError(f"FedGMMClassifier needs at least 2 classes over all clients, "
                             f"got {list(classes)}.")
        payload = {"_classes": classes}
        if engine.name == "flower":  # labels travel as JSON (numbers or strings)
            payload["classes"] = json.dumps([c.item() if isinstance(c, np.generic) else c
                                             for c in classes])
        engine.round("set_classes", payload)
        M1 = self.n_input_components
        if n_all < M1:
            raise ValueError(f"n_input_components={M1} exceeds n_samples={n_all}.")
        seed = int(engine.broadcast(ctx.seed))  # one seed on every rank
        self._expert = make_expert(self.expert, len(classes), self.device_, self.dtype_)
        program = ClassifierProgram(self, engine, seed, ctx.generator)
        program.setup_phi(parts, ids, n_all)
        with self._progress(self.max_iter, "FedGMM") as prog:
            best = run_driver(program, n_init=1, max_iter=self.max_iter, tol=self.tol,
                              progress=prog)
        state = best["state"]
        self.experts_ = state["experts"]
        _base.params_to_numpy(self, state["params"], None)
        tables = program.tables()
        npd = self.means_.dtype
        self.client_ids_ = list(tables)
        self.client_weights_ = np.stack([np.asarray(t) for t, _ in tables.values()]).astype(npd)
        self.client_n_samples_ = np.array([n for _, n in tables.values()])
        pooled = (self.client_n_samples_[:, None, None] * self.client_weights_).sum(0)
        self.weights_ = (pooled / pooled.sum()).astype(npd)
        if engine.world_size > 1:  # personal tables stay on their rank
            mine = [i for i, c in enumerate(self.client_ids_) if c[0] == engine.rank]
            self.client_ids_ = [self.client_ids_[i][1] for i in mine]
            self.client_weights_ = self.client_weights_[mine]
            self.client_n_samples_ = self.client_n_samples_[mine]
        self.dropped_clients_ = list(program.gmm.dropped)
        self.n_iter_, self.converged_ = int(best["n_iter"]), bool(best["converged"])
        self.lower_bound_ = float(best["lower_bound"])
        if not self.converged_:
            warnings.warn("FedGMM EM did not converge; increase max_iter or tol.",
                          ConvergenceWarning, stacklevel=3)

    def _expert_ll(self, X, y_idx) -> torch.Tensor:
        """(n, M2) log p(y_i | x_i; theta_b) under the current experts."""
        lp = self._log_expert(X)
        idx = torch.tensor(y_idx, device=lp.device).view(-1, 1, 1).expand(-1, lp.shape[1], 1)
        return lp.gather(2, idx).squeeze(2)

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

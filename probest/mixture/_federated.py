"""FederatedGaussianMixture: federated EM with shared components and per-client weights."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from probest._validation import Interval, Options, check_scale
from probest.base import EstimatorSpec
from probest.mixture import _base
from probest.mixture._driver import GMMProgram, run_driver
from probest.mixture._em import log_weights_from
from probest.mixture._gmm import GaussianMixture
from probest.mixture._stats import log_gaussian_prob
from probest.mixture._tasks import Client

ENGINES = ("local", "torch.distributed", "flower")


def is_client_list(X) -> bool:
    """A list/tuple of 2-D client arrays (a list of rows is one array, as in sklearn)."""
    return isinstance(X, (list, tuple)) and (len(X) == 0 or all(np.ndim(e) == 2 for e in X))


def split_clients(X, groups=None) -> tuple[list[np.ndarray], list]:
    """``X`` as a list of client arrays (and their ids), checking each client.

    Accepts a list/tuple of 2-D arrays, or one array with ``groups`` (client label per
    row), or one array alone (a single client).
    """
    if is_client_list(X):
        if groups is not None:
            raise ValueError("Pass either a list of client arrays or X with groups=, not both.")
        if len(X) == 0:
            raise ValueError("X_by_client is empty; pass at least one client array.")
        ids = list(range(len(X)))
        parts = list(X)
    elif groups is not None:
        Xa = np.asarray(X)
        g = np.asarray(groups)
        if g.shape[0] != Xa.shape[0]:
            raise ValueError(f"groups has {g.shape[0]} entries but X has {Xa.shape[0]} rows.")
        ids = list(np.unique(g))
        parts = [Xa[g == i] for i in ids]
    else:
        if hasattr(X, "tocsr") or hasattr(X, "todense"):
            raise TypeError("Sparse input is not supported; pass a dense array.")
        return [X], [0]
    out, n_feat = [], None
    for c, part in zip(ids, parts, strict=True):
        a = np.asarray(part)
        if a.ndim == 2 and a.shape[0] == 0:
            raise ValueError(f"Client {c!r} holds no samples; remove empty clients before fitting.")
        a = check_array(a, dtype=[np.float64, np.float32], ensure_min_samples=1,
                        input_name=f"client {c!r}")
        if n_feat is None:
            n_feat = a.shape[1]
        elif a.shape[1] != n_feat:
            raise ValueError(
                f"Mismatched feature counts across clients: client {ids[0]!r} has {n_feat} "
                f"features but client {c!r} has {a.shape[1]}; every client must use the same "
                "features in the same order."
            )
        if a.shape[0] < a.shape[1]:
            raise ValueError(
                f"Client {c!r} has {a.shape[0]} samples but {a.shape[1]} features; each "
                "client needs at least n_features samples (merge or drop small clients)."
            )
        out.append(a)
    return out, ids


class FederatedGaussianMixture(GaussianMixture):
    """Federated EM for a Gaussian mixture: shared components, per-client weights.

    Clients compute sufficient statistics of their own data (:mod:`probest.mixture._stats`);
    the server adds them and runs the M-step, which is *exactly* pooled EM (the
    between-client covariance term is kept).  The server initialises the components once
    from client summaries and broadcasts them, so components mean the same thing on every
    client (no label switching).  With ``personalize=True`` each client keeps its own
    weights ``pi_c = mean_i r_ci`` (``client_weights_``): the model is
    ``p_c(x) = sum_k pi_ck N(x; mu_k, Sigma_k)``; with ``personalize=False`` it is pooled EM.

    ``fit(X_by_client)`` takes a list of ``(n_c, d)`` arrays; ``fit(X, groups=g)`` splits
    one array by client label; ``fit(X)`` is a single client (pooled EM).

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure, as in scikit-learn.
    tol : float, default=1e-3
        Stop when the mean log-likelihood improves by less than this.
    reg_covar : float, default=1e-6
        Added to the covariance diagonals (keeps them positive definite).
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the responsibilities are initialised.
    weights_init : array-like of shape (n_components,), optional
        User-provided initial weights.
    means_init : array-like of shape (n_components, n_features), optional
        User-provided initial means.
    precisions_init : array-like, optional
        User-provided initial precisions (shape depends on ``covariance_type``).
    personalize : bool, default=True
        Keep per-client mixing weights (False: pooled EM, one set of weights).
    engine : {"local", "torch.distributed", "flower"}, default="local"
        ``"local"`` (clients in this process), ``"torch.distributed"`` (each rank passes its
        own clients; see ``probest.mixture._engines``) or ``"flower"`` (a real Flower
        server and client processes on this machine; across machines use
        ``probest.mixture.flower``).
    adapt_max_iter : int, default=200
        EM iterations of :meth:`adapt` (a new client's weights).
    round_timeout : float, default=60.0
        Seconds a Flower round may take.
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds the initialisation (global RNG states are never touched).
    warm_start : bool, default=False
        Start from the previous fit's parameters (each client from its own previous
        weights; with ``engine="flower"`` the previous fit travels to the ServerApp as a
        model file).
    verbose : int, default=0
        0 silent, 1 a progress bar with the lower bound, 2 also one line per iteration.
    verbose_interval : int, default=10
        Iterations between printed lines with ``verbose=2``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Torch device ("auto" picks CUDA when present).
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of the fit.
    batch_size : int, optional
        Stream the data to the device in chunks of this many rows (None: all at once).

    Attributes
    ----------
    client_weights_ : ndarray of shape (n_clients, n_components)
        Per-client mixing weights.
    client_ids_ : list
        Client labels (list positions, or the unique ``groups``).
    client_n_samples_ : ndarray of shape (n_clients,)
        Rows per client.
    n_clients_ : int
        Number of clients.
    weights_ : ndarray of shape (n_components,)
        Pooled weights (sample-weighted mean of the client weights).
    means_ : ndarray of shape (n_components, n_features)
        Component means.
    covariances_ : ndarray
        Component covariances (scikit-learn shapes for each ``covariance_type``).
    precisions_ : ndarray
        Inverses of ``covariances_``.
    precisions_cholesky_ : ndarray
        Cholesky factors of ``precisions_``.
    converged_ : bool
        Whether the best initialisation converged.
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean log-likelihood per sample of the best initialisation.
    lower_bounds_ : list of float
        Its per-iteration lower bounds.
    history_ : list of dict
        One record per EM iteration over all initialisations (``objective``, ``init``, ``time``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    dropped_clients_ : list of tuple
        ``(round, client, reason)`` for every client that stopped answering (Flower).
    flower_timing_ : dict
        ``engine="flower"`` only: ``fit_seconds`` and ``round_seconds`` of the ServerApp.
    device_ : torch.device
        Device of the fit.
    dtype_ : torch.dtype
        Dtype of the fit.

    Examples
    --------
    >>> from probest.datasets import make_federated_gmm
    >>> from probest.mixture import FederatedGaussianMixture
    >>> fed = make_federated_gmm(n_clients=4, n_samples=100, n_components=2, n_features=2,
    ...                          random_state=0)
    >>> gmm = FederatedGaussianMixture(2, device="cpu", random_state=0).fit(fed.X)
    >>> gmm.client_weights_.shape, gmm.client_ids_
    ((4, 2), [0, 1, 2, 3])
    >>> gmm = gmm.adapt(fed.X[0][:50], client="new")  # a new client, closed-form EM
    >>> gmm.client_ids_[-1], gmm.novelty_score(fed.X[1][:3], client="new").shape
    ('new', (3,))
    """

    _federated = True  # no partial_fit / impute (pooled GaussianMixture only)
    _spec = EstimatorSpec(input_kind="clients", also_accepts=("tabular",),
                          outputs=("predict", "predict_proba", "score_samples"))
    _constraints = {
        **GaussianMixture._constraints,
        "personalize": ("boolean",),
        "engine": (Options(ENGINES),),
        "adapt_max_iter": (Interval(int, 1, None),),
        "round_timeout": (Interval(float, 0, None, closed="neither"),),
    }

    _fitted_attributes = ("client_ids_", "client_weights_", "client_n_samples_", "n_clients_",
                          "dropped_clients_", "flower_timing_")

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        personalize=True,
        engine="local",
        adapt_max_iter=200,
        round_timeout=60.0,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        device="auto",
        dtype="float64",
        batch_size=None,
    ):
        self._store_params(locals())

    # ------------------------------------------------------------------ fitting
    @classmethod
    def select(cls, *args, **kwargs):
        """Not available: :meth:`GaussianMixture.select` selects a pooled mixture; a
        federated fit keeps its clients apart (select on the pooled data, then fit this
        estimator with the winner's ``n_components`` and ``covariance_type``)."""
        raise NotImplementedError(
            "FederatedGaussianMixture.select is not available: GaussianMixture.select picks a "
            "pooled mixture. Select on pooled data with GaussianMixture.select, then fit "
            "FederatedGaussianMixture with the winner's n_components and covariance_type.")

    def fit(self, X, y=None, groups=None):
        """Federated EM over clients (see the class docstring for the accepted ``X``)."""
        self._validate_params()
        parts, ids = split_clients(X, groups)
        if self.engine == "flower":
            from probest.mixture import flower

            return flower.fit_local_deployment(self, parts, ids)
        # sklearn bookkeeping (n_features_in_, feature names) on the stacked data
        Xv = validate_data(self, parts[0] if len(parts) == 1 else np.concatenate(parts),
                           dtype=[np.float64, np.float32], ensure_min_samples=2)
        if len(parts) == 1:
            parts = [Xv]
        width = self.n_components * Xv.shape[1] if self.covariance_type == "full" else \
            self.n_components
        self._fit_clients(parts, ids, width)
        return self

    def _fit_clients(self, parts, ids, width) -> None:
        from probest.mixture._engines import make_engine

        with self._fit_context() as ctx:
            n_rows = sum(p.shape[0] for p in parts)
            for c, p in zip(ids, parts, strict=True):
                check_scale(p, owner=type(self).__name__, dtype=self.dtype_,
                            name=f"client {c!r}", n_rows=n_rows)
            clients = [Client(c, p, index=i, device=self.device_, dtype=self.dtype_,
                              batch_size=self.batch_size, width=width)
                       for i, (c, p) in enumerate(zip(ids, parts, strict=True))]
            engine = make_engine(self.engine, clients)
            if engine.world_size > 1:  # global client indices (seeds of local summaries)
                offset = sum(engine.gather(len(clients))[: engine.rank])
                for cl in clients:
                    cl.index += offset
            self._fit_engine(engine, ids, ctx)

    def _fit_engine(self, engine, ids=None, ctx=None) -> None:
        """EM over ``engine``'s clients; sets the fitted attributes (every engine)."""
        if ctx is None:  # the Flower ServerApp: no data here, only the rounds
            with self._fit_context() as ctx:
                return self._fit_engine(engine, ids, ctx)
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        s = engine.round("data_sum", {}).sums
        n_all, d = float(s["n"][0]), int(s["x"].shape[0])
        if n_all < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {int(n_all)}; reduce n_components or add "
                "data.")
        if not hasattr(self, "n_features_in_"):
            self.n_features_in_ = d
        seed = int(engine.broadcast(ctx.seed))
        program = self._program(engine, seed, d, ctx.generator, warm, ids)
        program.ref = s["x"].to(self.device_, self.dtype_) / s["n"][0]
        program.like = None
        program._ref_like()
        with self._progress(
                (1 if warm else self.n_init) * max(self.max_iter, 1), "FedEM") as prog:
            best = run_driver(program, n_init=self.n_init, max_iter=self.max_iter,
                              tol=self.tol, warm=warm,
                              previous_lower_bound=getattr(self, "lower_bound_", -np.inf),
                              progress=prog)
        self._set_fitted(program, best)

    def _program(self, engine, seed, d, generator, warm, ids):
        given = _base.user_params(self, d, self.device_, self.dtype_)
        previous = None
        if warm:  # ids=None on a Flower ServerApp: every previous client's row travels
            index = {c: i for i, c in enumerate(self.client_ids_)}
            previous = (_base.params_from_numpy(self), self._tensor(self.weights_),
                        {c: self.client_weights_[index[c]]
                         for c in (self.client_ids_ if ids is None else ids) if c in index})
        return GMMProgram(
            engine, n_components=self.n_components, covariance_type=self.covariance_type,
            reg_covar=self.reg_covar, init_params=self.init_params,
            personalize=self.personalize, seed=seed, given=given,
            init_rows=None if self.batch_size is None else max(self.batch_size, 10_000),
            generator=generator if engine.n_clients_total() == 1 else None, warm=previous)

    def _set_fitted(self, program, best) -> None:
        """Fitted attributes from the best run and the clients' answers."""
        state = best["state"]
        table = program.client_weights(state)
        _base.params_to_numpy(self, state["params"], None)
        npd = self.means_.dtype
        self.client_ids_ = list(table)
        self.client_weights_ = np.stack([w for w, _ in table.values()]).astype(npd)
        self.client_n_samples_ = np.asarray([n for _, n in table.values()])
        pooled = (self.client_n_samples_[:, None] * self.client_weights_).sum(0)
        self.weights_ = (pooled / pooled.sum()).astype(npd)
        if not self.personalize:
            self.weights_ = state["weights"].detach().cpu().numpy().astype(npd)
        self.n_clients_ = len(self.client_ids_)
        self.dropped_clients_ = list(program.dropped)
        self.converged_ = bool(best["converged"])
        self.n_iter_ = int(best["n_iter"])
        self.lower_bound_ = float(best["lower_bound"])
        self.lower_bounds_ = list(best["lower_bounds"])
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Federated EM did not converge. Increase max_iter or tol, or check for "
                "degenerate data.", ConvergenceWarning, stacklevel=4,
            )

    def _local_weights(self, ids):
        index = {c: i for i, c in enumerate(self.client_ids_)}
        return [self.client_weights_[index[c]] if c in index else self.weights_ for c in ids]

    # ------------------------------------------------------------- per-client use
    def _client_log_weights(self, client) -> torch.Tensor:
        check_is_fitted(self)
        if client is None:
            w = self.weights_
        else:
            try:
                idx = self.client_ids_.index(client)
            except ValueError:
                raise ValueError(
                    f"Unknown client {client!r}; known clients are {self.client_ids_[:10]}"
                    f"{'...' if len(self.client_ids_) > 10 else ''}. Call adapt(X_new, "
                    "client=...) to add a new client."
                ) from None
            w = self.client_weights_[idx]
        return torch.log(torch.tensor(np.asarray(w), device=self.device_, dtype=self.dtype_))

    def _weighted_log_prob(self, X, client=None, what="score_samples") -> torch.Tensor:
        lw = self._client_log_weights(client)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return _base.weighted_log_prob(self, X, lw, what)

    def score_samples(self, X, client=None):
        """``log p_c(x)`` under client ``client``'s weights (pooled weights if None)."""
        return torch.logsumexp(self._weighted_log_prob(X, client), 1).cpu().numpy()

    def score(self, X, y=None, client=None):
        return float(self.score_samples(X, client=client).mean())

    def predict_proba(self, X, client=None):
        wlp = self._weighted_log_prob(X, client, "predict_proba")
        return torch.exp(wlp - torch.logsumexp(wlp, 1, keepdim=True)).cpu().numpy()

    def predict(self, X, client=None):
        return self._weighted_log_prob(X, client, "predict").argmax(1).cpu().numpy()

    def to_pyro(self, client=None):
        """``MixtureSameFamily`` of client ``client`` (pooled weights if None); frozen."""
        check_is_fitted(self)
        w = torch.exp(self._client_log_weights(client))
        return _base.pyro_mixture(_base.params_from_numpy(self), w)

    def novelty_score(self, X, client=None):
        """``-log p_c(x)``: larger means more novel (use as the positive-class score)."""
        return -self.score_samples(X, client=client)

    def adapt(self, X, client=None, tol=1e-8):
        """Add a new client: closed-form EM on its weights only; components stay fixed.

        Starts from the pooled weights and iterates ``pi <- mean_i r_i(pi)`` (at most
        ``adapt_max_iter`` times, until the log-likelihood changes by less than ``tol``).
        The new client is ``client`` (default: the next integer id).  Returns self.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        if X.shape[0] == 0:
            raise ValueError("adapt() needs at least one sample of the new client.")
        client = _base.new_client_id(self.client_ids_, client)
        params = _base.params_from_numpy(self)
        Xt = torch.tensor(X, device=self.device_, dtype=self.dtype_)
        logp = _base.check_finite_log_density(self, log_gaussian_prob(Xt, params), X, "adapt")
        lw = torch.log(torch.tensor(self.weights_, device=self.device_, dtype=self.dtype_))
        prev = -np.inf
        for _ in range(self.adapt_max_iter):
            wlp = logp + lw
            norm = torch.logsumexp(wlp, 1, keepdim=True)
            ll = float(norm.mean())
            lw = log_weights_from(torch.exp(wlp - norm).sum(0))
            if abs(ll - prev) < tol:
                break
            prev = ll
        self.client_ids_ = [*self.client_ids_, client]
        new_w = lw.exp().cpu().numpy().astype(self.client_weights_.dtype)
        self.client_weights_ = np.vstack([self.client_weights_, new_w])
        self.client_n_samples_ = np.append(self.client_n_samples_, X.shape[0])
        self.n_clients_ = len(self.client_ids_)
        return self

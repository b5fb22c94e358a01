"""SDPKMeans: the Peng–Wei SDP relaxation of K-means."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._persist import Fitted
from probest._validation import check_finite_rows
from probest.base import EstimatorSpec
from probest.cluster._base import SDP_CONSTRAINTS, _SDPClusterBase


class SDPKMeans(_SDPClusterBase):
    """K-means by its semidefinite relaxation (Peng & Wei, 2007).

    Solves ``min <D/2, Z>`` (``D`` the squared distances; equivalently ``max <X X^T, Z>``)
    over ``Z`` PSD, ``Z >= 0`` entrywise, ``Z 1 = 1``, ``tr Z = K``; a partition
    ``G_1..G_K`` is the feasible point ``sum_k 1_{G_k} 1_{G_k}^T / |G_k|`` with objective
    its K-means inertia.  Above a sharp separation threshold the relaxation's unique
    solution is that of the true partition.  Labels are rounded by K-means on the rows of
    the solution's top-``K`` eigenvectors.

    Solvers: ``"cvxpy"`` (the SDP as written, SCS; n up to ~250), ``"nlr"`` (nonnegative
    low-rank Burer–Monteiro ``Z = U U^T``, ``U >= 0`` of rank ``rank``, augmented Lagrangian
    in torch, ``O(n p r)`` per step: no ``n x n`` matrix), ``"sketch"`` (nlr on a random
    subsample of ``sketch_size`` rows, then every row goes to its nearest centre) and
    ``"auto"`` (cvxpy up to 60 rows, nlr above).

    Parameters
    ----------
    n_clusters : int, default=3
        Number of clusters ``K``.
    solver : {"auto", "cvxpy", "nlr", "sketch"}, default="auto"
        How the SDP is solved (see above).
    rank : int, optional
        Columns of the nlr factor (default ``max(2, min(2K, K + 5))``).
    sdp_max_iter : int, default=300
        Augmented-Lagrangian (multiplier) updates of nlr.
    sdp_tol : float, default=1e-5
        nlr stops when ``max |Z 1 - 1|`` and the relative step fall below it.
    penalty : float, default=10.0
        Augmented-Lagrangian penalty of nlr (on the rescaled problem).
    sketch_size : int, default=1000
        Rows of the subsample with ``solver="sketch"``.
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds nlr's start, the sketch and the rounding.
    verbose : int, default=0
        0 silent, 1 a progress bar, 2 also one line per multiplier update.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Torch device of nlr.
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of nlr.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster of each training sample.
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Mean of each cluster (``means_`` too).
    inertia_ : float
        Within-cluster sum of squares of ``labels_``.
    objective_ : float
        The relaxed objective ``<D/2, Z>`` on the internally rescaled data (``X`` divided
        by its overall standard deviation).
    membership_ : ndarray of shape (1, n_samples, rank)
        A factor of the relaxed membership matrix, ``Z ~ membership_[0] @ membership_[0].T``.
    certificate_ : dict
        ``objective``, ``constraint_violation`` (``max |Z 1 - 1|``), ``trace_violation``,
        ``min_entry`` and, for nlr with ``n <= 3000``, ``dual_bound`` (a valid lower bound
        on the SDP optimum from a dual-feasible point) and ``gap`` (relative to it).
    weights_, means_, covariances_ : ndarray
        The isotropic Gaussian mixture K-means fits (common variance ``inertia / (n p)``).
    solver_ : str
        The solver used.
    converged_ : bool
        Whether the solver reached its tolerance.
    n_iter_ : int
        Multiplier updates of nlr (1 for cvxpy).
    history_ : list of dict
        One record per multiplier update (``objective``, ``violation``, ``time``).

    Examples
    --------
    >>> import numpy as np
    >>> from probest.cluster import SDPKMeans
    >>> from probest.metrics import misclustering_error
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([0, 1, 2], 30)
    >>> X = np.array([[0, 0], [6, 0], [0, 6]])[y] + rng.normal(size=(90, 2))
    >>> km = SDPKMeans(3, solver="nlr", random_state=0).fit(X)
    >>> misclustering_error(y, km.labels_)
    0.0
    >>> km.certificate_["constraint_violation"] < 1e-4
    True
    """

    _spec = EstimatorSpec(outputs=("predict", "score_samples"))
    _constraints = SDP_CONSTRAINTS
    _fitted_attributes = (
        Fitted("labels_", ndim=1), Fitted("cluster_centers_", ndim=2, finite=True),
        "inertia_", "objective_", Fitted("membership_", ndim=3, finite=True), "certificate_",
        Fitted("weights_", ndim=1, finite=True), Fitted("means_", ndim=2, finite=True),
        Fitted("covariances_", ndim=3, finite=True), "solver_", "converged_", "n_iter_")

    def __init__(self, n_clusters=3, *, solver="auto", rank=None, sdp_max_iter=300,
                 sdp_tol=1e-5, penalty=10.0, sketch_size=1000, random_state=None, verbose=0,
                 device="auto", dtype="float64"):
        self._store_params(locals())

    def fit(self, X, y=None):
        """Solve the SDP, round it to ``labels_`` and fit the cluster means."""
        self._validate_params()
        X = self._check_X(X)
        n, p = X.shape
        with self._fit_context() as ctx:
            Xs = self._rescale(X)
            solver = self._resolve_solver(n)
            rows = np.arange(n)
            if solver == "sketch" and n > self.sketch_size:
                rows = np.sort(ctx.rng.choice(n, self.sketch_size, replace=False))
            with self._progress(self.sdp_max_iter, "SDP K-means") as prog:
                def log(it, obj, viol):
                    prog.log(objective=obj, violation=viol)
                res = self._peng_wei(Xs[torch.as_tensor(rows, device=Xs.device)],
                                     "cvxpy" if solver == "cvxpy" else "nlr", ctx, log=log)
                if not self.history_:
                    prog.log(objective=res["objective"], violation=res["certificate"][
                        "constraint_violation"])
            labels = res["labels"]
            if rows.shape[0] < n:  # sketch-and-lift: every row to its nearest centre
                C = np.stack([X[rows][labels == k].mean(0) for k in range(self.n_clusters)])
                labels = ((X[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
        self._finish(X, labels, res, solver)
        return self

    def _finish(self, X, labels, res, solver) -> None:
        K, (n, p) = self.n_clusters, X.shape
        C = np.stack([X[labels == k].mean(0) if np.any(labels == k) else X.mean(0)
                      for k in range(K)])
        self.labels_ = labels.astype(np.int64)
        self.cluster_centers_ = C
        self.inertia_ = float(((X - C[labels]) ** 2).sum())
        var = max(self.inertia_ / (n * p), 1e-12 * float(np.var(X)) + 1e-300)
        self._set_mixture(X, labels, C.copy(), np.stack([var * np.eye(p)] * K))
        self.objective_ = float(res["objective"])
        self.membership_ = np.asarray(res["U"], dtype=np.float64)
        self.certificate_ = res["certificate"]
        self.solver_ = solver
        self.converged_ = bool(res["converged"])
        self.n_iter_ = int(res["n_iter"])
        if not self.converged_:
            warnings.warn(f"SDPKMeans: the {solver} solver did not reach its tolerance "
                          f"(max |Z1 - 1| = {self.certificate_['constraint_violation']:.2g}); "
                          "increase sdp_max_iter.", ConvergenceWarning, stacklevel=3)

    def predict(self, X):
        """Nearest cluster centre of each sample (the K-means rule)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            d = ((X[:, None, :] - self.cluster_centers_[None]) ** 2).sum(-1)
        check_finite_rows(d, owner="SDPKMeans", what="predict", X=X)
        return d.argmin(1)

"""Data and initialisation pieces of EM, shared by every mixture estimator.

A client's rows are a :class:`ChunkedData` (streamed in chunks when ``batch_size`` is set);
the initialisation helpers (k-means centres, local summaries, nearest-centre or random
statistics) run on them.  The EM loop itself is :func:`probest.mixture._driver.run_driver`
(one client for ``GaussianMixture``, several for the federated estimators).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch

from probest.mixture._stats import SuffStats, stats_from_resp

#: rows of (n, K*d) work per chunk: small enough to stay in cache on CPU.
_CPU_CHUNK_ELEMS = 2**19
_GPU_CHUNK_ELEMS = 2**26


class ChunkedData:
    """One client's data, iterated as ``(X_chunk, w_chunk | None)`` tensors on ``device``.

    Without ``batch_size`` the array is copied to the device once and cut into cache-sized
    chunks; with ``batch_size`` it stays on the host (a numpy array or memmap) and each
    chunk is copied when it is used, so device memory holds one chunk at a time.
    """

    def __init__(self, X: np.ndarray, sample_weight=None, *, device, dtype, batch_size=None,
                 width: int = 1):
        self.host = X
        self.n_samples, self.n_features = X.shape
        self.device, self.dtype = device, dtype
        self.streamed = batch_size is not None
        per_row = max(int(width), 1)
        budget = _GPU_CHUNK_ELEMS if torch.device(device).type == "cuda" else _CPU_CHUNK_ELEMS
        auto = max(256, budget // per_row)
        self.chunk = int(min(batch_size, auto) if self.streamed else auto)
        self._w_host = None if sample_weight is None else np.asarray(sample_weight, float)
        #: per-chunk derived features reused across EM iterations (see e_step_stats)
        self.cache = None if self.streamed else {}
        if self.streamed:
            self._X = None
            self._w = None
        else:
            self._X = torch.tensor(np.asarray(X), device=device, dtype=dtype)
            self._w = (None if sample_weight is None else
                       torch.tensor(self._w_host, device=device, dtype=dtype))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        for s in range(0, self.n_samples, self.chunk):
            e = min(s + self.chunk, self.n_samples)
            if self.streamed:
                X = torch.tensor(np.asarray(self.host[s:e]), device=self.device, dtype=self.dtype)
                w = (None if self._w_host is None else
                     torch.tensor(self._w_host[s:e], device=self.device, dtype=self.dtype))
            else:
                X = self._X[s:e]
                w = None if self._w is None else self._w[s:e]
            yield X, w

    def sample_rows(self, max_rows: int | None, rng: np.random.Generator) -> np.ndarray:
        """Host rows for initialisation (all of them, or a uniform subsample)."""
        return self.sample_rows_weighted(max_rows, rng)[0]

    def sample_rows_weighted(self, max_rows: int | None, rng: np.random.Generator):
        """``(rows, sample_weight | None)`` for initialisation (the same draw as
        :meth:`sample_rows`)."""
        w = self._w_host
        if max_rows is None or self.n_samples <= max_rows:
            return np.asarray(self.host), w
        idx = np.sort(rng.choice(self.n_samples, size=max_rows, replace=False))
        return np.asarray(self.host[idx]), (None if w is None else w[idx])


# ----------------------------------------------------------------------------- init
def _kmeans_centers(X, K, method, seed, sample_weight=None) -> np.ndarray:
    from sklearn.cluster import KMeans, kmeans_plusplus

    seed = int(seed) % (2**32 - 1)

    if method == "kmeans":
        km = KMeans(n_clusters=K, n_init=1, random_state=seed)
        return km.fit(X, sample_weight=sample_weight).cluster_centers_
    if method == "k-means++":
        return kmeans_plusplus(X, K, random_state=seed, sample_weight=sample_weight)[0]
    # random_from_data: K distinct rows (weighted by mass for summaries)
    rng = np.random.default_rng(seed)
    p = None if sample_weight is None else sample_weight / sample_weight.sum()
    return X[rng.choice(X.shape[0], size=K, replace=False, p=p)]


def client_summary(X: np.ndarray, K: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """What a client sends for initialisation: centres and sizes of a local k-means."""
    from sklearn.cluster import KMeans

    k = min(K, X.shape[0])
    with warnings.catch_warnings():
        # a client with fewer distinct points than K is fine: empty clusters are dropped
        warnings.filterwarnings("ignore", message="Number of distinct clusters")
        km = KMeans(n_clusters=k, n_init=1, random_state=int(seed) % (2**32 - 1)).fit(X)
    counts = np.bincount(km.labels_, minlength=k).astype(float)
    keep = counts > 0
    return km.cluster_centers_[keep], counts[keep]


def centers_from_summaries(summaries, K: int, method: str, seed: int) -> np.ndarray:
    """Server side: run the initialisation method on the mass-weighted client summaries."""
    C = np.concatenate([s[0] for s in summaries])
    w = np.concatenate([s[1] for s in summaries])
    if C.shape[0] < K:
        raise ValueError(
            f"n_components={K} exceeds the {C.shape[0]} distinct client summaries; "
            "use fewer components."
        )
    return _kmeans_centers(C, K, method, seed, sample_weight=w)


def hard_stats(data: ChunkedData, centers: torch.Tensor, ref, cov_type) -> SuffStats:
    """Statistics of a nearest-centre (one-hot) assignment."""
    total = None
    K = centers.shape[0]
    for X, w in data:
        lab = torch.cdist(X, centers).argmin(1)
        resp = torch.nn.functional.one_hot(lab, K).to(X.dtype)
        st = stats_from_resp(X, resp, ref, cov_type, w)
        total = st if total is None else total + st
    return total


def random_stats(data: ChunkedData, K: int, ref, cov_type, gen: torch.Generator) -> SuffStats:
    """Statistics of uniform random responsibilities (scikit-learn's ``init_params='random'``)."""
    total = None
    for X, w in data:
        r = torch.rand(X.shape[0], K, generator=gen, device=X.device, dtype=X.dtype)
        st = stats_from_resp(X, r / r.sum(1, keepdim=True), ref, cov_type, w)
        total = st if total is None else total + st
    return total


def _data_sum(clients):
    tot, n = None, 0.0
    for cl in clients:
        for X, w in cl:
            s = X.sum(0) if w is None else (X * w.unsqueeze(1)).sum(0)
            tot = s if tot is None else tot + s
            n += float(X.shape[0]) if w is None else float(w.sum())
    return tot, n


# ------------------------------------------------------------------------------ weights
def log_weights_from(nk: torch.Tensor) -> torch.Tensor:
    nk = nk + 10 * torch.finfo(nk.dtype).eps
    return torch.log(nk / nk.sum())

"""``GaussianMixture.select``: every (n_components, covariance_type) candidate in one batched EM.

A loop of separate fits repeats, per candidate, the input validation, the copy to the
device, the k-means initialisation and one pass over the data per EM iteration.  Here the
data are validated and copied once; candidates with the same ``n_components`` share one
k-means run (the centres do not depend on the covariance type, exactly as in separate fits
with the same ``random_state``); and each EM iteration makes one pass over the data for
all active candidates: the components of all full/tied candidates are stacked into one
``(d, sum K * d)`` matrix product (tied ones as ``K`` copies of their factor), those of all
diag/spherical candidates into one ``(2d, sum K)`` product, and the statistics of the
stacked responsibilities are one more product each.  A candidate leaves the batch when it
converges.  Results equal the separate fits up to floating-point summation order.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probest._torch import draw_seed
from probest._validation import check_sample_weight, check_scale
from probest.mixture import _base
from probest.mixture._em import ChunkedData, _data_sum, _kmeans_centers, hard_stats, random_stats
from probest.mixture._stats import (
    COVARIANCE_TYPES,
    GaussParams,
    SuffStats,
    log_gaussian_prob,
    m_step,
    n_parameters,
    stats_from_resp,
)

CRITERIA = ("bic", "aic", "heldout")


class _Run:
    """One candidate start: its parameters and EM bookkeeping."""

    def __init__(self, K, ct, init, params, weights):
        self.K, self.ct, self.init = K, ct, init
        self.params, self.log_w = params, torch.log(weights)
        self.weights = weights
        self.bound, self.bounds, self.n_iter, self.converged = -math.inf, [], 0, False

    @property
    def group(self) -> str:
        return "F" if self.ct in ("full", "tied") else "D"


def _stacked(runs, group):
    """Stacked components of ``runs`` (one group) as one GaussParams plus log weights."""
    means = torch.cat([r.params.means for r in runs])
    pcs = []
    for r in runs:
        pc, K, d = r.params.precisions_cholesky, r.K, r.params.means.shape[1]
        if r.ct == "tied":
            pc = pc.expand(K, d, d)
        elif r.ct == "spherical":
            pc = pc.unsqueeze(1).expand(K, d)
        pcs.append(pc)
    pc = torch.cat(pcs)
    ct = "full" if group == "F" else "diag"
    return GaussParams(means, None, pc, ct), torch.cat([r.log_w for r in runs])


def _segment_softmax(lp, seg, n_seg):
    """Per-segment ``logsumexp`` ``(n, n_seg)`` and softmax ``(n, sum K)`` of the stacked
    log joints ``lp`` (``seg[j]`` = the run of column ``j``): a segment max, one exp and one
    product with the segment indicator, instead of a slice per run."""
    idx = seg.expand(lp.shape[0], -1)
    M = lp.new_full((lp.shape[0], n_seg), -math.inf).scatter_reduce(
        1, idx, lp, "amax", include_self=True)
    M = torch.where(torch.isfinite(M), M, torch.zeros_like(M))
    e = torch.exp(lp - M[:, seg])
    onehot = torch.nn.functional.one_hot(seg, n_seg).to(lp.dtype)
    S = e @ onehot
    return M + torch.log(S), e / S[:, seg]


def _batched_pass(data, runs, ref, with_stats=True):
    """One pass over ``data`` for ``runs``: per run SuffStats (or log-likelihood sums)."""
    out = {id(r): None for r in runs}
    groups = {g: [r for r in runs if r.group == g] for g in ("F", "D")}
    stacked = {}
    for g, rs in groups.items():
        if rs:
            params, lw = _stacked(rs, g)
            seg = torch.cat([torch.full((r.K,), i, dtype=torch.long, device=lw.device)
                             for i, r in enumerate(rs)])
            stacked[g] = (params, lw, seg)
    acc = {g: None for g in stacked}  # the stacked statistics (or log-likelihoods) per group
    for X, w in data:
        for g, (params, lw, seg) in stacked.items():
            norm, resp = _segment_softmax(log_gaussian_prob(X, params) + lw, seg, len(groups[g]))
            lls = norm.sum(0) if w is None else w @ norm
            st = stats_from_resp(X, resp, ref, params.covariance_type, w) if with_stats else None
            if acc[g] is not None:
                lls = lls + acc[g][1]
                st = None if st is None else st + acc[g][0]
            acc[g] = (st, lls)
    for g, total in acc.items():  # split the group's sums per run once, after the pass
        if total is None:
            continue
        st, lls = total
        if st is None:
            for i, r in enumerate(groups[g]):
                out[id(r)] = lls[i]
            continue
        start = 0
        for i, r in enumerate(groups[g]):
            sl = slice(start, start + r.K)
            start += r.K
            s2 = st.s2[sl].sum(0) if r.ct == "tied" else st.s2[sl]
            out[id(r)] = SuffStats(st.n, st.nk[sl], st.s1[sl], s2, lls[i])
    return out


def _initial_runs(data, ks, cts, n_init, method, seed, gen, ref, reg_covar):
    runs = []
    rows, rw = data.sample_rows_weighted(None, np.random.default_rng(seed))
    for K in ks:
        for init in range(n_init):
            if method == "random":
                per_ct = {ct: random_stats(data, K, ref, ct, gen) for ct in cts}
            else:
                c = _kmeans_centers(rows, K, method, seed + init, sample_weight=rw)
                c = torch.as_tensor(np.asarray(c), device=ref.device, dtype=ref.dtype)
                per_ct = _hard_stats_per_type(data, c, ref, cts)
            for ct in cts:
                weights, params, _ = m_step(per_ct[ct], ref, ct, reg_covar)
                runs.append(_Run(K, ct, init, params, weights))
    return runs


def _hard_stats_per_type(data, centers, ref, cts):
    """The nearest-centre statistics for every covariance type from one pass: the full
    second moments give tied (their sum over components: the one-hot rows sum to one) and
    diag / spherical (their diagonals); without full or tied, diag is the one computed."""
    base = "full" if {"full", "tied"} & set(cts) else "diag"
    st = hard_stats(data, centers, ref, base)
    out = {}
    for ct in cts:
        if ct == base:
            out[ct] = st
        elif ct == "tied":
            out[ct] = SuffStats(st.n, st.nk, st.s1, st.s2.sum(0), st.loglik)
        elif base == "full":  # diag, spherical
            out[ct] = SuffStats(st.n, st.nk, st.s1, torch.diagonal(st.s2, dim1=1, dim2=2),
                                st.loglik)
        else:
            out[ct] = st
    return out


def _em(data, runs, ref, reg_covar, max_iter, tol):
    active = list(runs)
    for _ in range(max_iter):
        if not active:
            break
        stats = _batched_pass(data, active, ref)
        still = []
        for r in active:
            st = stats[id(r)]
            prev = r.bound
            r.weights, r.params, _ = m_step(st, ref, r.ct, reg_covar, previous=r.params)
            r.log_w = torch.log(r.weights)
            r.bound = float(st.loglik / st.n)
            r.bounds.append(r.bound)
            r.n_iter += 1
            if abs(r.bound - prev) < tol:
                r.converged = True
            else:
                still.append(r)
        active = still


def select(cls, X, n_components, covariance_type, *, criterion="bic",
           validation_fraction=0.2, sample_weight=None, **params):
    """See :meth:`GaussianMixture.select`."""
    ks = sorted({int(k) for k in ([n_components] if np.isscalar(n_components)
                                  else n_components)})
    cts = [covariance_type] if isinstance(covariance_type, str) else list(covariance_type)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    if not ks or ks[0] < 1 or not cts or any(c not in COVARIANCE_TYPES for c in cts):
        raise ValueError(f"n_components must be ints >= 1 and covariance_type a subset of "
                         f"{COVARIANCE_TYPES}; got {n_components!r}, {covariance_type!r}.")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}.")
    for name in ("weights_init", "means_init", "precisions_init"):
        if params.get(name) is not None:
            raise ValueError(f"select fits several n_components: {name} cannot be given.")
    proto = cls(n_components=ks[0], covariance_type=cts[0], **params)
    proto._validate_params()
    Xh, device = proto._check_X(X, reset=True, min_samples=2)
    if np.isnan(Xh).any():
        raise ValueError("select does not take missing values; fit missing='marginalize' "
                         "candidates one by one.")
    w = check_sample_weight(sample_weight, Xh.shape[0])
    train = np.arange(Xh.shape[0])
    val = None
    if criterion == "heldout":
        perm = np.random.default_rng(draw_seed(proto.random_state)).permutation(Xh.shape[0])
        n_val = max(1, int(round(validation_fraction * Xh.shape[0])))
        val, train = np.sort(perm[:n_val]), np.sort(perm[n_val:])
    if len(train) < ks[-1]:
        raise ValueError(f"Expected n_samples >= n_components but got n_components = "
                         f"{ks[-1]}, n_samples = {len(train)}; reduce n_components.")
    with proto._fit_context() as ctx:
        proto._resolve(Xh, device)
        check_scale(Xh, owner=cls.__name__, dtype=proto.dtype_)
        wt = None if w is None else w[train]
        width = max(sum(ks) * Xh.shape[1] * len(cts), 1)
        data = ChunkedData(Xh[train], wt, device=proto.device_, dtype=proto.dtype_,
                           batch_size=proto.batch_size, width=width)
        tot, cnt = _data_sum([data])
        ref = tot / cnt
        runs = _initial_runs(data, ks, cts, proto.n_init, proto.init_params,
                             proto._init_seed(ctx), ctx.generator, ref, proto.reg_covar)
        _em(data, runs, ref, proto.reg_covar, proto.max_iter, proto.tol)
        best = {}
        for r in runs:  # best start per candidate (n_init)
            key = (r.K, r.ct)
            if key not in best or r.bound > best[key].bound:
                best[key] = r
        cands = list(best.values())
        if criterion == "heldout":
            vd = ChunkedData(Xh[val], None if w is None else w[val], device=proto.device_,
                             dtype=proto.dtype_, batch_size=proto.batch_size, width=width)
            n_eval = float(len(val)) if w is None else float(w[val].sum())
        else:
            vd, n_eval = data, cnt
        ll = _batched_pass(vd, cands, ref, with_stats=False)
    d = Xh.shape[1]
    table = {"n_components": [], "covariance_type": [], "criterion": [], "score": [],
             "n_iter": [], "converged": []}
    for r in cands:
        total = float(ll[id(r)])
        p = n_parameters(r.K, d, r.ct)
        n_rows = len(train) if w is None else n_eval
        score = {"bic": -2 * total + p * math.log(n_rows), "aic": -2 * total + 2 * p,
                 "heldout": total / n_eval}[criterion]
        for k, v in (("n_components", r.K), ("covariance_type", r.ct),
                     ("criterion", criterion), ("score", score), ("n_iter", r.n_iter),
                     ("converged", r.converged)):
            table[k].append(v)
    scores = np.asarray(table["score"])
    i = int(np.argmax(scores) if criterion == "heldout" else np.argmin(scores))
    win = cands[i]
    est = cls(n_components=win.K, covariance_type=win.ct, **params)
    if criterion == "heldout":  # refit the winner on every row
        est.fit(X, sample_weight=sample_weight)
    else:
        _adopt(est, proto, win, device)
    table["best"] = [j == i for j in range(len(cands))]
    est.selection_ = table
    return est


def _adopt(est, proto, run, device) -> None:
    """Fitted attributes of ``est`` from a batched run (as its own ``fit`` would set)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from probest.mixture import _xp

    for name in ("n_features_in_", "feature_names_in_", "device_", "dtype_"):
        if hasattr(proto, name):
            setattr(est, name, getattr(proto, name))
    _base.params_to_numpy(est, run.params, run.weights)
    est.converged_, est.n_iter_ = bool(run.converged), int(run.n_iter)
    est.lower_bound_, est.lower_bounds_ = float(run.bound), list(run.bounds)
    est.history_ = [{"objective": b, "init": run.init} for b in run.bounds]
    if device is not None:  # a torch input in array API mode
        _xp.to_torch_attributes(est, device)
    if not est.converged_ and est.max_iter > 0:
        warnings.warn("Best performing initialization did not converge. Try different init "
                      "parameters, or increase max_iter, tol, or check for degenerate data.",
                      ConvergenceWarning, stacklevel=3)


def plot_selection(est, ax=None):
    """The criterion against n_components, one line per covariance type, winner marked."""
    import matplotlib.pyplot as plt

    table = getattr(est, "selection_", None)
    if table is None:
        raise ValueError("plot_selection needs the estimator returned by "
                         "GaussianMixture.select.")
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    ks, cts = np.asarray(table["n_components"]), np.asarray(table["covariance_type"])
    scores = np.asarray(table["score"], float)
    for ct in dict.fromkeys(cts):
        m = cts == ct
        order = np.argsort(ks[m])
        ax.plot(ks[m][order], scores[m][order], marker="o", label=ct)
    b = int(np.flatnonzero(table["best"])[0])
    ax.plot([ks[b]], [scores[b]], marker="*", ms=14, color="k", ls="", label="selected")
    ax.set_xlabel("n_components")
    ax.set_ylabel(table["criterion"][0])
    ax.legend()
    return ax

"""probest.mixture vs scikit-learn: time per EM iteration, final log-likelihood, peak memory.

Same data, same initial parameters (weights/means/precisions from one k-means start, passed
to both as *_init; init_params="random" keeps the overridden initialisation cheap), tol=0
so both run exactly the requested iterations.  Time per iteration: time stamps after every
M-step (sklearn: a subclass hooking ``_m_step``; probest: ``history_``), median over three
interleaved fits of each (the machine is shared).  Peak memory: peak resident set size
above the level before the fit, sampled every 2 ms (sees torch and numpy allocations),
measured in a fresh child process per fit so that memory freed by earlier fits is not
reused and hidden.
Also: federated EM over 10 clients (local engine) vs pooled EM, per iteration; the
float32 path; GFLOP/s (nominal 4 n K d^2 flops per full-covariance iteration, the issue's
accounting) against a plain GEMM of the E-step's shape measured in the same run; the
``partial_fit`` stream (passes over chunks: time and final log-likelihood vs the batch
fit); the missing-data comparison (20% MCAR: parameter error of ``missing="marginalize"``
vs mean-imputation + scikit-learn, both against the complete-data fit); and the cost of
``GaussianMixture.select`` vs the loop of separate fits it replaces.

    OMP_NUM_THREADS=1 python benchmarks/bench_mixture.py            # n=200k, d=16, K=16
    OMP_NUM_THREADS=1 python benchmarks/bench_mixture.py --quick    # n=20k
    OMP_NUM_THREADS=1 python benchmarks/bench_mixture.py --only stream,missing,select
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGMM

from probest.mixture import FederatedGaussianMixture, GaussianMixture


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    def __enter__(self):
        self.base = self.peak = _rss()
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop:
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, _rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


class TimedSkGMM(SkGMM):
    """scikit-learn's GaussianMixture, recording a time stamp after every M-step."""

    def _m_step(self, X, log_resp, **kw):
        super()._m_step(X, log_resp, **kw)
        self.stamps_.append(time.perf_counter())

    def fit(self, X, y=None):
        self.stamps_ = [time.perf_counter()]
        return super().fit(X, y)


def per_iter(est) -> np.ndarray:
    """Seconds of each EM iteration (E-step + M-step), initialisation excluded."""
    if isinstance(est, TimedSkGMM):
        t = np.asarray(est.stamps_[1:])  # first stamp = the init M-step
    else:
        t = np.asarray([h["time"] for h in est.history_])
    return np.diff(t)


def timed_fits(makers: dict, X, iters, rounds=3):
    """Median seconds/iteration of each maker, fits interleaved ``rounds`` times (the
    machine is shared, so medians over interleaved runs), and peak memory of one fit."""
    times = {k: [] for k in makers}
    mem, ests = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for r in range(rounds):
            for k, make in makers.items():
                with PeakRSS() as m:
                    ests[k] = make(1 + iters).fit(X)
                times[k].extend(per_iter(ests[k]).tolist())
                if r == 0:
                    mem[k] = m.mib
    return ests, {k: float(np.median(v)) for k, v in times.items()}, mem


def make_data(n, d=16, K=16):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, d)) + 3.0 * rng.normal(size=(K, d))[rng.integers(0, K, n)]


def _mem_child(kind: str, cov: str, n: int, iters: int) -> None:
    """Child process: one fit, print its peak RSS increase in MiB."""
    torch.set_num_threads(1)
    K = 16
    X = make_data(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init = SkGMM(K, covariance_type=cov, max_iter=1, random_state=0).fit(X[:20_000])
        kw = dict(covariance_type=cov, weights_init=init.weights_, means_init=init.means_,
                  precisions_init=init.precisions_, tol=0.0, init_params="random",
                  random_state=0, max_iter=1 + iters)
        make = (lambda **k: SkGMM(K, **k)) if kind == "sk" else (
            lambda **k: GaussianMixture(K, device="cpu", **k))
        make(**{**kw, "max_iter": 1}).fit(X[:2000])  # warm-up: library start-up allocations
        est = make(**kw)
        with PeakRSS() as m:
            est.fit(X)
    print(f"{m.mib:.1f}")


def child_peak_mib(kind, cov, n, iters) -> float:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, __file__, "--mem-child", kind, cov, "--n", str(n),
                          "--iters", str(iters)], capture_output=True, text=True, check=True,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--mem-child", nargs=2, metavar=("KIND", "COV"), help=argparse.SUPPRESS)
    ap.add_argument("--only", default="speed,federated,float32,stream,missing,select",
                    help="comma-separated sections")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    n, d, K = (20_000 if a.quick else a.n), 16, 16
    iters = 3 if a.quick else a.iters
    if a.mem_child:
        return _mem_child(a.mem_child[0], a.mem_child[1], n, iters)
    only = set(a.only.split(","))
    X = make_data(n, d, K)

    if "speed" in only:
        _speed(X, n, d, K, iters)
    if "federated" in only:
        _federated(X, K, iters)
    run_extra(only, X, K, iters, quick=a.quick)


def _same_start(X, K, cov):
    """Fit parameters for probest and scikit-learn that start EM from the same point."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init = SkGMM(K, covariance_type=cov, max_iter=1, random_state=0).fit(X[:20_000])
    return dict(covariance_type=cov, weights_init=init.weights_, means_init=init.means_,
                precisions_init=init.precisions_, tol=0.0, init_params="random", random_state=0)


def _speed(X, n, d, K, iters):
    print(f"n={n} d={d} K={K}, {iters} EM iterations after identical initialisation, "
          f"1 thread, torch {torch.__version__}\n")
    print("| covariance | sklearn s/iter | probest s/iter | speed-up | sklearn loglik | "
          "probest loglik | sklearn peak MiB | probest peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for cov in ("full", "diag"):
        kw = _same_start(X, K, cov)
        ests, t, _ = timed_fits({
            "sk": lambda m, kw=kw: TimedSkGMM(K, max_iter=m, **kw),
            "pb": lambda m, kw=kw: GaussianMixture(K, max_iter=m, device="cpu", **kw),
        }, X, iters)
        mem = {k: child_peak_mib(k, cov, n, iters) for k in ("sk", "pb")}
        print(f"| {cov} | {t['sk']:.3f} | {t['pb']:.3f} | {t['sk'] / t['pb']:.2f}x | "
              f"{ests['sk'].score(X):.6f} | {ests['pb'].score(X):.6f} | {mem['sk']:.0f} | "
              f"{mem['pb']:.0f} |")


def _federated(X, K, iters):
    """Federated overhead: 10 clients, local engine, vs pooled (probest, full covariance)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init = SkGMM(K, max_iter=1, random_state=0).fit(X[:20_000])
    kw = dict(weights_init=init.weights_, means_init=init.means_,
              precisions_init=init.precisions_, tol=0.0, device="cpu", init_params="random",
              random_state=0)
    parts = np.array_split(X, 10)

    makers = {
        "pooled": lambda m: GaussianMixture(K, max_iter=m, **kw),
        "fed": lambda m: _OnParts(FederatedGaussianMixture(K, max_iter=m, personalize=False,
                                                           **kw), parts),
        "pers": lambda m: _OnParts(FederatedGaussianMixture(K, max_iter=m, personalize=True,
                                                            **kw), parts),
    }
    _, t, _ = timed_fits(makers, X, iters)
    print("\n| pooled s/iter | federated (10 clients) s/iter | overhead | "
          "personalised s/iter |")
    print("|---|---|---|---|")
    print(f"| {t['pooled']:.3f} | {t['fed']:.3f} | {t['fed'] / t['pooled'] - 1:+.1%} | "
          f"{t['pers']:.3f} |")


def _gemm_gflops(n, d, K, dtype=torch.float64, reps=3, chunk=None) -> float:
    """GFLOP/s of a plain GEMM of the E-step's shape, (n, d) @ (d, K d), in this run; with
    ``chunk``, in row blocks of that size into one reused output (the cache-sized blocks
    probest's E-step works in: 2**19 / (K d) rows), else as one product whose (n, K d) output
    makes it memory-bound."""
    A = torch.randn(n, d, dtype=dtype)
    B = torch.randn(d, K * d, dtype=dtype)
    if chunk is None:
        def prod():
            A @ B
    else:
        out = torch.empty(chunk, K * d, dtype=dtype)

        def prod():
            for s in range(0, n - chunk + 1, chunk):
                torch.matmul(A[s:s + chunk], B, out=out)
    prod()
    t = time.perf_counter()
    for _ in range(reps):
        prod()
    rows = n if chunk is None else (n // chunk) * chunk
    return 2 * rows * d * K * d / ((time.perf_counter() - t) / reps) / 1e9


def run_extra(only, X, K, iters, quick=False):
    n, d = X.shape
    nominal = 4 * n * K * d * d / 1e9  # GFLOP per full-covariance iteration (issue's count)
    if "float32" in only:
        print(f"\n### float32 path and GFLOP/s (n={n}, d={d}, K={K}; nominal {nominal:.2f} "
              "GFLOP per full iteration)\n")
        print("| covariance | sklearn f64 s/iter | probest f64 s/iter | probest f32 s/iter | "
              "f64 speed-up | f32 speed-up | sklearn f64 GFLOP/s | probest f64 GFLOP/s | "
              "GEMM f64 GFLOP/s (one product / cache-sized row blocks) | loglik f64 - sklearn | "
              "loglik f32 - sklearn |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        X32 = X.astype(np.float32)
        for cov in ("full", "diag"):
            kw = _same_start(X, K, cov)
            makers = {
                "sk": lambda m, kw=kw: TimedSkGMM(K, max_iter=m, **kw),
                "pb": lambda m, kw=kw: GaussianMixture(K, max_iter=m, device="cpu", **kw),
            }
            ests, t, _ = timed_fits(makers, X, iters, rounds=2)
            e32, t32, _ = timed_fits({"pb32": lambda m, kw=kw: GaussianMixture(
                K, max_iter=m, device="cpu", **kw)}, X32, iters, rounds=2)
            gemm = _gemm_gflops(n, d, K)
            gemm_blocks = _gemm_gflops(n, d, K, chunk=max(256, 2**19 // (K * d)))
            flops = nominal if cov == "full" else 4 * n * K * d / 1e9
            sk_ll = ests["sk"].score(X)
            print(f"| {cov} | {t['sk']:.3f} | {t['pb']:.3f} | {t32['pb32']:.3f} | "
                  f"{t['sk'] / t['pb']:.2f}x | {t['sk'] / t32['pb32']:.2f}x | "
                  f"{flops / t['sk']:.1f} | {flops / t['pb']:.1f} | {gemm:.1f} / {gemm_blocks:.1f} | "
                  f"{ests['pb'].score(X) - sk_ll:+.1e} | {e32['pb32'].score(X) - sk_ll:+.1e} |")
    if "stream" in only:
        _stream(X, K, quick)
    if "missing" in only:
        _missing(quick)
    if "select" in only:
        _select(quick)


def _stream(X, K, quick):
    """partial_fit passes over 10 chunks vs the batch fit (same k-means seed)."""
    passes = 10 if quick else 5
    chunks = np.array_split(np.random.default_rng(1).permutation(X), 10)
    from sklearn.cluster import KMeans

    # the same start for both (k-means centres of the first chunk), so that the gap
    # measures the stream, not two different local optima
    m0 = KMeans(K, n_init=1, random_state=0).fit(chunks[0]).cluster_centers_
    t = time.perf_counter()
    batch = GaussianMixture(K, covariance_type="diag", means_init=m0, device="cpu",
                            max_iter=300, tol=1e-6).fit(X)
    t_batch = time.perf_counter() - t
    on = GaussianMixture(K, covariance_type="diag", means_init=m0, device="cpu")
    t = time.perf_counter()
    rows = []
    for p in range(passes):
        for c in chunks:
            on.partial_fit(c)
        rows.append((p + 1, time.perf_counter() - t, batch.score(X) - on.score(X)))
    print(f"\n### partial_fit stream (n={len(X)}, diag, K={K}, 10 chunks; batch fit "
          f"{t_batch:.2f} s, {batch.n_iter_} iterations, loglik {batch.score(X):.5f})\n")
    print("| passes | stream seconds | batch loglik - stream loglik (nats/sample) |")
    print("|---|---|---|")
    for p, secs, gap in rows:
        print(f"| {p} | {secs:.2f} | {gap:+.2e} |")


def _match_error(g, ref):
    order = [int(np.argmin(((g.means_ - m) ** 2).sum(1))) for m in ref.means_]
    return (float(np.abs(g.means_[order] - ref.means_).mean()),
            float(np.abs(g.covariances_[order] - ref.covariances_).mean()))


def _missing(quick):
    """20% MCAR: marginalised EM vs mean-imputation + scikit-learn, both vs complete data."""
    rng = np.random.default_rng(0)
    n, d, K = (6000 if quick else 30_000), 6, 4
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    S = A @ A.T + 0.3 * np.eye(d)
    centers = 3.0 * rng.normal(size=(K, d))
    X = np.concatenate([rng.multivariate_normal(c, S, n // K) for c in centers])
    Xm = X.copy()
    Xm[rng.random(X.shape) < 0.2] = np.nan
    full = GaussianMixture(K, random_state=0, device="cpu").fit(X)
    t = time.perf_counter()
    ours = GaussianMixture(K, missing="marginalize", random_state=0, device="cpu").fit(Xm)
    t_ours = time.perf_counter() - t
    imputed = np.where(np.isnan(Xm), np.nanmean(Xm, 0), Xm)
    t = time.perf_counter()
    sk = SkGMM(K, random_state=0).fit(imputed)
    t_sk = time.perf_counter() - t
    (mo, co), (ms, cs) = _match_error(ours, full), _match_error(sk, full)
    miss = np.isnan(Xm)
    imp_err = float(np.abs(ours.impute(Xm) - X)[miss].mean())
    mean_err = float(np.abs(imputed - X)[miss].mean())
    print(f"\n### missing data (n={len(X)}, d={d}, K={K}, 20% of entries missing completely "
          "at random; errors vs the complete-data fit, mean absolute over entries)\n")
    print("| method | means error | covariances error | seconds | imputation MAE |")
    print("|---|---|---|---|---|")
    print(f"| probest missing='marginalize' | {mo:.4f} | {co:.4f} | {t_ours:.2f} | "
          f"{imp_err:.3f} (impute) |")
    print(f"| mean-impute + sklearn | {ms:.4f} | {cs:.4f} | {t_sk:.2f} | {mean_err:.3f} "
          "(column means) |")


def _select(quick):
    """GaussianMixture.select vs the loop of separate fits (probest and scikit-learn)."""
    rng = np.random.default_rng(0)
    n, d = (5000 if quick else 20_000), 8
    X = rng.normal(size=(n, d)) + 3.0 * rng.normal(size=(4, d))[rng.integers(0, 4, n)]
    ks, cts = range(1, 9), ["full", "diag", "tied", "spherical"]
    def run_select():
        return GaussianMixture.select(X, ks, cts, random_state=0, device="cpu")

    def run_loop():
        return {(k, c): GaussianMixture(k, covariance_type=c, random_state=0,
                                        device="cpu").fit(X).bic(X) for k in ks for c in cts}

    def run_sk():
        return {(k, c): SkGMM(k, covariance_type=c, random_state=0).fit(X).bic(X)
                for k in ks for c in cts}

    runs = {"select": run_select, "loop": run_loop, "sk": run_sk}
    times = {k: [] for k in runs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        out = {k: f() for k, f in runs.items()}  # warm-up: first calls pay lazy imports
        for _ in range(3):  # interleaved rounds, median
            for k, f in runs.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    t_sel, t_loop, t_sk = (float(np.median(times[k])) for k in ("select", "loop", "sk"))
    best, loop, sk = out["select"], out["loop"], out["sk"]
    tb = best.selection_
    dev = max(abs(loop[(k, c)] - s) / abs(s) for k, c, s in
              zip(tb["n_components"], tb["covariance_type"], tb["score"], strict=True))
    sk_best = min(sk, key=sk.get)
    print(f"\n### model selection (n={n}, d={d}, n_components 1..8 x 4 covariance types = 32 "
          "candidates, BIC; after a warm-up call of each, median of 3 interleaved rounds)\n")
    print("| method | seconds | winner | max rel. BIC difference vs probest loop |")
    print("|---|---|---|---|")
    print(f"| GaussianMixture.select (batched) | {t_sel:.2f} | {best.n_components} "
          f"{best.covariance_type} | {dev:.1e} |")
    print(f"| loop of probest fits + bic | {t_loop:.2f} | {min(loop, key=loop.get)} | 0 |")
    print(f"| loop of sklearn fits + bic | {t_sk:.2f} | {sk_best} | - |")
    print(f"\nselect vs probest loop: {t_loop / t_sel:.2f}x; vs sklearn loop: "
          f"{t_sk / t_sel:.2f}x")


class _OnParts:
    """Wraps an estimator so that ``fit(X)`` fits the fixed client split instead."""

    def __init__(self, est, parts):
        self.est, self.parts = est, parts

    def fit(self, X):
        self.est.fit(self.parts)
        return self.est


if __name__ == "__main__":
    main()

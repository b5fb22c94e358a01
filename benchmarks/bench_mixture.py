"""probest.mixture vs scikit-learn: time per EM iteration, final log-likelihood, peak memory.

Same data, same initial parameters (weights/means/precisions from one k-means start, passed
to both as *_init; init_params="random" keeps the overridden initialisation cheap), tol=0
so both run exactly the requested iterations.  Time per iteration: time stamps after every
M-step (sklearn: a subclass hooking ``_m_step``; probest: ``history_``), median over three
interleaved fits of each (the machine is shared).  Peak memory: peak resident set size
above the level before the fit, sampled every 2 ms (sees torch and numpy allocations),
measured in a fresh child process per fit so that memory freed by earlier fits is not
reused and hidden.
Also: federated EM over 10 clients (local engine) vs pooled EM, per iteration.

    OMP_NUM_THREADS=1 python benchmarks/bench_mixture.py            # n=200k, d=16, K=16
    OMP_NUM_THREADS=1 python benchmarks/bench_mixture.py --quick    # n=20k
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
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    n, d, K = (20_000 if a.quick else a.n), 16, 16
    iters = 3 if a.quick else a.iters
    if a.mem_child:
        return _mem_child(a.mem_child[0], a.mem_child[1], n, iters)
    X = make_data(n, d, K)
    print(f"n={n} d={d} K={K}, {iters} EM iterations after identical initialisation, "
          f"1 thread, torch {torch.__version__}\n")
    print("| covariance | sklearn s/iter | probest s/iter | speed-up | sklearn loglik | "
          "probest loglik | sklearn peak MiB | probest peak MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for cov in ("full", "diag"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            init = SkGMM(K, covariance_type=cov, max_iter=1, random_state=0).fit(X[:20_000])
        kw = dict(covariance_type=cov, weights_init=init.weights_, means_init=init.means_,
                  precisions_init=init.precisions_, tol=0.0, init_params="random",
                  random_state=0)
        ests, t, _ = timed_fits({
            "sk": lambda m, kw=kw: TimedSkGMM(K, max_iter=m, **kw),
            "pb": lambda m, kw=kw: GaussianMixture(K, max_iter=m, device="cpu", **kw),
        }, X, iters)
        mem = {k: child_peak_mib(k, cov, n, iters) for k in ("sk", "pb")}
        print(f"| {cov} | {t['sk']:.3f} | {t['pb']:.3f} | {t['sk'] / t['pb']:.2f}x | "
              f"{ests['sk'].score(X):.6f} | {ests['pb'].score(X):.6f} | {mem['sk']:.0f} | "
              f"{mem['pb']:.0f} |")
    # federated overhead: 10 clients, local engine, vs pooled (probest, full covariance)
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


class _OnParts:
    """Wraps an estimator so that ``fit(X)`` fits the fixed client split instead."""

    def __init__(self, est, parts):
        self.est, self.parts = est, parts

    def fit(self, X):
        self.est.fit(self.parts)
        return self.est


if __name__ == "__main__":
    main()

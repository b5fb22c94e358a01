"""probest.flows benchmarks: EBFlow cost, digits NLL, OT-CFM straightness, wrapper overhead.

    OMP_NUM_THREADS=1 python benchmarks/bench_flows.py [--quick] [--only ebflow,digits,cfm,overhead,toy]

Sections (each prints a markdown table):

1. ``ebflow``   per-iteration time of EBFlow (FC flow: two dense D x D layers, batch 100)
               trained by ML vs SSM / DSM / FDSSM at D = 64, 784, 1536; ratios ML / SM.
2. ``digits``  test NLL (nats/image, fixed dequantization draw) of MLE flows, EBFlow (ML and
               score matching), a MADE with discretized logistics (exact discrete NLL) and
               sklearn's GaussianMixture, all on load_digits 80/20 (random_state=0).
3. ``cfm``     OT-CFM vs independent CFM on two moons: straightness, NFE of dopri5 and of
               Euler to reach a fixed 2-Wasserstein distance, test NLL (exact trace).
4. ``overhead`` probest NSF vs a plain zuko NSF training loop (same data, steps, architecture).
5. ``toy``     EBFlow's 2-D setting (Gaussian-smoothed sine / swirl / checkerboard): KL and
               Fisher divergence to the true density for ML, SSM, DSM.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

torch.set_num_threads(1)


def _table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        out.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(out)


# --- 1. EBFlow per-iteration cost ------------------------------------------------------------
def bench_ebflow(quick: bool) -> str:
    from probest.flows import _ebflow

    dims = (64, 784) if quick else (64, 784, 1536)
    iters = 3 if quick else 10
    rows = []
    for d in dims:
        torch.manual_seed(0)
        x = torch.randn(100, d)
        times = {}
        for obj in ("mle", "ssm", "dsm", "fdssm"):
            flow = _ebflow.EBFlowFC(d, 1)  # dense, elementwise, dense
            opt = torch.optim.Adam(flow.parameters(), lr=1e-4)

            def step(flow=flow, opt=opt, obj=obj, x=x):
                if obj == "mle":
                    loss = -flow.log_prob(x).mean()
                elif obj == "ssm":
                    loss = _ebflow.ssm_loss(flow.unnormalized_log_prob, x)
                elif obj == "dsm":
                    loss = _ebflow.dsm_loss(flow.unnormalized_log_prob, x, 0.05)
                else:
                    loss = _ebflow.fdssm_loss(flow.unnormalized_log_prob, x, 0.1)
                opt.zero_grad()
                loss.backward()
                opt.step()

            step()  # warm-up
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            times[obj] = (time.perf_counter() - t0) / iters
        rows.append((d, times["mle"] * 1e3, times["ssm"] * 1e3, times["dsm"] * 1e3,
                     times["fdssm"] * 1e3, times["mle"] / times["ssm"], times["mle"] / times["dsm"],
                     times["mle"] / times["fdssm"]))
    return _table(["D", "ML ms/it", "SSM ms/it", "DSM ms/it", "FDSSM ms/it", "ML/SSM", "ML/DSM",
                   "ML/FDSSM"], rows)


# --- 2. digits NLL -----------------------------------------------------------------------------
def bench_digits(quick: bool) -> str:
    import warnings

    from sklearn.mixture import GaussianMixture

    from probest.flows import AutoregressiveDLMEstimator, FlowDensityEstimator
    from probest.flows._data import digits_split

    Xtr, Xte, Xd = digits_split()
    steps = 150 if quick else 1000
    rows = []
    common = dict(dequantize="uniform", n_levels=17, preprocess="logit", random_state=0,
                  device="cpu")
    configs = [
        ("MAF 5x[128,128], MLE", dict(flow="maf", n_transforms=5, hidden=(128, 128))),
        ("NSF 3x[128,128], MLE", dict(flow="nsf", n_transforms=3, hidden=(128, 128))),
        ("TARFlow 4 blocks, width 64, 2x2 patches, MLE",
         dict(flow="tarflow", n_transforms=4, hidden=(64, 64), patch=2, image_shape=(8, 8))),
        ("EBFlow FC (3 nonlinear), MLE", dict(flow="ebflow_fc", n_transforms=3)),
        ("EBFlow FC (3 nonlinear), SSM", dict(flow="ebflow_fc", n_transforms=3, objective="ssm")),
        ("EBFlow FC (3 nonlinear), DSM", dict(flow="ebflow_fc", n_transforms=3, objective="dsm")),
        ("EBFlow FC (3 nonlinear), FDSSM (float64)", dict(flow="ebflow_fc", n_transforms=3,
                                                          objective="fdssm", dtype="float64")),
    ]
    if quick:
        configs = [configs[0], configs[3], configs[5]]
    for name, kw in configs:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # SM's "worse than a Gaussian" warning
            est = FlowDensityEstimator(max_iter=steps, **common, **kw).fit(Xtr)
        rows.append((name, steps, -est.score(Xd), est.bits_per_dim(Xte),
                     time.perf_counter() - t0))
    t0 = time.perf_counter()
    made = AutoregressiveDLMEstimator(hidden=(128, 128), max_iter=steps, random_state=0,
                                      device="cpu").fit(Xtr)
    rows.append(("MADE + discretized logistic mixture (exact discrete NLL)", steps,
                 -made.score(Xte), made.bits_per_dim(Xte), time.perf_counter() - t0))
    rng = np.random.default_rng(1)
    Xtr_d = Xtr + rng.uniform(size=Xtr.shape)
    for k in (1, 5) if quick else (1, 5, 10):
        t0 = time.perf_counter()
        gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-2, random_state=0).fit(Xtr_d)
        nll = -gm.score(Xd)
        rows.append((f"sklearn GaussianMixture k={k}, full, reg 1e-2", "EM", nll,
                     nll / (64 * math.log(2)), time.perf_counter() - t0))
    return _table(["model", "steps", "test NLL (nats/image)", "bits/dim", "fit s"], rows)


# --- 3. OT-CFM vs independent CFM ----------------------------------------------------------------
def _w2(a: np.ndarray, b: np.ndarray) -> float:
    import ot

    n, m = len(a), len(b)
    return float(np.sqrt(ot.emd2(np.full(n, 1 / n), np.full(m, 1 / m), ot.dist(a, b))))


def bench_cfm(quick: bool) -> str:
    from probest.datasets import make_flow_toy
    from probest.flows import FlowMatchingEstimator

    X = make_flow_toy(2000, random_state=0)
    Xte = make_flow_toy(1000, random_state=1)
    steps = 300 if quick else 2000
    rows, w2_curves = [], {}
    ests = {}
    for coupling in ("independent", "exact_ot"):
        t0 = time.perf_counter()
        est = FlowMatchingEstimator(coupling=coupling, max_iter=steps, random_state=0,
                                    device="cpu").fit(X)
        fit_s = time.perf_counter() - t0
        ests[coupling] = est
        # straightness (Liu et al. 2022): E int |v(t, x_t) - (x_1 - x_0)|^2 dt along Euler paths
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1000, 2, generator=g)
            x0, vs, h = x.clone(), [], 1 / 100
            for i in range(100):
                v = est.model_(torch.tensor(i * h), x)
                vs.append(v)
                x = x + h * v
            straight = float(sum(((v - (x - x0)) ** 2).sum(-1).mean() for v in vs) * h)
        S = est.sample(1000, random_state=0)
        w2_ref = _w2(S, Xte)
        nfe_dopri = est.nfe_
        curve = {}
        for n in (1, 2, 4, 8, 16, 32):
            est.set_params(solver="euler", n_steps=n)
            curve[n] = _w2(est.sample(1000, random_state=0), Xte)
        est.set_params(solver="dopri5")
        w2_curves[coupling] = curve
        nll = -est.score(Xte)
        rows.append([coupling, steps, fit_s, straight, nfe_dopri, w2_ref, nll])
    target = 1.1 * max(r[5] for r in rows)
    for r, coupling in zip(rows, ("independent", "exact_ot"), strict=True):
        reach = [n for n, w in w2_curves[coupling].items() if w <= target]
        r.insert(6, min(reach) if reach else ">32")
    curve_rows = [(n, w2_curves["independent"][n], w2_curves["exact_ot"][n])
                  for n in (1, 2, 4, 8, 16, 32)]
    return (_table(["coupling", "steps", "fit s", "straightness", "NFE dopri5 (rtol 1e-5)",
                    "W2 (dopri5) to test", f"Euler NFE to W2 <= {target:.3f}", "test NLL (nats)"],
                   rows)
            + "\n\nEuler steps vs W2 to 1000 test points (same source draws):\n\n"
            + _table(["Euler steps", "W2 independent", "W2 exact OT"], curve_rows))


# --- 4. wrapper overhead -----------------------------------------------------------------------
def bench_overhead(quick: bool) -> str:
    import zuko

    from probest.datasets import make_flow_toy
    from probest.flows import FlowDensityEstimator

    X = make_flow_toy(2000, random_state=0)
    Xte = make_flow_toy(2000, random_state=1)
    steps = 200 if quick else 1000
    rows = []

    def run_probest(rep):
        est = FlowDensityEstimator(flow="nsf", n_transforms=3, hidden=(64, 64), max_iter=steps,
                                   batch_size=256, ema=None, random_state=rep, device="cpu")
        return est.fit(X), -est.score(Xte)

    def run_zuko(rep):
        # the plain loop a user would write: standardise, NSF, Adam, minibatches
        with torch.random.fork_rng():
            torch.manual_seed(rep)
            mean, std = X.mean(0), X.std(0)
            Z = torch.tensor((X - mean) / std, dtype=torch.float32)
            flow = zuko.flows.NSF(2, transforms=3, hidden_features=(64, 64))
            opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
            for _ in range(steps):
                idx = torch.randint(0, len(Z), (256,))
                loss = -flow().log_prob(Z[idx]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        with torch.no_grad():
            zt = torch.tensor((Xte - mean) / std, dtype=torch.float32)
            return flow, float(-(flow().log_prob(zt) - np.log(std).sum()).mean())

    run_probest(99)  # warm-up of both code paths (imports, allocator)
    run_zuko(99)
    for rep in range(3 if quick else 5):
        order = (run_probest, run_zuko) if rep % 2 == 0 else (run_zuko, run_probest)
        out = {}
        for fn in order:  # alternate the order: the shared machine's load drifts
            w0, c0 = time.perf_counter(), time.process_time()
            nll = fn(rep)[1]
            out[fn.__name__] = (time.perf_counter() - w0, time.process_time() - c0, nll)
        (w_p, c_p, nll_p), (w_z, c_z, nll_z) = out["run_probest"], out["run_zuko"]
        rows.append((rep, w_p, w_z, c_p, c_z, c_p / c_z - 1, nll_p, nll_z))
    med = [float(np.median([r[i] for r in rows])) for i in (1, 2, 3, 4)]
    rows.append(("median", *med, med[2] / med[3] - 1, "", ""))
    return _table(["repeat", "probest wall s", "zuko wall s", "probest CPU s", "zuko CPU s",
                   "overhead (CPU time)", "probest test NLL", "zuko test NLL"], rows)


# --- 5. EBFlow 2-D toys: KL and Fisher divergence ------------------------------------------------
def _toy_log_density(kind: str, noise: float):
    """Exact log-density (torch, differentiable) of make_flow_toy's smoothed toys by quadrature."""
    s = torch.linspace(0, 1, 4001, dtype=torch.float64)
    if kind == "sine":
        xs = -3 + 6 * s
        centres = torch.stack([xs, 1.5 * torch.sin(1.5 * xs)], 1)
        logw = torch.full_like(s, -math.log(len(s)))
    elif kind == "swirl":
        t = torch.sqrt(s) * 3 * math.pi  # t = sqrt(U) 3 pi: uniform weights over s = U
        centres = torch.stack([t * torch.cos(t), t * torch.sin(t)], 1) / 3.0
        logw = torch.full_like(s, -math.log(len(s)))
    else:
        centres = None

    def logp(x: torch.Tensor) -> torch.Tensor:
        if centres is not None:
            d2 = ((x[:, None, :] - centres[None]) ** 2).sum(-1)
            return torch.logsumexp(logw - d2 / (2 * noise**2), 1) - math.log(2 * math.pi * noise**2)
        # checkerboard: x1 ~ U(-2, 2); x2 ~ U(k, k+1), k in {-2, 0} shifted by floor(x1) % 2
        from torch.special import ndtr

        def box(v, lo, hi):
            return ndtr((hi - v) / noise) - ndtr((lo - v) / noise)

        total = 0
        for a in (-2, -1, 0, 1):  # unit columns in x1
            shift = a % 2
            px = box(x[:, 0], a, a + 1) / 4.0
            py = 0.5 * (box(x[:, 1], -2 + shift, -1 + shift) + box(x[:, 1], shift, 1 + shift))
            total = total + px * py
        return torch.log(total.clamp_min(1e-300))

    return logp


def bench_toy(quick: bool) -> str:
    import warnings

    from probest.datasets import make_flow_toy
    from probest.flows import FlowDensityEstimator

    steps = 200 if quick else 2000
    kinds = ("sine",) if quick else ("sine", "swirl", "checkerboard")
    rows = []
    for kind in kinds:
        X = make_flow_toy(5000, kind=kind, noise=0.1, random_state=0)
        Xte = torch.tensor(make_flow_toy(2000, kind=kind, noise=0.1, random_state=1))
        logp_true = _toy_log_density(kind, 0.1)
        for obj in ("mle", "ssm", "dsm"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                est = FlowDensityEstimator(flow="ebflow_fc", objective=obj, n_transforms=6,
                                           max_iter=steps, lr=3e-3, dtype="float64",
                                           random_state=0, device="cpu").fit(X)
            lq = torch.tensor(est.score_samples(Xte.numpy()))
            kl = float((logp_true(Xte) - lq).mean())
            xg = Xte.clone().requires_grad_(True)
            s_true = torch.autograd.grad(logp_true(xg).sum(), xg)[0]
            z, ld = est.preprocessor_(xg)
            s_model = torch.autograd.grad((est.model_.log_prob(z, cached=True) + ld).sum(), xg)[0]
            fisher = float(0.5 * ((s_true - s_model) ** 2).sum(-1).mean())
            rows.append((kind, obj, steps, kl, fisher, -float(lq.mean())))
    return _table(["toy", "objective", "steps", "KL(p, model) nats", "Fisher divergence",
                   "test NLL"], rows)


SECTIONS = {"ebflow": bench_ebflow, "digits": bench_digits, "cfm": bench_cfm,
            "overhead": bench_overhead, "toy": bench_toy}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budgets (a minute or two)")
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    args = ap.parse_args(argv)
    for name in args.only.split(","):
        t0 = time.perf_counter()
        print(f"\n### flows/{name}{' (quick)' if args.quick else ''}\n", flush=True)
        print(SECTIONS[name](args.quick), flush=True)
        print(f"\n({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

"""One short CUDA check for probest.flows: correctness against CPU, then throughput.

    python benchmarks/gpu_check.py [--quick]

Without CUDA it prints a line and exits 0 (tests/flows/test_gpu.py is marked ``gpu``).

1. correctness: small models fitted on CPU are moved to CUDA (``est.to(DEV)``); their
   log-densities (NSF, EBFlow with cached log-dets, TARFlow, flow matching through the ODE
   with the exact trace, MADE + discretized logistics) must match CPU within 1e-3 nats
   (float32; reductions run in a different order on the GPU).  One fit with ``device=DEV``
   (NSF, OT-CFM) must train (finite, falling loss) with data, OT cost and ODE on the device.
2. throughput: EBFlow (two dense D x D layers, batch 100) ML vs SSM / DSM / FDSSM in
   samples/s at D = 784 and 3072, with and without bf16 autocast for ML; OT-CFM training
   steps/s (exact OT on the host vs Sinkhorn on the device).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

DEV = "cuda"  # --dry-run-cpu swaps in "cpu" to exercise this script's code without a GPU


def _sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def correctness(quick: bool) -> list[tuple]:
    from probest.datasets import make_flow_toy
    from probest.flows import AutoregressiveDLMEstimator, FlowDensityEstimator, FlowMatchingEstimator

    X = make_flow_toy(1000, random_state=0)
    Xte = make_flow_toy(500, random_state=1)
    Xi = np.random.default_rng(0).integers(0, 17, size=(500, 8)).astype(float)
    rows = []
    cases = [
        ("nsf", FlowDensityEstimator(flow="nsf", max_iter=50, device="cpu", random_state=0), X, Xte),
        ("ebflow_fc", FlowDensityEstimator(flow="ebflow_fc", max_iter=50, device="cpu",
                                           random_state=0), X, Xte),
        ("tarflow", FlowDensityEstimator(flow="tarflow", patch=1, max_iter=50, device="cpu",
                                         random_state=0), X, Xte),
        ("cfm exact trace", FlowMatchingEstimator(max_iter=50, device="cpu", random_state=0), X, Xte),
        ("made-dlm", AutoregressiveDLMEstimator(max_iter=50, device="cpu", random_state=0), Xi, Xi),
    ]
    for name, est, Xf, Xs in cases:
        est.fit(Xf)
        cpu = est.score_samples(Xs)
        est.to(DEV)
        gpu = est.score_samples(Xs)
        err = float(np.abs(cpu - gpu).max())
        rows.append((f"{name}: CUDA vs CPU max abs log p diff", err, "PASS" if err < 1e-3 else "FAIL"))
    for name, est in (
        ("nsf fit on cuda", FlowDensityEstimator(flow="nsf", max_iter=200, device=DEV, random_state=0)),
        ("ot-cfm fit on cuda", FlowMatchingEstimator(max_iter=200, device=DEV, random_state=0)),
    ):
        est.fit(X)
        h = [r["objective"] for r in est.history_]
        ok = est.converged_ and np.isfinite(h).all() and np.mean(h[-5:]) < np.mean(h[:5])
        rows.append((f"{name}: loss {h[0]:.3f} -> {h[-1]:.3f}, test NLL {-est.score(Xte):.3f}",
                     float(h[-1]), "PASS" if ok else "FAIL"))
    return rows


def ebflow_throughput(quick: bool) -> list[tuple]:
    from probest.flows import _ebflow

    rows = []
    iters = 5 if quick else 20
    for d in (784, 3072):
        x = torch.randn(100, d, device=DEV)
        res = {}
        for obj in ("mle", "mle+bf16", "ssm", "dsm", "fdssm"):
            flow = _ebflow.EBFlowFC(d, 1).to(DEV)
            opt = torch.optim.Adam(flow.parameters(), lr=1e-4)

            def step(flow=flow, opt=opt, obj=obj, x=x):
                if obj.startswith("mle"):
                    if obj == "mle+bf16":  # slogdet needs fp32: only the energy runs in bf16
                        with torch.autocast(DEV, dtype=torch.bfloat16):
                            e = flow.unnormalized_log_prob(x).float()
                        loss = -(e + flow.linear_logdet()).mean()
                    else:
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

            for _ in range(2):
                step()
            _sync()
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            _sync()
            res[obj] = 100 * iters / (time.perf_counter() - t0)
        for obj, sps in res.items():
            rows.append((f"EBFlow D={d} {obj}", sps, f"ML/{obj} time ratio {sps / res['mle']:.2f}"))
    return rows


def cfm_throughput(quick: bool) -> list[tuple]:
    from probest.flows import FlowMatchingEstimator

    rng = np.random.default_rng(0)
    rows = []
    for d in (2, 64):
        X = rng.normal(size=(20000, d))
        for coupling in ("independent", "exact_ot", "sinkhorn"):
            steps = 50 if quick else 200
            est = FlowMatchingEstimator(coupling=coupling, max_iter=steps, batch_size=512,
                                        hidden=(256, 256, 256), device=DEV, random_state=0)
            est.fit(X[:1000])  # warm-up
            _sync()
            t0 = time.perf_counter()
            est.fit(X)
            _sync()
            rows.append((f"OT-CFM training D={d} {coupling} (batch 512)",
                         steps / (time.perf_counter() - t0), "steps/s"))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dry-run-cpu", action="store_true",
                    help="run the same code on the CPU (checks the script; its numbers mean nothing)")
    args = ap.parse_args(argv)
    global DEV
    DEV = "cpu" if args.dry_run_cpu else "cuda"
    if DEV == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available on this machine; nothing was measured.")
        return 0
    name = torch.cuda.get_device_name(0) if DEV == "cuda" else "CPU dry run"
    print(f"device: {name}; torch {torch.__version__}")
    failed = False
    for title, fn in (("correctness", correctness), ("EBFlow throughput (samples/s)", ebflow_throughput),
                      ("OT-CFM throughput", cfm_throughput)):
        t0 = time.perf_counter()
        rows = fn(args.quick)
        print(f"\n### {title} ({time.perf_counter() - t0:.0f} s)\n\n| check | value | note |\n|---|---|---|")
        for name, value, note in rows:
            print(f"| {name} | {value:.4g} | {note} |")
            failed |= note == "FAIL"
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

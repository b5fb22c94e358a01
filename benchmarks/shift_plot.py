"""Plot target excess risk vs n for MLE and MWLE, well-specified (B1) and misspecified (B2).

    OMP_NUM_THREADS=1 python benchmarks/shift_plot.py [--quick] [--out docs/img/shift_risk_vs_n.png]
"""

from __future__ import annotations

import argparse
import os
import pathlib

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="docs/img/shift_risk_vs_n.png")
    args = ap.parse_args(argv)
    import torch

    from probest.shift._study import plot_risk_vs_n, risk_curves

    torch.set_num_threads(1)
    ns = [100, 300, 1000] if args.quick else [100, 200, 500, 1000, 2000, 5000]
    curves = risk_curves(ns, 5 if args.quick else 60)
    print(plot_risk_vs_n(curves, pathlib.Path(args.out)))
    for setup, by_n in curves.items():
        for n, r in sorted(by_n.items()):
            print(setup, n, " ".join(f"{m}={r[m].mean():.4g}" for m in ("mle", "mwle_true", "mwle_logistic")))


if __name__ == "__main__":
    main()

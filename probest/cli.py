"""The ``probest`` command: list, tour, fit, bench.

Errors are one line on stderr with exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import ast
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

# the user-facing error and the table printer live in a leaf module shared with the tour;
# ``probest.cli.CLIError`` stays importable from here.
from probest._report import CLIError, print_table


# --------------------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    import probest
    from probest._optional import EXTRAS, extra_status, extras_used_by

    status = extra_status()

    def row(fam: str, name: str, needs: dict[str, str]) -> tuple:
        extra = ", ".join(f"{e} ({feature})" for e, feature in needs.items()) or "-"
        inst = ("yes" if all(status[e] for e in needs) else "no") if needs else "-"
        return fam, name, extra, inst

    rows = []
    for fam in probest.FAMILIES:
        ests = probest.all_estimators(fam)
        if not ests:
            rows.append(row(fam, "(planned: no estimators yet)", extras_used_by(fam)))
        rows.extend(row(fam, name, extras_used_by(fam, name)) for name, _ in ests)
    print_table(["family", "estimator", "extra", "extra installed"], rows)
    missing = [e for e, ok in status.items() if not ok]
    if missing:
        print("\nmissing extras: " + ", ".join(EXTRAS[e].install or f'pip install "probest[{e}]"'
                                               for e in sorted(missing)))
    return 0


# --------------------------------------------------------------------------- tour
def cmd_tour(args: argparse.Namespace) -> int:
    from probest._tour import run_tour

    out = pathlib.Path(args.out)
    families = args.family or None
    _, failed = run_tour(quick=args.quick, out_dir=out, families=families, debug=args.debug)
    return 1 if failed else 0


# --------------------------------------------------------------------------- fit
def _parse_param(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise CLIError(f"--param expects key=value, got {text!r}")
    key, _, raw = text.partition("=")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def _resolve_estimator(name: str) -> type:
    import probest

    found = {n.lower(): c for n, c in probest.all_estimators()}
    cls = found.get(name.lower())
    if cls is None:
        raise CLIError(
            f"unknown estimator {name!r}; `probest list` shows the available ones "
            f"({', '.join(sorted(n for n, _ in probest.all_estimators()))})"
        )
    return cls


def _read_csv(path: pathlib.Path, target: str | None, supervised: bool):
    if path.is_dir():
        raise CLIError(f"--data {str(path)!r} is a directory; pass a CSV file")
    if not path.is_file():
        raise CLIError(f"data file {str(path)!r} does not exist")
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as exc:
        raise CLIError(f"cannot read {str(path)!r} as CSV: {' '.join(str(exc).split())}") from exc
    if df.empty:
        raise CLIError(f"{str(path)!r} has no rows")
    if supervised:
        col = target if target is not None else df.columns[-1]
        if col not in df.columns:
            raise CLIError(f"--target {col!r} is not a column of {str(path)!r} (columns: {list(df.columns)})")
        y = df[col].to_numpy()
        Xdf = df.drop(columns=[col])
    else:
        if target is not None:
            raise CLIError("--target was given but this estimator is unsupervised")
        y, Xdf = None, df
    bad = [c for c in Xdf.columns if not pd.api.types.is_numeric_dtype(Xdf[c])]
    if bad:
        raise CLIError(f"non-numeric feature columns {bad} in {str(path)!r}; encode them first")
    return Xdf.to_numpy(dtype=float), y


def _check_out_dir(out: pathlib.Path) -> pathlib.Path:
    """Create ``out`` (and check it is writable) before any fitting, or raise CLIError."""
    for parent in (out, *out.parents):
        if parent.exists() and not parent.is_dir():
            raise CLIError(f"--out {str(out)!r}: {str(parent)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".probest-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CLIError(f"--out {str(out)!r} is not a writable folder: {exc.strerror or exc}") from exc
    return out


def _train_test(X, y):
    """80/20 split (seed 0); too few rows is the user's error, said in one line."""
    from sklearn.model_selection import train_test_split

    if len(X) < 2:
        raise CLIError(f"the data has {len(X)} row(s); `probest fit` holds out 20% for testing "
                       "and needs at least 2 rows")
    if y is None:
        Xtr, Xte = train_test_split(X, test_size=0.2, random_state=0)
        return Xtr, Xte, None, None
    return train_test_split(X, y, test_size=0.2, random_state=0)


def _required_fit_args(est) -> list[str]:
    """Parameters of ``est.fit`` beyond X/y that have no default (e.g. ``X_target``)."""
    import inspect

    sig = inspect.signature(est.fit)
    return [
        n for i, (n, p) in enumerate(sig.parameters.items())
        if i >= 1 and n != "y" and p.default is inspect.Parameter.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def cmd_fit(args: argparse.Namespace) -> int:
    from sklearn.base import is_classifier, is_regressor

    import probest

    cls = _resolve_estimator(args.estimator)
    params = dict(_parse_param(p) for p in args.param or [])
    try:
        est = cls(**params)
        est._validate_params()  # the declared constraints: a bad value is a --param error
    except (TypeError, ValueError) as exc:
        raise CLIError(f"bad --param for {cls.__name__}: {exc}") from exc
    supervised = is_classifier(est) or is_regressor(est)
    if args.data:
        X, y = _read_csv(pathlib.Path(args.data), args.target, supervised)
        data_name, fit_kwargs = args.data, {}
    else:
        X, y, data_name, fit_kwargs = est._default_data()  # ProbestEstimator hook
    missing = [a for a in _required_fit_args(est) if a not in fit_kwargs]
    if missing:
        raise CLIError(
            f"{cls.__name__}.fit also needs {', '.join(missing)}, which one CSV cannot provide; "
            "use the Python API (or run without --data for its default data)"
        )
    out = _check_out_dir(pathlib.Path(args.out))
    Xtr, Xte, ytr, yte = _train_test(X, y)
    t0 = time.perf_counter()
    try:
        est.fit(Xtr, **fit_kwargs) if ytr is None else est.fit(Xtr, ytr, **fit_kwargs)
    except ValueError as exc:
        raise CLIError(f"{cls.__name__}.fit rejected the data: {exc}") from exc
    seconds = time.perf_counter() - t0
    metrics: dict[str, float] = {"fit seconds": seconds}
    if is_classifier(est):
        metrics["test accuracy"] = float(est.score(Xte, yte))
        if hasattr(est, "predict_proba"):
            from probest.metrics import nlpd_classification

            metrics["test NLPD"] = nlpd_classification(yte, est.predict_proba(Xte), est.classes_)
    elif is_regressor(est):
        metrics["test R^2"] = float(est.score(Xte, yte))
    elif hasattr(est, "score") and not _required_fit_args(est):
        metrics["test mean log-likelihood"] = float(est.score(Xte))
    metrics.update(est._extra_metrics(Xte, yte))  # ProbestEstimator hook, {} by default
    print(f"{cls.__name__} on {data_name}: {len(Xtr)} train / {len(Xte)} test rows")
    print_table(["metric", "value"], [(k, f"{v:.6g}") for k, v in metrics.items()])
    try:
        path = probest.save(est, out / "model")
        print(f"saved {path / 'model.safetensors'} and {path / 'model.json'}")
    except TypeError as exc:
        raise CLIError(str(exc)) from exc
    try:
        plot = _fit_plot(est, Xte, yte, out)
    except Exception as exc:  # the model is saved; say what failed in one line
        raise CLIError(f"the model was saved, but plotting failed: {type(exc).__name__}: {exc}") from exc
    if plot:
        print(f"plot: {plot}")
    return 0


def _fit_plot(est, X, y, out: pathlib.Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.base import is_classifier, is_regressor

    from probest.viz import plot_posterior, savefig

    try:
        return plot_posterior(est.to_arviz(), path=out / "posterior.png")
    except NotImplementedError:
        pass
    fig, ax = plt.subplots(figsize=(5, 4))
    if is_classifier(est) and hasattr(est, "predict_proba"):
        p = est.predict_proba(X).max(axis=1)
        ok = est.predict(X) == y
        ax.hist([p[ok], p[~ok]], bins=20, stacked=True, label=["correct", "wrong"])
        ax.set_xlabel("predicted probability of the predicted class")
        ax.legend()
    elif is_regressor(est):
        ax.scatter(y, est.predict(X), s=8)
        ax.set_xlabel("true")
        ax.set_ylabel("predicted")
    elif hasattr(est, "score_samples"):
        ax.hist(np.asarray(est.score_samples(X)), bins=30)
        ax.set_xlabel("log-likelihood per test sample")
    else:
        plt.close(fig)
        return None
    ax.set_title(type(est).__name__)
    return savefig(fig, out / "fit.png")


# --------------------------------------------------------------------------- bench
def _benchmarks_dir() -> pathlib.Path:
    here = pathlib.Path(__file__).resolve().parents[1]
    for cand in (pathlib.Path.cwd() / "benchmarks", here / "benchmarks"):
        if cand.is_dir():
            return cand
    raise CLIError("no benchmarks/ folder found: run `probest bench` from a probest source checkout")


def cmd_bench(args: argparse.Namespace) -> int:
    bdir = _benchmarks_dir()
    scripts = sorted(bdir.glob("bench_*.py"))
    if args.area:
        scripts = [s for s in scripts if s.stem == f"bench_{args.area}"]
        if not scripts:
            avail = ", ".join(s.stem.removeprefix("bench_") for s in sorted(bdir.glob("bench_*.py")))
            raise CLIError(f"no benchmark for area {args.area!r} (available: {avail or 'none'})")
    if not scripts:
        raise CLIError(f"no bench_*.py scripts in {bdir}")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg")
    rc = 0
    for s in scripts:
        print(f"\n## {s.stem}  (OMP_NUM_THREADS=1)\n", flush=True)
        cmd = [sys.executable, str(s)] + (["--quick"] if args.quick else [])
        rc |= subprocess.call(cmd, env=env)
    return 1 if rc else 0


# --------------------------------------------------------------------------- plumbing
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="probest", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    from probest import __version__

    p.add_argument("--version", action="version", version=f"probest {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="estimators, their extras and whether installed").set_defaults(fn=cmd_list)

    t = sub.add_parser("tour", help="run every family on its default data; table + HTML report")
    t.add_argument("--quick", action="store_true", help="small budgets (< 2 minutes on 2 cores)")
    t.add_argument("--out", default="probest-tour", help="folder for plots and report.html")
    t.add_argument("--family", action="append", help="only this family (repeatable)")
    t.set_defaults(fn=cmd_tour)

    f = sub.add_parser("fit", help="fit an estimator on a CSV (or its default data) and save it")
    f.add_argument("estimator")
    f.add_argument("--data", help="CSV with a header row; numeric features")
    f.add_argument("--target", help="target column (default: the last column, supervised only)")
    f.add_argument("--param", action="append", metavar="K=V", help="estimator parameter (repeatable)")
    f.add_argument("--out", default="probest-fit", help="folder for the model and plots")
    f.set_defaults(fn=cmd_fit)

    b = sub.add_parser("bench", help="run the peer benchmarks in benchmarks/")
    b.add_argument("area", nargs="?")
    b.add_argument("--quick", action="store_true")
    b.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except CLIError as exc:
        if args.debug:
            raise
        print(f"probest: error: {exc}", file=sys.stderr)
        return 2
    except (ImportError, OSError) as exc:
        if args.debug:
            raise
        print(f"probest: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("probest: interrupted", file=sys.stderr)
        return 130


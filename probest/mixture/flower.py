"""Federated EM over Flower's deployment runtime (``pip install "probest[federated]"``).

A Flower federation is one ``flower-superlink``, one ``flower-supernode`` per data holder and
a Flower App (``ServerApp`` + ``ClientApp``, :mod:`probest.mixture._flower_app`) submitted with
``flwr run``.  :func:`write_app` writes that app for an estimator
(:class:`FederatedGaussianMixture`, or :class:`FedGMMClassifier` with ``--class
FedGMMClassifier`` and a ``labels-path`` in every node config); across machines::

    # coordinator
    flower-superlink --insecure --disable-runtime-dependency-installation
    python -m probest.mixture.flower app --dir gmm_app --out model.npz --min-clients 3 \\
        --estimator '{"n_components": 3, "random_state": 0}'
    # each data holder (its rows in X_c.npy; probest installed)
    flower-supernode --insecure --superlink coordinator:8000 \\
        --node-config 'data-path="X_c.npy" client-id="hospital-a" partition-id=0'
    # coordinator: submit the run (a SuperLink connection in $FLWR_HOME/config.toml)
    flwr run gmm_app my-superlink --stream

``probest.load("model.npz")`` is the fitted :class:`FederatedGaussianMixture`.
``FederatedGaussianMixture(engine="flower").fit(X_by_client)`` does all of this on
127.0.0.1 (free ports, telemetry off, no dependency installation) and returns the fit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_PYPROJECT = """[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "probest-fedem"
version = "1.0.0"
description = "probest federated EM (FederatedGaussianMixture, FedGMMClassifier) as a Flower App"
license = "BSD-3-Clause"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "probest"

[tool.flwr.app.components]
serverapp = "probest.mixture._flower_app:server_app"
clientapp = "probest.mixture._flower_app:client_app"

[tool.flwr.app.config]
estimator-class = {cls}
estimator = {estimator}
previous = {previous}
min-clients = {min_clients}
out = {out}
"""


def _impl():
    from probest._optional import import_optional

    import_optional("flwr", extra="federated", purpose="engine='flower'")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _estimator_params(params: dict) -> dict:
    """The estimator's parameters for the run config, in the model files' encoding
    (:func:`probest._persist.encode_param`: arrays such as ``means_init`` as exact numbers;
    the ServerApp rebuilds the estimator with the same checked :func:`~probest._persist.construct`)."""
    from probest._persist import encode_param

    params = {k: encode_param(v) for k, v in params.items() if k != "engine"}
    bad = [k for k, v in params.items() if isinstance(v, dict) and "__repr__" in v]
    if bad:
        raise ValueError(f"{bad} cannot travel to a Flower ServerApp (not JSON numbers).")
    params["device"] = "cpu"
    return params


def write_app(est, app_dir, out, min_clients: int, estimator_class=None,
              previous=None) -> Path:
    """Write the Flower App (``pyproject.toml``) that fits ``est`` (a
    :class:`FederatedGaussianMixture` or :class:`FedGMMClassifier`, or the dict of its
    parameters with ``estimator_class``, default ``FederatedGaussianMixture``) and saves it
    to ``out``.  ``previous``: a model file (``probest.save``) on the ServerApp's machine
    that a ``warm_start=True`` fit continues."""
    from probest._persist import class_name

    if isinstance(est, dict):
        params = dict(est)
        if estimator_class is None:  # by name: this module is imported by the estimators
            estimator_class = "probest.mixture._federated.FederatedGaussianMixture"
    else:
        params, estimator_class = est.get_params(deep=False), type(est)
    cls = estimator_class if isinstance(estimator_class, str) else class_name(estimator_class)
    params = _estimator_params(params)
    app = Path(app_dir)
    app.mkdir(parents=True, exist_ok=True)
    text = _PYPROJECT.format(estimator=json.dumps(json.dumps(params)), cls=json.dumps(cls),
                             min_clients=int(min_clients), out=json.dumps(str(out)),
                             previous=json.dumps("" if previous is None else str(previous)))
    (app / "pyproject.toml").write_text(text)
    return app


class LocalFederation:
    """A real SuperLink and one SuperNode per client on 127.0.0.1 (context manager)."""

    def __init__(self, parts, ids, tmp, *, drop: dict | None = None, labels=None):
        self.tmp = Path(tmp)
        root = str(Path(__file__).resolve().parents[2])
        bin_dir = str(Path(sys.executable).parent)
        self.env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", OMP_NUM_THREADS="1",
                        FLWR_HOME=str(self.tmp / "home"),
                        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                        PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.parts, self.ids, self.drop = parts, ids, drop or {}
        self.labels = labels
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()

    def _spawn(self, name, cmd):
        log = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        p.log = log
        self.procs.append(p)
        return p

    def __enter__(self):
        (self.tmp / "home").mkdir(parents=True, exist_ok=True)
        (self.tmp / "home" / "config.toml").write_text(
            '[superlink]\ndefault = "local-test"\n\n[superlink.local-test]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        bin_dir = Path(sys.executable).parent
        self._spawn("superlink", [str(bin_dir / "flower-superlink"), "--insecure",
                                  "--disable-runtime-dependency-installation",
                                  "--host", "127.0.0.1", "--port", str(self.port)])
        for i, (cid, X) in enumerate(zip(self.ids, self.parts, strict=True)):
            f = self.tmp / f"client{i}.npy"
            np.save(f, np.asarray(X, dtype=np.float64))
            cfg = f'data-path="{f}" client-id="{cid}" partition-id={i}'
            if self.labels is not None:
                fy = self.tmp / f"labels{i}.npy"
                np.save(fy, np.asarray(self.labels[i]), allow_pickle=False)
                cfg += f' labels-path="{fy}"'
            if cid in self.drop:
                cfg += f" drop-at-round={int(self.drop[cid])}"
            self._spawn(f"supernode{i}", [
                str(bin_dir / "flower-supernode"), "--insecure", "--superlink",
                f"127.0.0.1:{self.port}", "--port", str(free_port()), "--node-config", cfg])
        return self

    def run(self, app_dir, timeout: float) -> None:
        bin_dir = Path(sys.executable).parent
        deadline = time.monotonic() + timeout
        while True:  # the SuperLink takes a few seconds to listen
            r = subprocess.run([str(bin_dir / "flwr"), "run", str(app_dir), "local-test",
                                "--stream"], env=self.env, capture_output=True, text=True,
                               timeout=max(deadline - time.monotonic(), 1))
            if "Successfully started run" in r.stdout or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        self.flwr_output = r.stdout + r.stderr

    def _descendants(self) -> list[int]:
        """Pids started under our processes (Flower's SuperExec and app processes detach
        into their own sessions, so a process-group kill does not reach them)."""
        children: dict[int, list[int]] = {}
        for d in Path("/proc").glob("[0-9]*"):
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [p.pid for p in self.procs]
        while todo:
            pid = todo.pop()
            for c in children.get(pid, []):
                out.append(c)
                todo.append(c)
        return out

    def __exit__(self, *exc):
        extra = self._descendants()
        for pid in [p.pid for p in self.procs] + extra:
            try:
                os.kill(pid, 15)
            except (ProcessLookupError, PermissionError):
                pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.log.close()
        time.sleep(0.5)
        for pid in extra:
            try:
                os.kill(pid, 9)
            except (ProcessLookupError, PermissionError):
                pass


def fit_local_deployment(est, parts, ids, *, labels=None, drop: dict | None = None,
                         min_clients: int | None = None, timeout: float | None = None):
    """A real Flower deployment on this machine; returns ``est`` fitted (``labels``: one
    label array per client, for :class:`FedGMMClassifier`)."""
    _impl()
    import probest

    est._validate_params()
    if timeout is None:  # every round may take round_timeout
        per_iter = 1 if labels is None else 12  # the classifier: E-step + Newton rounds
        timeout = 120.0 + est.round_timeout * (
            est.max_iter * getattr(est, "n_init", 1) * per_iter + 4 + 12 * (labels is not None))
    with tempfile.TemporaryDirectory(prefix="probest-flower-") as tmp:
        out = Path(tmp) / "model.npz"
        if min_clients is None:
            min_clients = len(parts) - len(drop or {})
        previous = None
        if getattr(est, "warm_start", False) and hasattr(est, "converged_"):
            previous = Path(tmp) / "previous.npz"  # the ServerApp continues this fit
            probest.save(est, previous)
        app = write_app(est, Path(tmp) / "app", out, len(parts), previous=previous)
        text = (app / "pyproject.toml").read_text().replace(
            f"min-clients = {len(parts)}", f"min-clients = {int(min_clients)}")
        (app / "pyproject.toml").write_text(text)
        start = time.monotonic()
        with LocalFederation(parts, ids, tmp, drop=drop, labels=labels) as fed:
            fed.run(app, timeout)
            while not Path(str(out) + ".json").exists():
                if time.monotonic() - start > timeout:
                    logs = "\n".join((Path(tmp) / f).read_text(errors="replace")[-2000:]
                                     for f in ("superlink.log",))
                    raise RuntimeError("Flower federated EM did not finish within "
                                       f"{timeout:.0f} s.\n{fed.flwr_output[-2000:]}\n{logs}")
                time.sleep(0.2)
            time.sleep(0.2)
        fitted = probest.load(out)
        side = json.loads(Path(str(out) + ".json").read_text())
        shutil.rmtree(Path(tmp) / "home", ignore_errors=True)
    for k, v in fitted._fitted_items().items():
        setattr(est, k, v)
    back = {str(i): i for i in ids}
    est.client_ids_ = [back.get(str(c), c) for c in est.client_ids_]
    est.dropped_clients_ = [(int(r), back.get(c, c), reason) for r, c, reason in side["dropped"]]
    est.flower_timing_ = {"fit_seconds": side["fit_seconds"],
                          "round_seconds": side["round_seconds"]}
    return est


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m probest.mixture.flower")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("app", help="write the Flower App of a FederatedGaussianMixture")
    a.add_argument("--dir", required=True)
    a.add_argument("--out", required=True, help="where the ServerApp saves the fit")
    a.add_argument("--min-clients", type=int, required=True)
    a.add_argument("--estimator", default="{}", help="JSON of the estimator's parameters")
    a.add_argument("--class", dest="cls", default="FederatedGaussianMixture",
                   choices=("FederatedGaussianMixture", "FedGMMClassifier"),
                   help="the estimator (FedGMMClassifier nodes also need labels-path)")
    args = ap.parse_args(argv)
    import probest.mixture as mixture

    # the parameters are checked where the ServerApp builds the estimator from them
    print(write_app(json.loads(args.estimator), args.dir, Path(args.out).resolve(),
                    args.min_clients, estimator_class=getattr(mixture, args.cls)))


if __name__ == "__main__":
    main()

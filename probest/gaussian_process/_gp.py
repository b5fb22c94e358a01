"""One latent GP fitted by one inference mode: the schedules of Laplace, EP, VI and the hybrid.

:class:`GPFit` owns a kernel and a likelihood (both ``nn.Module``; their parameters, all in log
space for the defaults, form ``theta``), the training inputs, the sites ``(l1, l2)`` and, when
sparse, the inducing inputs.  Estimators hold one per binary problem (one-vs-rest) or one for
regression.

Schedules (``mode``):

* ``laplace`` — L-BFGS on the Laplace log marginal likelihood; every evaluation re-finds the
  mode by Newton (warm-started), gradients through one differentiable Newton step.
* ``ep`` / ``vi`` / ``hybrid`` — alternate E-steps (EP sweeps, or CVI natural-gradient steps)
  and M-steps (L-BFGS with the sites frozen) on the EP energy (``ep``, ``hybrid``) or the ELBO
  (``vi``).  ``hybrid`` stops as soon as the EP energy decreases and restores the previous
  hyperparameters and sites (the paper's early stopping with rollback).
* A Gaussian likelihood has exact sites ``l2 = 1/noise, l1 = y/noise``; every objective then
  equals the exact log marginal likelihood and one L-BFGS run optimises it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from probest._torch import move_to
from probest.gaussian_process import _engine as E
from probest.gaussian_process._guards import THETA_BOUND, linalg_error

KINDS = ("ep", "elbo", "laplace")
DEFAULT_KIND = {"laplace": "laplace", "ep": "ep", "vi": "elbo", "hybrid": "ep"}


@dataclasses.dataclass
class Options:
    max_iter: int = 50  # outer iterations (E+M), or L-BFGS iterations for Laplace
    e_steps: int = 3
    m_steps: int = 3
    cvi_lr: float = 0.5
    ep_damping: float = 0.5
    tol: float = 1e-4


class _Abort(Exception):
    """Raised inside an L-BFGS closure to end the step (the best theta is restored)."""


class GPFit:
    """A latent GP, its likelihood, its sites and the fitted hyperparameters."""

    def __init__(self, kernel, lik, X, y, mode, Z=None, options: Options | None = None):
        self.model = torch.nn.ModuleDict({"kernel": kernel, "lik": lik})
        self.X, self.y, self.Z = X, y, Z
        self.mode = mode
        self.opt = options or Options()
        n = X.shape[0]
        self.l1 = torch.zeros(n, dtype=X.dtype, device=X.device)
        self.l2 = torch.zeros(n, dtype=X.dtype, device=X.device)
        m = Z.shape[0] if Z is not None else n
        self.coef = torch.zeros(m, dtype=X.dtype, device=X.device)  # Laplace warm start
        self.state: dict = {}
        self.n_iter = 0
        self.n_evals = 0
        self.converged = False
        self.stopped_by = ""
        self.objective_value = float("nan")

    # -- hyperparameters -----------------------------------------------------------------
    @property
    def kernel(self):
        return self.model["kernel"]

    @property
    def lik(self):
        return self.model["lik"]

    @property
    def exact(self) -> bool:
        return self.lik.name == "gaussian"

    def params(self):
        return [p for p in self.model.parameters() if p.requires_grad]

    def theta(self) -> torch.Tensor:
        return parameters_to_vector(self.params()).detach().clone()

    def set_theta(self, theta: torch.Tensor) -> None:
        with torch.no_grad():
            vector_to_parameters(theta.to(self.X), self.params())

    def theta_names(self) -> list[str]:
        """One name per entry of ``theta``: ``log_<name>`` for log-space parameters (the
        defaults), ``raw_<name>`` for a user kernel's other constraints."""
        cons = {n: c for n, _, c in self.kernel.named_parameters_and_constraints()}
        names = []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            if name.startswith("lik.log_params."):
                short = "log_" + name.rsplit(".", 1)[1]
            else:
                kname = name[len("kernel."):]
                c = cons.get(kname)
                is_log = c is not None and getattr(c, "_transform", None) is torch.exp
                short = kname.replace("base_kernel.", "")
                short = short.replace("raw_", "log_") if is_log else short
            names += [short] if p.numel() == 1 else [f"{short}[{i}]" for i in range(p.numel())]
        return names

    # -- engine and objectives -----------------------------------------------------------
    def engine(self):
        if self.Z is None:
            return E.FullEngine(self.kernel, self.X)
        return E.SparseEngine(self.kernel, self.X, self.Z)

    def exact_sites(self):
        noise = self.lik.noise
        return self.y / noise, torch.ones_like(self.y) / noise

    def objective(self, kind: str, engine=None, sites=None) -> torch.Tensor:
        """Objective ``kind`` at the current theta with the sites frozen (differentiable)."""
        engine = engine or self.engine()
        if kind == "laplace":
            if self.exact:
                l1, l2 = self.exact_sites()
                return E.elbo(engine.marginals(l1, l2), l1, l2, self.lik, self.y)
            with torch.no_grad():
                f, self.coef, _, _ = E.newton_mode(engine, self.lik, self.y, self.coef.detach())
                self._mode = f
            return E.laplace_objective(engine, self.lik, self.y, f)
        l1, l2 = sites if sites is not None else (
            self.exact_sites() if self.exact else (self.l1, self.l2))
        q = engine.marginals(l1, l2)
        fn = E.ep_energy if kind == "ep" else E.elbo
        return fn(q, l1, l2, self.lik, self.y)

    def e_step(self, n_steps: int, engine=None, converge: bool = False, max_steps: int = 2000):
        """Update the sites with the mode's own rule (no gradients)."""
        with torch.no_grad():
            engine = engine or self.engine()
            if self.exact:
                self.l1, self.l2 = self.exact_sites()
                return
            if self.mode == "laplace":
                f, self.coef, _, _ = E.newton_mode(engine, self.lik, self.y, self.coef)
                self.l1, self.l2 = E.laplace_sites(f, self.lik, self.y)
                return
            steps = max_steps if converge else n_steps
            for _ in range(steps):
                q = engine.marginals(self.l1, self.l2)
                if self.mode == "ep":
                    l1, l2 = E.ep_step(q, self.l1, self.l2, self.lik, self.y, self.opt.ep_damping)
                else:
                    l1, l2 = E.cvi_step(q, self.l1, self.l2, self.lik, self.y, self.opt.cvi_lr)
                change = float((l1 - self.l1).abs().max() + (l2 - self.l2).abs().max())
                scale = 1.0 + float(self.l1.abs().max() + self.l2.abs().max())
                self.l1, self.l2 = l1, l2
                if converge and change <= 1e-7 * scale:
                    break

    def init_sites_laplace(self) -> None:
        """Start EP/CVI from the Laplace sites at the initial theta (a few Newton steps)."""
        with torch.no_grad():
            f, self.coef, _, _ = E.newton_mode(self.engine(), self.lik, self.y, self.coef)
            self.l1, self.l2 = E.laplace_sites(f, self.lik, self.y)

    def energies(self, engine=None) -> dict[str, float]:
        """ELBO and EP energy at the current theta and sites (for ``history_``)."""
        with torch.no_grad():
            engine = engine or self.engine()
            l1, l2 = self.exact_sites() if self.exact else (self.l1, self.l2)
            q = engine.marginals(l1, l2)
            return {"elbo": float(E.elbo(q, l1, l2, self.lik, self.y)),
                    "ep_energy": float(E.ep_energy(q, l1, l2, self.lik, self.y))}

    # -- schedules -----------------------------------------------------------------------
    def _lbfgs(self, kind: str, max_iter: int, log=None, opt=None) -> int:
        """L-BFGS on ``-objective(kind)``; pass ``opt`` to keep its curvature memory across
        M-steps (the frozen-site objective changes little between outer iterations)."""
        params = self.params()
        if not params or max_iter <= 0:
            return 0
        if opt is None:
            opt = self.new_lbfgs(max_iter)
        n_eval = [0]
        best = [math.inf, self.theta()]
        inf = torch.tensor(math.inf, dtype=self.X.dtype, device=self.X.device)

        def closure():
            opt.zero_grad()
            with torch.no_grad():  # box like scikit-learn's (1e-5, 1e5) on log-hyperparameters
                if not all(bool(torch.isfinite(p).all()) for p in params):
                    raise _Abort  # a degenerate L-BFGS direction (flat objective): stop here
                for p in params:
                    p.clamp_(-THETA_BOUND, THETA_BOUND)
            try:
                loss = -self.objective(kind)
            except torch.linalg.LinAlgError:
                return inf
            if not torch.isfinite(loss):
                return inf
            loss.backward()
            n_eval[0] += 1
            value = float(loss.detach())
            if value < best[0]:
                best[0], best[1] = value, self.theta()
            if log is not None:
                log(-value)
            return loss

        before = int(opt.state[opt._params[0]].get("n_iter", 0))
        try:
            opt.step(closure)
        except _Abort:
            opt.state.clear()  # forget the broken curvature pairs
        self.n_evals += n_eval[0]
        # L-BFGS may end on an unevaluated or failed point: keep the best evaluated theta
        if math.isfinite(best[0]):
            self.set_theta(best[1])
        return int(opt.state[opt._params[0]].get("n_iter", 0)) - before

    def new_lbfgs(self, max_iter: int):
        return torch.optim.LBFGS(self.params(), lr=1.0, max_iter=max_iter,
                                 line_search_fn="strong_wolfe", tolerance_grad=1e-5,
                                 tolerance_change=1e-7, history_size=20)

    def fit(self, progress) -> GPFit:
        kind = DEFAULT_KIND[self.mode]
        try:
            if self.exact or self.mode == "laplace":
                self._fit_direct(kind, progress)
            else:
                self._fit_alternating(kind, progress)
            self.finalize()
        except torch.linalg.LinAlgError as err:  # torch's words -> probest's (_guards)
            raise linalg_error(self.mode) from err
        if not self.converged:
            warnings.warn(
                f"{self.mode} hyperparameter learning did not converge in max_iter="
                f"{self.opt.max_iter} iterations; increase max_iter.", ConvergenceWarning)
        return self

    def _fit_direct(self, kind, progress):
        def log(value):
            extra = {}
            if not self.exact:  # ELBO and EP energy at the Laplace sites of this evaluation
                with torch.no_grad():
                    self.l1, self.l2 = E.laplace_sites(self._mode, self.lik, self.y)
                extra = self.energies()
            else:
                extra = self.energies()
            progress.log(objective=value, **extra, kind=kind)

        n_it = self._lbfgs(kind, self.opt.max_iter, log)
        self.n_iter = n_it
        self.converged = n_it < self.opt.max_iter
        self.stopped_by = "tolerance" if self.converged else "max_iter"
        self.e_step(0)

    def _fit_alternating(self, kind, progress):
        opt = self.opt
        self.init_sites_laplace()
        self.e_step(opt.e_steps)
        prev = None
        snapshot = lbfgs = None
        self.converged, self.stopped_by = False, "max_iter"
        for it in range(1, opt.max_iter + 1):
            if it > 1:
                self.e_step(opt.e_steps)
            en = self.energies()
            value = en["ep_energy"] if kind == "ep" else en["elbo"]
            progress.log(objective=value, **en, kind=kind)
            self.n_iter = it
            if not math.isfinite(value):
                raise FloatingPointError(f"{self.mode}: the objective became {value}.")
            if prev is not None:
                if self.mode == "hybrid" and value < prev:
                    self.set_theta(snapshot[0])
                    self.l1, self.l2 = snapshot[1], snapshot[2]
                    self.converged, self.stopped_by = True, "ep_energy_decrease"
                    break
                if abs(value - prev) <= opt.tol * (1.0 + abs(prev)):
                    self.converged, self.stopped_by = True, "tolerance"
                    break
            prev = value
            snapshot = (self.theta(), self.l1.clone(), self.l2.clone())
            if lbfgs is None and self.params():
                lbfgs = self.new_lbfgs(opt.m_steps)
            self._lbfgs(kind, opt.m_steps, opt=lbfgs)
        else:
            self.e_step(opt.e_steps)

    def finalize(self) -> None:
        """Cache what prediction needs and the objective value at the fitted state."""
        with torch.no_grad():
            engine = self.engine()
            l1, l2 = self.exact_sites() if self.exact else (self.l1, self.l2)
            self.l1, self.l2 = l1, l2
            q = engine.marginals(l1, l2)
            self.state = q.state
            self.mu, self.var = q.mu, q.var
            self.objective_value = float(self.objective(DEFAULT_KIND[self.mode], engine))

    # -- prediction ----------------------------------------------------------------------
    def predict_latent(self, Xnew, full_cov=False):
        with torch.no_grad():
            if self.Z is None:
                return E.FullEngine.predict(self.kernel, self.X, self.state, Xnew, full_cov)
            return E.SparseEngine.predict(self.kernel, self.Z, self.state, Xnew, full_cov)

    def log_marginal_likelihood(self, theta=None, kind=None) -> float:
        """Objective ``kind`` at ``theta`` (sites re-inferred there by this fit's own mode)."""
        kind = kind or DEFAULT_KIND[self.mode]
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} is not one of {KINDS}.")
        if theta is None:
            with torch.no_grad():
                return float(self.objective(kind))
        saved = (self.theta(), self.l1.clone(), self.l2.clone(), self.coef.clone())
        try:
            self.set_theta(torch.as_tensor(theta, dtype=self.X.dtype))
            with torch.no_grad():
                engine = self.engine()
                self.e_step(0, engine, converge=True)
                return float(self.objective(kind, engine))
        finally:
            self.set_theta(saved[0])
            self.l1, self.l2, self.coef = saved[1], saved[2], saved[3]

    # -- devices and pickling ------------------------------------------------------------
    def to(self, device) -> GPFit:
        for k, v in list(vars(self).items()):
            setattr(self, k, move_to(v, device))
        return self

    def __getstate__(self):
        return {k: move_to(v, "cpu") for k, v in vars(self).items()}

"""Minibatched sparse inference for the VI and hybrid modes (``batch_size=``).

The sparse posterior keeps its sites on the inducing values ``u`` (the t-SVGP dual
parameterisation): ``t(u) = exp(eta^T u - u^T Lam u / 2)``, so ``q(u) ∝ N(u; 0, K_uu) t(u)``.
In whitened coordinates ``u = L_uu w`` the site is ``(L_uu^T eta, L_uu^T Lam L_uu)`` and
``q(w) = N(P^-1 eta_w, P^-1)`` with ``P = I + Lam_w``.  The sites live on ``u``, not on ``w``,
so they keep their meaning when a hyperparameter step changes ``K_uu``.

One iteration draws a minibatch ``B`` (``b`` rows, a fresh permutation every epoch, moved from
host memory to the device per batch) and does

1. **CVI (natural-gradient) step on the sites** from the minibatch: at the marginals
   ``N(m_n, v_n)`` of the batch, ``g_m``, ``g_v`` of ``E[log p(y_n|f)]`` give the per-point
   targets ``lam2_n = -2 g_v``, ``lam1_n = g_m - 2 m_n g_v``; with ``A = K_uu^-1 K_uB``,
   ``Lam <- (1-beta) Lam + beta (N/b) A diag(lam2) A^T``, ``eta <- (1-beta) eta + beta (N/b) A lam1``
   (the stochastic form of the full-batch CVI update; a full batch gives exactly CVI);
2. **Adam steps on theta**, one per 512-row slice of the batch (so ``ceil(N/512)`` steps per
   epoch whatever ``b``; beyond ``N = 20000`` only the first ``20000 b / N`` rows of each
   batch, at least one slice), on the slice's estimate of the objective, sites frozen:
   the hybrid's EP energy ``log Z_q + (N/b) sum_B [log int p(y_n|f) q_cav - log int t_n q_cav]``
   (per-point sites: the CVI targets of step 1, i.e. the fixed point of CVI), or the ELBO
   ``log Z_q - E_q[log t] + (N/b) sum_B E_q[log p(y_n|f_n)]`` for ``inference="vi"``.
   The EP energy is not stationary in the sites at the CVI fixed point, so its gradient
   depends on what is frozen: the full-batch hybrid freezes the per-point sites, and its
   u-site ``Lam(theta) = sum_n A_n(theta) lam_n A_n(theta)^T`` moves with theta.  The slice
   estimates ``dLam/dtheta`` from its own rows (a straight-through term: the value is
   unchanged), cross-fitted between its two halves so that each row's product with itself is
   not counted ``N/b`` times; the estimate is then unbiased, and exact for one batch (frozen
   u-sites instead bias it enough to collapse the lengthscale at ``N = 100,000``).  The ELBO
   is stationary at the CVI fixed point, so frozen u-sites give its gradient there.

The first epoch (``WARMUP``) does step 1 alone, so the sites are near CVI's fixed point before
the first hyperparameter step (the full-batch schedule also starts with E-steps): theta steps
on half-formed sites pull the lengthscale down, and with Adam at 0.3 collapsed it (test NLPD
log 2 at N = 20,000; with the warm-up 0.182 at rates 0.1, 0.3 and 1.0).

Schedule: ``beta_t = max(b/N, cvi_lr / (1 + t b / N))`` (``t`` counts minibatches, so the
step decays like one over the epochs and never drops below a memory of one epoch); Adam's rate
is ``lr / sqrt(1 + epoch)``.  The epoch mean of the minibatch objectives is the hybrid's
stopping signal: once it has not reached a new best for ``PATIENCE`` (2) epochs, the fit
stops and restores the hyperparameters and sites of the best epoch (the full-batch rule "stop
as soon as the EP energy decreases", made robust to the minibatch noise).  A closing pass at
frozen hyperparameters sums the per-batch targets over all the data with the sites held fixed
and then replaces them: one full-data CVI step of size 1, streamed in batches, which removes
the minibatch noise from the final sites (``e_step`` repeats it to convergence, which is
exactly full-batch sparse CVI).
Each step costs ``O(b M^2 + M^3)``.
"""

from __future__ import annotations

import math

import torch

from probest.gaussian_process import _engine as E
from probest.gaussian_process._gp import DEFAULT_KIND, GPFit
from probest.gaussian_process._guards import THETA_BOUND

MINIBATCH_MODES = ("vi", "hybrid")
THETA_BATCH = 512  # rows per hyperparameter (Adam) step: each batch gives ceil(b / 512) steps
THETA_ROWS = 20000  # rows per epoch that the hyperparameter steps see at most (large N)
WARMUP = 1  # epochs of CVI alone before the first hyperparameter step
PATIENCE = 2  # epochs without a new best epoch-mean objective before the stop


def _chol_uu(kernel, Z, jitter: float = 1e-6):
    Kuu = E._eval_kernel(kernel, Z)
    Kuu = Kuu + jitter * Kuu.diagonal().mean().detach() * torch.eye(
        Z.shape[0], dtype=Kuu.dtype, device=Kuu.device)
    return torch.linalg.cholesky(Kuu)


class MinibatchFit(GPFit):
    """A sparse latent GP fitted from minibatches; ``l1``/``l2`` are the sites on ``u``
    (``eta`` of shape ``(M,)`` and ``Lam`` of shape ``(M, M)``)."""

    minibatch = True

    def __init__(self, kernel, lik, X, y, mode, Z, options=None, *, batch_size: int,
                 lr: float = 0.1, seed: int = 0, device=None):
        super().__init__(kernel, lik, X[:1], y[:1], mode, Z=Z, options=options)
        self.X, self.y = X, y  # host tensors; each minibatch is moved to ``device``
        self.batch_size = int(batch_size)
        self.lr, self.seed = float(lr), int(seed)
        self.device = Z.device if device is None else torch.device(device)
        M = Z.shape[0]
        self.l1 = torch.zeros(M, dtype=Z.dtype, device=Z.device)
        self.l2 = torch.zeros(M, M, dtype=Z.dtype, device=Z.device)
        self.history: list[dict] = []

    def set_theta(self, theta: torch.Tensor) -> None:
        from torch.nn.utils import vector_to_parameters

        with torch.no_grad():
            vector_to_parameters(theta.to(self.Z), self.params())

    # -- posterior pieces ------------------------------------------------------------------
    def _whiten(self, Luu, need_trace: bool = False, l1=None, l2=None):
        """``(LB, mw, log_zq, trace P^-1, Lam_w, eta_w)`` of ``q(w)`` from the sites on ``u``
        (``self.l1``, ``self.l2`` unless given)."""
        l1 = self.l1 if l1 is None else l1
        l2 = self.l2 if l2 is None else l2
        Lam_w = Luu.T @ l2 @ Luu
        Lam_w = 0.5 * (Lam_w + Lam_w.T)
        eta_w = Luu.T @ l1
        P = torch.eye(Lam_w.shape[0], dtype=Lam_w.dtype, device=Lam_w.device) + Lam_w
        LB = torch.linalg.cholesky(P)
        mw = torch.cholesky_solve(eta_w[:, None], LB)[:, 0]
        log_zq = 0.5 * (eta_w * mw).sum() - torch.log(torch.diagonal(LB)).sum()
        tr = None
        if need_trace:
            Linv = torch.linalg.solve_triangular(
                LB, torch.eye(LB.shape[0], dtype=LB.dtype, device=LB.device), upper=False)
            tr = (Linv * Linv).sum()
        return LB, mw, log_zq, tr, Lam_w, eta_w

    def _batch(self, Luu, LB, mw, Xb, Phi=None):
        """Marginals at ``Xb``: ``(Phi, mu, var, var_site)`` (``Phi = Luu^-1 K_uB`` reused
        when given)."""
        if Phi is None:
            Phi = torch.linalg.solve_triangular(Luu, E._eval_kernel(self.kernel, self.Z, Xb),
                                                upper=False)
        mu = Phi.T @ mw
        V = torch.linalg.solve_triangular(LB, Phi, upper=False)
        var_site = (V * V).sum(0).clamp_min(1e-12)
        var = (E._eval_diag(self.kernel, Xb) - (Phi * Phi).sum(0) + var_site).clamp_min(1e-12)
        return Phi, mu, var, var_site

    def _targets(self, yb, mu, var):
        """CVI targets (per-point sites at the CVI fixed point) at the batch marginals."""
        _, gm, gv = self.lik.expected(yb, mu, var)
        gv = gv.clamp_max(-1e-8)
        return gm - 2.0 * mu * gv, -2.0 * gv

    def _terms(self, kind, Luu, Xb, yb, scale):
        """Minibatch estimate of ``kind`` (differentiable in theta, sites frozen; the EP
        energy's per-point sites are the CVI targets at these marginals) and what the CVI
        update needs: ``(objective, Phi, (lam1, lam2))``."""
        LB, mw, log_zq, tr, Lam_w, eta_w = self._whiten(Luu, need_trace=kind == "elbo")
        Phi, mu, var, var_site = self._batch(Luu, LB, mw, Xb)
        with torch.no_grad():
            sites = self._targets(yb, mu, var)
        if kind == "elbo":
            e, _, _ = self.lik.expected(yb, mu, var)
            site = (eta_w * mw).sum() - 0.5 * (mw @ Lam_w @ mw + (Lam_w.shape[0] - tr))
            return log_zq - site + scale * e.sum(), Phi, sites
        if not torch.is_grad_enabled() or Xb.shape[0] < 2:
            return log_zq + scale * self._ep_data(yb, mu, var, var_site, sites).sum(), Phi, sites
        # The full-batch hybrid keeps its sites on the f_n, so its u-site
        # Lam(theta) = sum_n A_n(theta) lam_n A_n(theta)^T moves with theta; frozen u-sites
        # miss that term and bias the EP-energy gradient (it drove the lengthscale to collapse
        # at N = 100,000).  The value stays the same; the gradient gets the batch's estimate of
        # dLam/dtheta.  One estimate for all the batch's marginals would count each row's
        # product with itself n/b times; so the batch is split in halves and the marginals of
        # one half see its own rows' dLam with weight 1 and the other half's with n/|other| - 1:
        # both the row's own term and the pairs then have expectation 1 (one batch: exact).
        A = torch.linalg.solve_triangular(Luu.T, Phi, upper=True)
        b, h = Xb.shape[0], Xb.shape[0] // 2
        halves = (slice(0, h), slice(h, b))
        d1 = [A[:, sl] @ sites[0][sl] for sl in halves]
        d2 = [(A[:, sl] * sites[1][sl]) @ A[:, sl].T for sl in halves]

        def whiten(w1, w2):  # q(w) at the u-sites moved by the weighted estimates
            e1 = sum(w * (d - d.detach()) for w, d in zip(w1, d1))
            e2 = sum(w * (d - d.detach()) for w, d in zip(w2, d2))
            return self._whiten(Luu, l1=self.l1 + e1, l2=self.l2 + e2)

        n = scale * b
        log_zq = whiten((scale, scale), (scale, scale))[2]
        total = log_zq
        for k, sl in enumerate(halves):
            other = (1.0, n / (b - h) - 1.0) if k == 0 else (n / h - 1.0, 1.0)
            LB, mw, *_ = whiten(other, other)
            _, mu, var, var_site = self._batch(Luu, LB, mw, Xb[sl], Phi[:, sl])
            part = (sites[0][sl], sites[1][sl])
            total = total + scale * self._ep_data(yb[sl], mu, var, var_site, part).sum()
        return total, Phi, sites

    def _ep_data(self, yb, mu, var, var_site, sites):
        """Per-point EP-energy terms ``log int p(y|f) q_cav - log int t q_cav``."""
        l1, l2 = sites
        q = E.Marginals(mu, var, var_site, None, {})
        m_c, v_c, _ = E.cavity(q, l1, l2)
        tilted = self.lik.log_tilted(yb, m_c, v_c + q.extra)
        return tilted - E._log_site_cavity(l1, l2, m_c, v_c)

    def _chunks(self, size: int = 4096):
        n = self.X.shape[0]
        for s in range(0, n, size):
            yield self._to_dev(self.X[s:s + size]), self._to_dev(self.y[s:s + size])

    def _to_dev(self, t):
        return t.to(self.device, non_blocking=True)

    def objective(self, kind: str, engine=None, sites=None) -> torch.Tensor:
        """``kind`` over all the data (streamed in chunks; differentiable in theta)."""
        if kind == "laplace":
            raise ValueError("a minibatched fit has no Laplace evidence; use kind='ep' or "
                             "'elbo'.")
        Luu = _chol_uu(self.kernel, self.Z)
        if kind == "ep" and torch.is_grad_enabled():
            return self._ep_objective(Luu)
        total = None
        for Xb, yb in self._chunks():
            t = self._terms(kind, Luu, Xb, yb, 1.0)[0]
            # log Z_q (and the ELBO's site term) once, not once per chunk
            total = t if total is None else total + t - self._global_term(kind, Luu)
        return total

    def _ep_objective(self, Luu):
        """The data EP energy with its exact theta-gradient: the per-point sites (the CVI
        targets) held fixed and the u-site ``sum_n A_n(theta) lam_n A_n(theta)^T`` moving with
        theta, as in the full-batch sparse hybrid (two streamed passes)."""
        with torch.no_grad():
            LB, mw, *_ = self._whiten(Luu)
            sites = [self._targets(yb, *self._batch(Luu, LB, mw, Xb)[1:3])
                     for Xb, yb in self._chunks()]
        e1, e2 = torch.zeros_like(self.l1), torch.zeros_like(self.l2)
        phis = []  # the graph keeps every chunk's Phi anyway: reuse it for the marginals
        for (Xb, _), (t1, t2) in zip(self._chunks(), sites):
            Phi = torch.linalg.solve_triangular(Luu, E._eval_kernel(self.kernel, self.Z, Xb),
                                                upper=False)
            A = torch.linalg.solve_triangular(Luu.T, Phi, upper=True)
            d1, d2 = A @ t1, (A * t2) @ A.T
            e1, e2 = e1 + d1 - d1.detach(), e2 + d2 - d2.detach()
            phis.append(Phi)
        LB, mw, total, *_ = self._whiten(Luu, l1=self.l1 + e1, l2=self.l2 + e2)
        for (Xb, yb), part, Phi in zip(self._chunks(), sites, phis):
            _, mu, var, var_site = self._batch(Luu, LB, mw, Xb, Phi)
            total = total + self._ep_data(yb, mu, var, var_site, part).sum()
        return total

    def _global_term(self, kind, Luu):
        LB, mw, log_zq, tr, Lam_w, eta_w = self._whiten(Luu, need_trace=kind == "elbo")
        if kind == "elbo":
            site = (eta_w * mw).sum() - 0.5 * (mw @ Lam_w @ mw + (Lam_w.shape[0] - tr))
            return log_zq - site
        return log_zq

    def energies(self, engine=None) -> dict[str, float]:
        with torch.no_grad():
            return {"elbo": float(self.objective("elbo")),
                    "ep_energy": float(self.objective("ep"))}

    # -- the schedule -----------------------------------------------------------------------
    def _epoch(self, gen, beta_of, adam=None, kind="ep", accumulate: bool = False):
        """One pass over a fresh permutation: per batch, the objective estimate and its
        Adam step, then the CVI update from the same marginals (one forward per batch).
        ``accumulate``: the sites stay fixed during the pass and the data sum of the targets
        replaces them at its end (one full-data CVI step of size 1, streamed)."""
        n, b = self.X.shape[0], min(self.batch_size, self.X.shape[0])
        perm = torch.randperm(n, generator=gen)
        total, nb = 0.0, 0
        acc1, acc2 = torch.zeros_like(self.l1), torch.zeros_like(self.l2)
        params = self.params()
        scale = n / b
        for k, s in enumerate(range(0, n - b + 1, b), start=1):
            idx = perm[s:s + b]
            Xb, yb = self._to_dev(self.X[idx]), self._to_dev(self.y[idx])
            with torch.no_grad():  # the objective estimate and the CVI step (no gradients)
                Luu = _chol_uu(self.kernel, self.Z)
                obj, Phi, (t1, t2) = self._terms(kind, Luu, Xb, yb, scale)
                A = torch.linalg.solve_triangular(Luu.T, Phi, upper=True)  # K_uu^-1 K_uB
                lam = scale * (A * t2) @ A.T
                if accumulate:
                    acc2 += lam / scale
                    acc1 += A @ t1
                    total += float(obj)
                    nb += 1
                    continue
                beta = beta_of(k)
                new_l2 = (1.0 - beta) * self.l2 + beta * 0.5 * (lam + lam.T)
                new_l1 = (1.0 - beta) * self.l1 + beta * scale * (A @ t1)
            # theta steps, sites frozen: one Adam step per THETA_BATCH-row slice of the batch
            # (of its first THETA_ROWS * b / n rows beyond THETA_ROWS rows of data)
            rows = b if n <= THETA_ROWS else max(min(b, THETA_BATCH), b * THETA_ROWS // n)
            for r in (range(0, rows, THETA_BATCH) if adam is not None else ()):
                Xs, ys = Xb[r:r + THETA_BATCH], yb[r:r + THETA_BATCH]
                adam.zero_grad()
                o, _, _ = self._terms(kind, _chol_uu(self.kernel, self.Z), Xs, ys,
                                      n / Xs.shape[0])
                (-o / n).backward()
                adam.step()
                with torch.no_grad():
                    for p in params:
                        p.clamp_(-THETA_BOUND, THETA_BOUND)
            self.l1, self.l2 = new_l1, new_l2
            self._step += 1
            total += float(obj)
            nb += 1
        if accumulate:
            rest = perm[nb * b:]  # the rows the last full batch left out
            if rest.numel():
                with torch.no_grad():
                    Xb, yb = self._to_dev(self.X[rest]), self._to_dev(self.y[rest])
                    Luu = _chol_uu(self.kernel, self.Z)
                    _, Phi, (t1, t2) = self._terms(kind, Luu, Xb, yb, 1.0)
                    A = torch.linalg.solve_triangular(Luu.T, Phi, upper=True)
                    acc2 += (A * t2) @ A.T
                    acc1 += A @ t1
            self.l1, self.l2 = acc1, 0.5 * (acc2 + acc2.T)
        return total / max(nb, 1)

    def fit(self, progress) -> MinibatchFit:
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        from probest.gaussian_process._guards import linalg_error

        kind = DEFAULT_KIND[self.mode]
        opt = self.opt
        n, b = self.X.shape[0], min(self.batch_size, self.X.shape[0])
        gen = torch.Generator().manual_seed(self.seed)
        self._step = 0

        def beta_sched(_k):
            return max(b / n, opt.cvi_lr / (1.0 + self._step * b / n))

        params = self.params()
        adam = torch.optim.Adam(params, lr=self.lr) if params else None
        best, best_state, worse = -math.inf, None, 0
        self.converged, self.stopped_by = False, "max_iter"
        try:
            for epoch in range(1, opt.max_iter + 1):
                if adam is not None:
                    for g in adam.param_groups:
                        g["lr"] = self.lr / math.sqrt(epoch)
                value = self._epoch(gen, beta_sched, adam if epoch > WARMUP else None, kind)
                self.n_iter = epoch
                progress.log(objective=value, kind=kind, epoch=epoch, beta=beta_sched(0))
                if not math.isfinite(value):
                    raise FloatingPointError(f"{self.mode}: the objective became {value}.")
                self.history.append({"epoch": epoch, "objective": value})
                if value > best + opt.tol * (1.0 + abs(best)) or best_state is None:
                    best, worse = value, 0
                    best_state = (self.theta(), self.l1.clone(), self.l2.clone())
                    continue
                worse += 1  # the epoch mean did not rise: stop after PATIENCE such epochs
                if worse >= PATIENCE:
                    self.set_theta(best_state[0])
                    self.l1, self.l2 = best_state[1], best_state[2]
                    self.converged = True
                    self.stopped_by = ("ep_energy_decrease" if self.mode == "hybrid"
                                       else "tolerance")
                    break
            # the closing pass: frozen theta, one streamed full-data CVI step
            self.objective_value = self._epoch(gen, None, None, kind, accumulate=True)
            self.finalize()
        except torch.linalg.LinAlgError as err:
            raise linalg_error(self.mode) from err
        if not self.converged:
            warnings.warn(
                f"minibatched {self.mode} did not converge in max_iter={opt.max_iter} epochs; "
                "increase max_iter.", ConvergenceWarning)
        return self

    def e_step(self, n_steps, engine=None, converge=False, max_steps=500):
        """Site updates at the current theta: ``n_steps`` epochs of minibatch CVI (at least
        one; with ``converge``, until the sites stop moving), then a running-average epoch."""
        gen = torch.Generator().manual_seed(self.seed + 1)
        self._step = 0
        for _ in range(max_steps if converge else max(n_steps, 1)):
            old = (self.l1.clone(), self.l2.clone())
            self._epoch(gen, None, None, accumulate=True)
            change = float((self.l1 - old[0]).abs().max() + (self.l2 - old[1]).abs().max())
            scale = 1.0 + float(self.l1.abs().max() + self.l2.abs().max())
            if converge and change <= 1e-9 * scale:
                break

    def finalize(self) -> None:
        with torch.no_grad():
            Luu = _chol_uu(self.kernel, self.Z)
            LB, mw, *_ = self._whiten(Luu)
            self.state = {"Luu": Luu, "LB": LB, "mw": mw}
            if not math.isfinite(self.objective_value):  # loaded fits: one streamed pass
                self.objective_value = float(self.objective(DEFAULT_KIND[self.mode]))

    def predict_latent(self, Xnew, full_cov=False):
        with torch.no_grad():
            return E.SparseEngine.predict(self.kernel, self.Z, self.state,
                                          Xnew.to(self.Z.device), full_cov)

    def log_marginal_likelihood(self, theta=None, kind=None) -> float:
        kind = kind or DEFAULT_KIND[self.mode]
        if theta is None:
            with torch.no_grad():
                return float(self.objective(kind))
        saved = (self.theta(), self.l1.clone(), self.l2.clone())
        try:
            self.set_theta(torch.as_tensor(theta, dtype=self.Z.dtype))
            with torch.no_grad():
                self.e_step(0, converge=True)
                return float(self.objective(kind))
        finally:
            self.set_theta(saved[0])
            self.l1, self.l2 = saved[1], saved[2]

"""The nonnegative low-rank (Burer–Monteiro) solver of the clustering SDPs, in torch.

Both SDPs are the one block problem

    minimise   sum_b <C_b, Z_b>
    subject to Z_b PSD, Z_b >= 0 (entrywise), tr Z_b = t_b, sum_b Z_b 1 = 1

(Peng–Wei K-means: one block with ``t = K``; the likelihood-adjusted SDP: ``K`` blocks with
``t_b = 1``).  Each ``Z_b = U_b U_b^T`` with ``U_b >= 0`` of shape ``(n, r)``, so the
nonnegativity of ``Z_b`` holds by construction and the trace is kept exactly by projecting
onto the nonnegative part of the sphere ``||U_b||_F^2 = t_b``.  The equality ``sum_b Z_b 1 =
1`` is handled by an augmented Lagrangian (multiplier ``y``, penalty ``beta``) whose primal
step is projected gradient with backtracking.  Every cost is ``C_b = D_b / 2 + c_b 1 1^T``
with ``D_b`` the squared distances of the rows of ``Y_b`` (``X`` whitened by the block's
covariance), so ``C_b U`` costs ``O(n p r)``: no ``n x n`` matrix is ever formed.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch


@dataclasses.dataclass
class Blocks:
    """The costs ``C_b = D_b / 2 + c_b 1 1^T`` in factored form.

    ``Y``: (B, n, p) whitened data, ``q``: (B, n) squared row norms of ``Y``, ``c``: (B,)
    constants (log-determinants), ``t``: (B,) traces.  ``scale`` divides every cost (a
    positive constant: it changes no minimiser and keeps the steps O(1)).
    """

    Y: torch.Tensor
    q: torch.Tensor
    c: torch.Tensor
    t: torch.Tensor
    scale: float = 1.0

    @classmethod
    def build(cls, Y: torch.Tensor, c: torch.Tensor, t: torch.Tensor) -> Blocks:
        Y = Y - Y.mean(1, keepdim=True)  # distances are translation invariant
        q = (Y * Y).sum(-1)
        scale = float(q.mean().clamp_min(1e-300))
        return cls(Y=Y, q=q, c=c - c.min(), t=t, scale=scale)

    @property
    def n(self) -> int:
        return int(self.Y.shape[1])

    def apply(self, U: torch.Tensor) -> torch.Tensor:
        """``C_b U_b`` for every block (divided by ``scale``), ``U``: (B, n, r)."""
        w = U.sum(1)  # (B, r) = U^T 1
        qU = torch.einsum("bn,bnr->br", self.q, U)
        out = 0.5 * (self.q[:, :, None] * w[:, None, :] + qU[:, None, :])
        out = out - self.Y @ (self.Y.transpose(1, 2) @ U)
        out = out + self.c[:, None, None] * w[:, None, :]
        return out / self.scale

    def dense(self, b: int) -> torch.Tensor:
        """``C_b`` as an n x n matrix (for the certificate on small problems only)."""
        Y, q = self.Y[b], self.q[b]
        D = q[:, None] + q[None, :] - 2 * Y @ Y.T
        return (D / 2 + self.c[b]) / self.scale


def _project(U: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Onto ``{U >= 0, ||U_b||_F^2 = t_b}`` (exact when some entry is positive)."""
    U = U.clamp_min(0)
    norm = U.flatten(1).norm(dim=1).clamp_min(1e-300)
    return U * (t.sqrt() / norm)[:, None, None]


def _lagrangian(bl: Blocks, U, y, beta):
    CU = bl.apply(U)
    f = (U * CU).sum()
    w = U.sum(1)
    v = torch.einsum("bnr,br->n", U, w) - 1.0
    return f + y @ v + 0.5 * beta * (v @ v), CU, w, v, f


def init_factor(labels: np.ndarray | None, n_blocks: int, n: int, rank: int, t: torch.Tensor,
                generator: torch.Generator, device, dtype, per_block_labels: bool,
                ) -> torch.Tensor:
    """A starting factor: from labels (column k of the one block, or block k, holds
    ``1_{G_k}``) plus a small positive perturbation, or uniform random."""
    noise = torch.rand((n_blocks, n, rank), generator=generator, device=device, dtype=dtype)
    if labels is None:
        return _project(noise, t)
    U = 1e-2 * noise
    lab = torch.as_tensor(np.asarray(labels), device=device)
    for k in range(int(lab.max()) + 1 if lab.numel() else 0):
        m = (lab == k).to(dtype)
        if per_block_labels:
            if k < n_blocks:
                U[k, :, 0] += m / m.sum().clamp_min(1).sqrt()
        elif k < rank:
            U[0, :, k] += m / m.sum().clamp_min(1).sqrt()
    return _project(U, t)


def solve(bl: Blocks, U0: torch.Tensor, *, beta: float = 10.0, max_outer: int = 200,
          max_inner: int = 50, tol: float = 1e-5, inner_rtol: float = 1e-4,
          log=None) -> dict[str, Any]:
    """Augmented-Lagrangian projected gradient from ``U0``; returns the factor, multiplier,
    objective (in the units of ``C``) and the primal feasibility reached.

    Each multiplier update follows at most ``max_inner`` projected-gradient steps (fewer
    once the relative step is below the current violation); the penalty doubles when the
    violation fails to fall by a quarter (the usual augmented-Lagrangian rule)."""
    U = U0.clone()
    n = bl.n
    y = torch.zeros(n, device=U.device, dtype=U.dtype)
    step = 1.0 / n
    n_steps = 0
    viol = prev = float("inf")
    moved = float("inf")
    for outer in range(max_outer):
        L, CU, w, v, f = _lagrangian(bl, U, y, beta)
        inner_tol = max(0.1 * tol, min(inner_rtol, 0.01 * float(v.abs().max())))
        for _ in range(max_inner):
            yv = y + beta * v
            g = 2 * CU + yv[None, :, None] * w[:, None, :]
            g = g + torch.einsum("n,bnr->br", yv, U)[:, None, :]
            while True:
                Un = _project(U - step * g, bl.t)
                Ln, CUn, wn, vn, fn = _lagrangian(bl, Un, y, beta)
                d = Un - U
                if Ln <= L + (g * d).sum() + (d * d).sum() / (2 * step) or step < 1e-12 / n:
                    break
                step *= 0.5
            moved = float(d.norm()) / max(float(U.norm()), 1e-300)
            U, L, CU, w, v, f = Un, Ln, CUn, wn, vn, fn
            step *= 1.5
            n_steps += 1
            if moved < inner_tol:
                break
        y = y + beta * v
        viol = float(v.abs().max())
        if outer >= 10 and viol > 0.9 * prev and beta < 1e3:
            beta *= 2.0
        prev = viol
        if log is not None:
            log(outer, float(f) * bl.scale, viol)
        if viol < tol and moved < 10 * tol:
            break
    return {"U": U, "y": y, "objective": float(f) * bl.scale, "violation": viol,
            "n_outer": outer + 1, "n_steps": n_steps, "converged": viol < max(tol, 1e-4)}


def certificate(bl: Blocks, U: torch.Tensor, y: torch.Tensor, labels: np.ndarray,
                dense_max: int = 3000) -> dict[str, Any]:
    """Feasibility and, for ``n <= dense_max``, a duality gap.

    The dual of the block SDP is ``max -1^T y + sum_b t_b mu_b`` subject to
    ``C_b + (y 1^T + 1 y^T)/2 - mu_b I - N_b`` PSD and ``N_b >= 0``.  From the solver's
    multiplier ``y`` we take ``N_b`` = the positive part of ``C_b + sym(y)`` on the pairs the
    rounded partition separates and ``mu_b`` = the least eigenvalue of what is left: a valid
    dual point, so ``dual_bound`` is a lower bound on the SDP's optimum whatever the solver
    did, and ``gap`` = (objective - dual_bound) / max(1, |objective|) bounds how far the
    returned point is from optimal (given its ``constraint_violation``).
    """
    w = U.sum(1)
    rows = torch.einsum("bnr,br->n", U, w)
    CU = bl.apply(U)
    obj = float((U * CU).sum()) * bl.scale
    out: dict[str, Any] = {
        "objective": obj,
        "constraint_violation": float((rows - 1).abs().max()),
        "trace_violation": float((U.flatten(1).pow(2).sum(1) - bl.t).abs().max()),
        "min_entry": float(U.min()),
        "dual_bound": None, "gap": None,
    }
    n = bl.n
    if n > dense_max:
        return out
    from scipy.sparse.linalg import eigsh

    ys = y / 1.0
    dual = -float(ys.sum())
    for b in range(bl.Y.shape[0]):
        M = bl.dense(b) + 0.5 * (ys[:, None] + ys[None, :])
        Zb = U[b] @ U[b].T
        off = Zb < 1e-3 * Zb.diagonal().clamp_min(1e-300).mean()  # where Z_b ~ 0: N_b > 0
        M = M - torch.where(off, M.clamp_min(0), torch.zeros_like(M))
        Mn = M.detach().cpu().numpy()
        try:
            lam = float(eigsh(Mn, k=1, which="SA", v0=np.ones(n), tol=1e-10,
                              return_eigenvectors=False)[0])
        except Exception:  # ARPACK did not converge: the exact, slower path
            lam = float(np.linalg.eigvalsh(Mn)[0])
        dual += float(bl.t[b]) * lam
    dual *= bl.scale
    out["dual_bound"] = dual
    out["gap"] = (obj - dual) / max(1.0, abs(obj))
    return out


def round_blocks(U: torch.Tensor) -> np.ndarray:
    """Labels of the likelihood-adjusted SDP: ``argmax_b (Z_b 1)_i``."""
    w = U.sum(1)
    mass = torch.einsum("bnr,br->bn", U, w)
    return mass.argmax(0).cpu().numpy()


def spectral_rows(U: torch.Tensor, k: int) -> np.ndarray:
    """Rows of the top-``k`` eigenvectors of ``Z = U U^T`` scaled by their eigenvalues'
    square roots (the embedding the K-means rounding clusters)."""
    Uq, s, _ = torch.linalg.svd(U, full_matrices=False)
    k = min(k, s.shape[0])
    return (Uq[:, :k] * s[:k]).cpu().numpy()


def default_rank(n_clusters: int) -> int:
    return int(max(2, min(2 * n_clusters, n_clusters + 5)))

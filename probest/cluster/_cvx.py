"""The reference path: the clustering SDPs as written, solved by cvxpy with SCS.

SCS is set explicitly: cvxpy's default (Clarabel) turns each n x n PSD cone into a dense
KKT block and is far slower here.  Dense n x n variables: practical to n ~ 150-250.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from probest.cluster._nlr import Blocks


def solve_cvxpy(bl: Blocks, *, eps: float = 1e-6, max_iters: int = 20000) -> dict[str, Any]:
    """Solve ``min sum_b <C_b, Z_b>`` over PSD, nonnegative ``Z_b`` with ``tr Z_b = t_b`` and
    ``sum_b Z_b 1 = 1``; returns the dense ``Z`` (B, n, n), the objective and SCS's status."""
    import cvxpy as cp

    n, B = bl.n, int(bl.Y.shape[0])
    Cs = [bl.dense(b).detach().cpu().numpy() for b in range(B)]
    Cs = [0.5 * (C + C.T) for C in Cs]
    Zs = [cp.Variable((n, n), PSD=True) for _ in range(B)]
    ones = np.ones(n)
    cons = [sum(Z @ ones for Z in Zs) == ones]
    for Z, t in zip(Zs, bl.t.tolist(), strict=True):
        cons += [Z >= 0, cp.trace(Z) == t]
    prob = cp.Problem(cp.Minimize(sum(cp.trace(C @ Z) for C, Z in zip(Cs, Zs, strict=True))),
                      cons)
    try:
        prob.solve(solver=cp.SCS, eps=eps, max_iters=max_iters)
    except cp.error.SolverError as exc:
        raise ValueError(f"the SDP solver SCS failed ({exc}); use solver='nlr'.") from None
    if prob.status not in ("optimal", "optimal_inaccurate") or Zs[0].value is None:
        raise ValueError(f"the SDP solver SCS ended with status {prob.status!r}; use "
                         "solver='nlr'.")
    Z = np.stack([0.5 * (Zb.value + Zb.value.T) for Zb in Zs])
    viol = float(np.abs(Z.sum(0) @ ones - 1).max())
    return {"Z": Z, "objective": float(prob.value) * bl.scale, "status": prob.status,
            "violation": viol, "converged": prob.status == "optimal"}


def dense_rows(Z: np.ndarray, k: int) -> np.ndarray:
    """Top-``k`` eigenvectors of ``Z`` scaled by the square roots of their eigenvalues."""
    lam, V = np.linalg.eigh(Z)
    lam, V = lam[::-1][:k].clip(0), V[:, ::-1][:, :k]
    return V * np.sqrt(lam)

"""Native multiclass GP classification: one latent GP per class under a softmax likelihood.

``C`` latent functions with a shared kernel (one ``theta``) and independent zero-mean priors;
the likelihood ``softmax(f_n)_{y_n}`` couples them.  The posterior keeps the site form of the
binary engine, with one site per point *and class*,

    q(f) ∝ prod_c N(f_c; 0, K) prod_n exp(l1_cn f_cn - l2_cn f_cn^2 / 2),

so it factorises over classes given the sites (the class-diagonal family, as GPflow's and
GPyTorch's multi-output SVGP), while every site update sees all classes at once through the
joint likelihood: CVI targets from ``E_{q(f_n)}[log softmax(f_n)_{y_n}]`` (VI, hybrid), the
curvature at the joint mode (Laplace, with the diagonal ``pi (1 - pi)`` of the softmax Hessian;
the mode is the exact MAP), and the EP energy with the joint tilted integral
``log int softmax(f)_y prod_c q_cav(f_c) df`` (hybrid).  Laplace, VI and the hybrid work for
exact and sparse models; EP is not offered (the moments of the C-dimensional tilted
distribution have no closed form).

:class:`ClassStack` wraps the binary engines: ``(C, N)`` sites in, class-stacked marginals out
(``log Z_q`` summed), the kernel matrix (or the sparse projection) computed once per ``theta``.
Everything else (the E-/M-step schedules, the hybrid's stop with rollback, Newton's mode, the
objectives) is the binary code of :mod:`probest.gaussian_process._gp` unchanged.
"""

from __future__ import annotations

import torch

from probest.gaussian_process import _engine as E
from probest.gaussian_process._gp import GPFit


class ClassStack:
    """``C`` copies of a binary engine sharing its kernel matrix; sites of shape ``(C, N)``."""

    def __init__(self, base, n_classes: int):
        self.base, self.C = base, int(n_classes)
        self.sparse = base.sparse

    def marginals(self, l1, l2, need_var: bool = True) -> E.Marginals:
        qs = [self.base.marginals(l1[c], l2[c], need_var) for c in range(self.C)]
        state = {k: torch.stack([q.state[k] for q in qs]) for k in qs[0].state}
        return E.Marginals(torch.stack([q.mu for q in qs]), torch.stack([q.var for q in qs]),
                           torch.stack([q.var_site for q in qs]),
                           sum(q.log_zq for q in qs), state)

    def f_of(self, coef):
        return torch.stack([self.base.f_of(coef[c]) for c in range(self.C)])

    def coef(self, q):
        return q.state["mw" if self.sparse else "alpha"]

    def quad(self, coef, f):
        return self.base.quad(coef, f)


class SoftmaxFit(GPFit):
    """The joint multiclass posterior; ``l1``, ``l2`` have shape ``(C, N)``."""

    def __init__(self, kernel, lik, X, y, mode, Z=None, options=None):
        if mode == "ep":
            lik.tilted_moments(y, None, None)  # raises the ValueError that says why
        super().__init__(kernel, lik, X, y, mode, Z=Z, options=options)
        C, n = lik.n_classes, X.shape[0]
        m = Z.shape[0] if Z is not None else n
        self.l1 = torch.zeros(C, n, dtype=X.dtype, device=X.device)
        self.l2 = torch.zeros(C, n, dtype=X.dtype, device=X.device)
        self.coef = torch.zeros(C, m, dtype=X.dtype, device=X.device)

    @property
    def n_classes(self) -> int:
        return self.lik.n_classes

    def engine(self):
        return ClassStack(super().engine(), self.n_classes)

    def predict_latent(self, Xnew, full_cov=False):
        """Per-class latent mean and variance at ``Xnew``, each ``(C, n)`` (or covariance
        ``(C, n, n)`` with ``full_cov``)."""
        with torch.no_grad():
            base = E.FullEngine if self.Z is None else E.SparseEngine
            src = self.X if self.Z is None else self.Z
            out = [base.predict(self.kernel, src, {k: v[c] for k, v in self.state.items()},
                                Xnew, full_cov) for c in range(self.n_classes)]
            return torch.stack([m for m, _ in out]), torch.stack([v for _, v in out])

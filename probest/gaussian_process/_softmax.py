"""The softmax likelihood of native multiclass GP classification.

``p(y = c | f) = exp(f_c) / sum_k exp(f_k)`` with one latent function per class.  Tensors use
the class-stacked layout of :mod:`probest.gaussian_process._multiclass`: latents ``f``, means
``m`` and variances ``v`` have shape ``(C, N)``, labels ``y`` are class indices of shape
``(N,)``.  The posterior is Gaussian and independent across classes given the sites, so the
marginal of ``f_n`` is ``N(m_n, diag(v_n))``; expectations under it have no closed form and use
``S`` scrambled-Sobol normal draws, fixed at construction (common random numbers: every
evaluation is deterministic and smooth in ``m`` and ``v``):

* ``E[log p]``, its gradients ``g_m = E[onehot - pi]`` and ``g_v = -E[pi (1 - pi)] / 2``
  (Bonnet's and Price's theorems: the variance gradient is half the expected diagonal
  curvature, so it is negative and CVI steps stay proper);
* ``log int p(y|f) N(f; m, diag v) df`` as a log-mean-exp over the draws (EP energy);
* the predictive ``E[softmax(f)]`` (sums to one exactly over the classes).
"""

from __future__ import annotations

import math

import torch

from probest.gaussian_process._likelihoods import Likelihood


def _normal_draws(n_samples: int, dim: int, seed: int) -> torch.Tensor:
    """``(n_samples, dim)`` standard normal quasi-random draws (scrambled Sobol, antithetic)."""
    half = (n_samples + 1) // 2
    u = torch.quasirandom.SobolEngine(dim, scramble=True, seed=seed).draw(half).double()
    u = u.clamp(1e-6, 1 - 1e-6)
    z = math.sqrt(2.0) * torch.erfinv(2.0 * u - 1.0)
    return torch.cat([z, -z])[:n_samples]


class Softmax(Likelihood):
    """``p(y=c|f) = softmax(f)_c`` for ``C`` latent functions (Monte Carlo integrals)."""

    name = "softmax"

    def __init__(self, n_classes: int, n_samples: int = 256, seed: int = 0) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"the softmax likelihood needs >= 2 classes; got {n_classes}.")
        self.n_classes, self.seed = int(n_classes), int(seed)
        self.register_buffer("eps", _normal_draws(int(n_samples), self.n_classes, seed))

    def _onehot(self, y, like):
        return torch.nn.functional.one_hot(y.long(), self.n_classes).T.to(like)

    def log_prob(self, y, f):
        return f.gather(0, y.long()[None]).squeeze(0) - torch.logsumexp(f, 0)

    def derivs(self, y, f):
        pi = torch.softmax(f, 0)
        return self.log_prob(y, f), self._onehot(y, f) - pi, -pi * (1.0 - pi)

    def _draws(self, m, v):
        eps = self.eps.to(m)
        return m[None] + torch.sqrt(v.clamp_min(0.0))[None] * eps[:, :, None]  # (S, C, N)

    def _log_lik_draws(self, y, f):
        idx = y.long()[None, None].expand(f.shape[0], 1, f.shape[2])
        return f.gather(1, idx).squeeze(1) - torch.logsumexp(f, 1)  # (S, N)

    def expected(self, y, m, v):
        f = self._draws(m, v)
        lp = self._log_lik_draws(y, f)
        pi = torch.softmax(f, 1)
        return lp.mean(0), (self._onehot(y, m) - pi.mean(0)), -0.5 * (pi * (1.0 - pi)).mean(0)

    def log_tilted(self, y, m, v):
        lp = self._log_lik_draws(y, self._draws(m, v))
        return torch.logsumexp(lp, 0) - math.log(lp.shape[0])

    def tilted_moments(self, y, m, v):
        raise ValueError(
            "inference='ep' is not available for multi_class='softmax': EP needs the moments of "
            "the C-dimensional softmax-tilted distribution, which have no closed form. Use "
            "inference='hybrid', 'vi' or 'laplace', or multi_class='one_vs_rest' for EP.")

    def predict_proba(self, m, v, chunk: int = 2048) -> torch.Tensor:
        """``E[softmax(f)]`` under ``N(m, diag v)``, shape ``(N, C)``."""
        out = [torch.softmax(self._draws(m[:, s:s + chunk], v[:, s:s + chunk]), 1).mean(0)
               for s in range(0, m.shape[1], chunk)]
        return torch.cat(out, 1).T

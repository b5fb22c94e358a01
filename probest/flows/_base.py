"""What the flow estimators share: storing their parameters and feeding the shared loop.

Every flow estimator declares its full signature explicitly (scikit-learn's ``get_params``
and ``clone`` read it) and stores the arguments unchanged with ``self._store_params(locals())`` (the base's).
The training parameters ``ema, max_iter, batch_size, lr, weight_decay, amp`` mean the same
in each: they become one :class:`probest._train.TrainConfig`.
"""

from __future__ import annotations

import numpy as np

from probest._train import BatchSampler, TrainConfig, TrainResult
from probest._validation import check_finite_rows, check_scale
from probest.base import FitContext, TorchEstimator


class FlowEstimator(TorchEstimator):
    """Base of :class:`FlowDensityEstimator`, :class:`FlowMatchingEstimator` and
    :class:`AutoregressiveDLMEstimator` (private: not part of the public API)."""

    def _train_config(self) -> TrainConfig:
        """Adam with the default clipping and logging, EMA and weight decay as set."""
        return TrainConfig(max_iter=int(self.max_iter), lr=self.lr, ema=self.ema,
                           weight_decay=self.weight_decay)

    def _batch_sampler(self, n: int, weights: np.ndarray | None, ctx: FitContext) -> BatchSampler:
        """Minibatch indices on the device, weighted by ``sample_weight`` when given."""
        w = None if weights is None else self._tensor(weights)
        return BatchSampler(n, self.batch_size, w, ctx.generator, self.device_)

    def _record_training(self, result: TrainResult, degenerate: bool = False) -> None:
        """``converged_`` is False when the loss became non-finite or the data are
        degenerate (constant columns: the likelihood has no maximum)."""
        self.converged_ = bool(result.converged) and not degenerate
        self.n_iter_ = int(result.n_iter)

    def _check_scale(self, X: np.ndarray) -> None:
        """Inputs whose squares overflow the fit dtype are refused in probest's words (they
        became ``inf`` in the tensors and surfaced as torch's Cholesky/multinomial errors)."""
        check_scale(X, owner=type(self).__name__, dtype=self.dtype_)

    def _finite(self, values: np.ndarray, what: str, X, allow_neg_inf: bool = False):
        """``values`` if every row is finite, else a ``ValueError`` naming the rows."""
        return check_finite_rows(values, owner=type(self).__name__, what=what, X=X,
                                 allow_neg_inf=allow_neg_inf)

"""What the flow estimators share: storing their parameters and feeding the shared loop.

Every flow estimator declares its full signature explicitly (scikit-learn's ``get_params``
and ``clone`` read it) and stores the arguments unchanged with ``self._store_params(locals())`` (the base's).
The training parameters ``ema, max_iter, batch_size, lr, weight_decay, amp`` mean the same
in each: they become one :class:`probest._train.TrainConfig`.
"""

from __future__ import annotations

import numpy as np

from probest._train import BatchSampler, TrainConfig, TrainResult
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

    def _record_training(self, result: TrainResult) -> None:
        self.converged_ = result.converged
        self.n_iter_ = int(result.n_iter)

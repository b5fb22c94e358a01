"""Torch tensors in, torch tensors out: GaussianMixture under scikit-learn's array API mode.

Inside ``sklearn.config_context(array_api_dispatch=True)`` a torch tensor passed to ``fit``
makes the fit run on the tensor's device and dtype, and the fitted array attributes are
torch tensors there (scikit-learn's contract for array-API inputs); ``predict``,
``predict_proba``, ``score_samples`` and ``sample`` then return tensors on that device.
Outside that mode tensors are read as arrays and numpy comes back, as before.
"""

from __future__ import annotations

import numpy as np
import torch

#: the fitted arrays that become tensors in array API mode
ARRAY_ATTRIBUTES = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def dispatch_on() -> bool:
    import sklearn

    return bool(sklearn.get_config().get("array_api_dispatch", False))


def split_input(X):
    """``(X for validation, device or None)``: a torch tensor in array API mode is read on
    the host for validation and its device is returned (the fit then runs there)."""
    if isinstance(X, torch.Tensor) and dispatch_on():
        return X.detach().cpu().numpy(), X.device
    return X, None


def to_torch_attributes(est, device) -> None:
    """The fitted arrays as tensors on ``device`` (array API mode)."""
    for name in ARRAY_ATTRIBUTES:
        if hasattr(est, name):
            setattr(est, name, torch.as_tensor(np.asarray(getattr(est, name)), device=device))


def wants_torch(est, X=None) -> bool:
    """Return tensors: array API mode and a tensor input (or, for ``sample``, a model fitted
    in that mode)."""
    if not dispatch_on():
        return False
    if X is None:
        return isinstance(getattr(est, "means_", None), torch.Tensor)
    return isinstance(X, torch.Tensor)


def output(t: torch.Tensor, torch_out: bool):
    """``t`` as returned to the caller: the tensor itself, or a numpy array."""
    return t if torch_out else t.detach().cpu().numpy()

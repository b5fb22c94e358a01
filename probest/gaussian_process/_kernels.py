"""Kernel construction: GPyTorch kernels, log-space by default, plus short string specs.

The default is ``ScaleKernel(MaternKernel(nu=2.5))`` (isotropic Matérn-5/2 with an output
scale), built with ``exp``/``log`` constraints so its raw parameters *are* the log
hyperparameters (``theta`` then means what it means in scikit-learn).  A user's GPyTorch kernel
is a template: it is deep-copied in ``fit`` and never trained in place; its ``theta`` is the
vector of its raw (unconstrained) parameters.
"""

from __future__ import annotations

import copy

import torch

_SPECS = {"matern12": 0.5, "matern32": 1.5, "matern52": 2.5, "rbf": None}


def _positive():
    from gpytorch.constraints import Positive

    return Positive(transform=torch.exp, inv_transform=torch.log)


def make_kernel(kernel, n_features: int, *, lengthscale: float = 1.0, outputscale: float = 1.0):
    """A fresh kernel from ``kernel`` (None, a spec string, or a GPyTorch kernel template).

    Strings: ``"matern12"``, ``"matern32"``, ``"matern52"``, ``"rbf"``, each optionally with an
    ``"_ard"`` suffix (one lengthscale per feature); all wrapped in a ``ScaleKernel``.
    """
    import gpytorch

    if kernel is None:
        kernel = "matern52"
    if isinstance(kernel, str):
        base, _, suffix = kernel.lower().partition("_")
        if base not in _SPECS or suffix not in ("", "ard"):
            raise ValueError(
                f"kernel={kernel!r} is not understood; pass a GPyTorch kernel or one of "
                f"{sorted(_SPECS)} (optionally with '_ard')."
            )
        ard = n_features if suffix == "ard" else None
        if _SPECS[base] is None:
            inner = gpytorch.kernels.RBFKernel(ard_num_dims=ard, lengthscale_constraint=_positive())
        else:
            inner = gpytorch.kernels.MaternKernel(
                nu=_SPECS[base], ard_num_dims=ard, lengthscale_constraint=_positive())
        k = gpytorch.kernels.ScaleKernel(inner, outputscale_constraint=_positive())
        k.base_kernel.lengthscale = torch.full_like(k.base_kernel.lengthscale, lengthscale)
        k.outputscale = torch.tensor(outputscale)
        return k.to(torch.float64)
    if isinstance(kernel, gpytorch.kernels.Kernel):
        return copy.deepcopy(kernel)
    raise TypeError(
        f"kernel must be None, a string spec or a gpytorch.kernels.Kernel, got "
        f"{type(kernel).__name__}."
    )


def hyperparameters(kernel) -> dict[str, float | list[float]]:
    """Constrained hyperparameter values by short name (``lengthscale``, ``outputscale``...)."""
    out: dict[str, float | list[float]] = {}
    for name, _, constraint in kernel.named_parameters_and_constraints():
        mod = kernel
        *path, pname = name.split(".")
        for p in path:
            mod = getattr(mod, p)
        raw = getattr(mod, pname).detach()
        val = constraint.transform(raw) if constraint is not None else raw
        key = name.replace("raw_", "").replace("base_kernel.", "")
        v = val.cpu().double().reshape(-1).tolist()
        out[key] = v[0] if len(v) == 1 else v
    return out

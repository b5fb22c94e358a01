"""Training-free Bayesianization (TFB) of a trained LoRA: SVD of ``B``, one sigma, a search.

Thin SVD ``B = U diag(d) V^T``; the re-parameterisation ``B' = U diag(d)``, ``A' = V^T A``
keeps ``B'A' = BA`` (outputs unchanged).  The posterior ``q(A'_ij) = N(A'_ij, (sigma/d_i)^2)``
puts isotropic noise ``sigma^2`` inside the column space of ``B``.  ``sigma`` is the largest
value whose degradation on an anchor set stays within a tolerance, found by geometric
bisection with the **same noise seed** for every candidate (so the criterion is a
deterministic function of sigma) and no gradients.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from probest.lora import _noise

CRITERIA = ("flip", "nll", "val_nll")


@torch.no_grad()
def reparameterize(model: nn.Module, mods: nn.ModuleDict) -> None:
    """Replace every LoRA ``(A, B)`` by ``(V^T A, U diag(d))`` in place and set the TFB noise
    modules' ``inv_d = 1 / d`` (0 where ``d <= 1e-6 * max(d)``: a direction ``B`` never uses)."""
    for key, (layer, ad) in _noise.lora_layers(model).items():
        mod = mods[key.replace(".", "/")]
        a, b = layer.lora_A[ad].weight, layer.lora_B[ad].weight
        u, d, vh = torch.linalg.svd(b.double(), full_matrices=False)
        a.copy_((vh @ a.double()).to(a.dtype))
        b.copy_((u * d).to(b.dtype))
        keep = d > 1e-6 * d.max().clamp_min(1e-300)
        mod.inv_d.copy_(torch.where(keep, 1.0 / d.clamp_min(1e-300), 0.0).to(mod.inv_d.dtype))


@dataclasses.dataclass
class SearchResult:
    """What :func:`search_sigma` found: ``sigma`` (the largest value known to meet the
    tolerance; 0.0 when even ``sigma_min`` fails), the final bracket ``(lo, hi)``, and
    ``history``: ``(sigma, degradation)`` for every evaluated candidate."""

    sigma: float
    bracket: tuple[float, float]
    history: list[tuple[float, float]]


def search_sigma(degradation: Callable[[float], float], tol: float, sigma_min: float = 1e-4,
                 sigma_max: float = 1.0, n_iter: int = 12) -> SearchResult:
    """Geometric bisection for the largest ``sigma`` with ``degradation(sigma) <= tol``.

    ``degradation`` is assumed non-decreasing on ``[sigma_min, sigma_max]`` (TFB makes it
    so by evaluating every candidate with the same noise seed).  The result is the
    **lower** bracket end: a sigma that was evaluated and met the tolerance (the upper end
    failed).  After ``n_iter`` halvings of ``log(hi / lo)`` the threshold lies in
    ``[sigma, sigma * hi / lo]``.

    Parameters
    ----------
    degradation : callable
        ``degradation(sigma) -> float``.
    tol : float
        The tolerance.
    sigma_min, sigma_max : float
        The search interval (``0 < sigma_min < sigma_max``).
    n_iter : int, default=12
        Bisection steps.

    Returns
    -------
    SearchResult
        ``sigma`` (0.0 when even ``sigma_min`` fails; ``sigma_max`` when it passes),
        ``bracket`` and ``history``.

    Examples
    --------
    >>> from probest.lora import search_sigma
    >>> res = search_sigma(lambda s: s, tol=0.05, n_iter=20)  # threshold at 0.05
    >>> lo, hi = res.bracket
    >>> lo <= 0.05 < hi, res.sigma == lo
    (True, True)
    """
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}.")
    hist: list[tuple[float, float]] = []

    def ok(s: float) -> bool:
        v = float(degradation(s))
        hist.append((s, v))
        return v <= tol

    if ok(sigma_max):
        return SearchResult(sigma_max, (sigma_max, sigma_max), hist)
    if not ok(sigma_min):
        return SearchResult(0.0, (0.0, sigma_min), hist)
    lo, hi = sigma_min, sigma_max
    for _ in range(int(n_iter)):
        mid = math.sqrt(lo * hi)
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return SearchResult(lo, (lo, hi), hist)


def criterion_fn(criterion: str, p0: np.ndarray, sample_probs: Callable[[float], np.ndarray],
                 y: np.ndarray | None = None) -> Callable[[float], float]:
    """The degradation at ``sigma``: ``"flip"`` the fraction of anchor predictions that differ
    from sigma = 0; ``"nll"`` the relative increase of the NLL of the sigma = 0 pseudo-labels;
    ``"val_nll"`` the NLL of the true labels ``y`` (a quantity to minimise, not a tolerance)."""
    pseudo = p0.argmax(1)
    nll0 = -np.log(np.clip(p0[np.arange(len(p0)), pseudo], 1e-300, None)).mean()

    def fn(sigma: float) -> float:
        p = sample_probs(sigma)
        if criterion == "flip":
            return float((p.argmax(1) != pseudo).mean())
        if criterion == "nll":
            nll = -np.log(np.clip(p[np.arange(len(p)), pseudo], 1e-300, None)).mean()
            return float((nll - nll0) / max(nll0, 1e-12))
        lab = np.asarray(y)
        return float(-np.log(np.clip(p[np.arange(len(p)), lab], 1e-300, None)).mean())

    return fn


def minimise_on_grid(fn: Callable[[float], float], sigma_min: float, sigma_max: float,
                     n: int) -> SearchResult:
    """``val_nll``: the sigma of a geometric grid (0 included) with the lowest ``fn``."""
    grid = [0.0, *np.geomspace(sigma_min, sigma_max, max(2, int(n))).tolist()]
    hist = [(s, float(fn(s))) for s in grid]
    best = min(hist, key=lambda t: t[1])[0]
    return SearchResult(best, (best, best), hist)


# ----------------------------------------------------------------------------- functional

def default_logits(model: nn.Module, batch: dict[str, torch.Tensor],
                   label_token_ids: list[int] | None = None) -> torch.Tensor:
    """Class logits of a peft model on one batch: ``out.logits`` of a sequence classifier,
    or, for a causal LM (3-D logits), the last non-padding token's logits restricted to
    ``label_token_ids``."""
    out = model(**batch)
    logits = out.logits if hasattr(out, "logits") else out[0]
    if logits.dim() == 3:
        if label_token_ids is None:
            raise ValueError("a causal LM needs label_token_ids: the vocabulary ids of the "
                             "tokens that name the classes.")
        mask = batch.get("attention_mask")
        if mask is None:
            last = torch.full((logits.shape[0],), logits.shape[1] - 1, device=logits.device)
        else:  # right padding: the last 1 of the mask; left padding: the final position
            pos = torch.arange(mask.shape[1], device=mask.device)
            last = (mask.long() * pos).argmax(1)
        logits = logits[torch.arange(logits.shape[0], device=logits.device), last]
        logits = logits[:, list(label_token_ids)]
    return logits


def _batches(anchor: Any, batch_size: int) -> list[dict[str, torch.Tensor]]:
    if isinstance(anchor, torch.Tensor):
        anchor = {"input_ids": anchor}
    if isinstance(anchor, dict) or hasattr(anchor, "keys"):
        anchor = dict(anchor)
        n = len(next(iter(anchor.values())))
        return [{k: v[i:i + batch_size] for k, v in anchor.items()} for i in range(0, n, batch_size)]
    if isinstance(anchor, Iterable):
        return [dict(b) for b in anchor]
    raise ValueError("anchor must be a dict of tensors (input_ids, attention_mask, ...), a "
                     "tensor of input_ids or a list of such batches.")


class TFBHandle:
    """TFB noise installed on a peft model by :func:`bayesianize`.

    Attributes
    ----------
    sigma : float
        The chosen sigma (the noise is scaled by it whenever sampling is on).
    search : SearchResult
        Candidates evaluated and the final bracket.
    n_forward : int
        Anchor-set forward passes the search used (each one pass over the anchors).
    """

    def __init__(self, model, state, mods, logits_fn, n_samples, seed):
        self.model, self.state, self.mods = model, state, mods
        self.logits_fn, self.n_samples, self.seed = logits_fn, int(n_samples), int(seed)
        self.sigma, self.search, self.n_forward, self.batch_size = 0.0, None, 0, 32

    @torch.no_grad()
    def sample_logits(self, batches, sigma: float | None = None, n_samples: int | None = None,
                      seed: int | None = None) -> torch.Tensor:
        """``(S, n, C)`` logits with TFB noise at ``sigma`` (default: the chosen one); every
        call with the same ``seed`` draws the same noise."""
        sigma = self.sigma if sigma is None else float(sigma)
        s_count = self.n_samples if n_samples is None else int(n_samples)
        s_count = 1 if sigma == 0.0 else max(1, s_count)
        dev = next(self.model.parameters()).device
        gen = torch.Generator(device=dev)
        gen.manual_seed(self.seed if seed is None else int(seed))
        self.state.generator, self.state.sigma, self.state.active = gen, sigma, sigma > 0
        was_training = self.model.training
        self.model.eval()
        try:
            out = []
            for _ in range(s_count):
                out.append(torch.cat([self.logits_fn(self.model, b) for b in batches]))
                self.n_forward += 1
        finally:
            self.state.active = False
            self.state.sigma = self.sigma
            self.model.train(was_training)
        return torch.stack(out)

    def predict_proba(self, batch, n_samples: int | None = None) -> torch.Tensor:
        """Class probabilities averaged over ``n_samples`` TFB draws (batched as the search
        was, so the anchors get exactly the draws the search saw)."""
        dev = next(self.model.parameters()).device
        batches = [{k: v.to(dev) if torch.is_tensor(v) else v for k, v in b.items()}
                   for b in _batches(batch, self.batch_size)]
        logits = self.sample_logits(batches, n_samples=n_samples)
        return logits.float().softmax(-1).mean(0)

    def remove(self) -> None:
        """Detach the noise hooks (the re-parameterised A', B' stay: outputs are unchanged)."""
        _noise.remove(self.mods)


def bayesianize(peft_model: nn.Module, anchor: Any, criterion: str = "flip", tol: float = 0.01,
                *, n_samples: int = 10, sigma_min: float = 1e-4, sigma_max: float = 1.0,
                n_iter: int = 12, seed: int = 0, batch_size: int = 32,
                label_token_ids: list[int] | None = None, labels: Any = None,
                logits_fn: Callable[..., torch.Tensor] | None = None) -> TFBHandle:
    """Install TFB noise on a trained peft LoRA model in place and choose its sigma.

    Parameters
    ----------
    peft_model : peft.PeftModel
        A model with LoRA layers (sequence classifier or causal LM); its A and B matrices
        are re-parameterised in place (outputs unchanged).
    anchor : dict of tensors, tensor or list of dicts
        The anchor inputs (``input_ids``, ``attention_mask``, ...); >= 256 examples advised.
    criterion : {"flip", "nll", "val_nll"}, default="flip"
        ``"flip"``: fraction of anchor predictions changed vs sigma = 0 must be <= ``tol``;
        ``"nll"``: relative pseudo-label NLL increase <= ``tol``; ``"val_nll"``: the sigma of
        a geometric grid with the lowest NLL of ``labels`` (``tol`` unused).
    tol : float, default=0.01
        The tolerance.
    n_samples : int, default=10
        Noise draws averaged per evaluation and at prediction.
    sigma_min, sigma_max : float
        The search interval.
    n_iter : int, default=12
        Bisection steps (``val_nll``: grid size).
    seed : int, default=0
        The noise seed, the same for every candidate sigma.
    batch_size : int, default=32
        Anchor batch size.
    label_token_ids : list of int, optional
        For a causal LM: the vocabulary ids naming the classes (last-token logits are
        restricted to them).
    labels : array-like, optional
        Class indices of the anchors (``"val_nll"`` only).
    logits_fn : callable, optional
        ``logits_fn(model, batch) -> (n, C)`` logits; default :func:`default_logits`.

    Returns
    -------
    TFBHandle
        ``.sigma``, ``.search``, ``.n_forward``, ``.predict_proba(batch)``, ``.remove()``.

    Examples
    --------
    >>> import torch, peft, transformers, warnings
    >>> from probest.lora import bayesianize
    >>> _ = torch.manual_seed(0)
    >>> cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
    ...                               num_attention_heads=2, intermediate_size=32)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", FutureWarning)
    ...     model = peft.get_peft_model(transformers.BertForSequenceClassification(cfg),
    ...                                 peft.LoraConfig(r=2, target_modules=["query", "value"]))
    >>> for n, p in model.named_parameters():  # pretend it was trained: B != 0
    ...     if "lora_B" in n:
    ...         _ = p.data.normal_(0, 0.3)
    >>> anchor = {"input_ids": torch.randint(1, 50, (64, 5))}
    >>> tfb = bayesianize(model.eval(), anchor, criterion="flip", tol=0.05, n_samples=4)
    >>> 0 < tfb.sigma <= 1, tfb.predict_proba(anchor).shape
    (True, torch.Size([64, 2]))
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}.")
    if criterion == "val_nll" and labels is None:
        raise ValueError("criterion='val_nll' needs labels for the anchors.")
    if logits_fn is None:
        def logits_fn(m, b):
            return default_logits(m, b, label_token_ids)
    state, mods = _noise.install(peft_model, "tfb")
    dev = next(peft_model.parameters()).device
    mods.to(dev)
    reparameterize(peft_model, mods)
    handle = TFBHandle(peft_model, state, mods, logits_fn, n_samples, seed)
    handle.batch_size = int(batch_size)
    batches = [{k: v.to(dev) if torch.is_tensor(v) else v for k, v in b.items()}
               for b in _batches(anchor, batch_size)]

    def probs(sigma: float) -> np.ndarray:
        lg = handle.sample_logits(batches, sigma)
        return lg.double().softmax(-1).mean(0).cpu().numpy()

    fn = criterion_fn(criterion, probs(0.0), probs,
                      None if labels is None else np.asarray(labels))
    if criterion == "val_nll":
        handle.search = minimise_on_grid(fn, sigma_min, sigma_max, n_iter)
    else:
        handle.search = search_sigma(fn, tol, sigma_min, sigma_max, n_iter)
    handle.sigma = state.sigma = handle.search.sigma
    return handle

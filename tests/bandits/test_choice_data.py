"""load_choice_data: real human choices from hBayesDM's shipped files, read at run time."""

import importlib.util
import warnings

import numpy as np
import pytest

from probest.datasets import load_choice_data


def test_missing_package_names_the_install_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "hbayesdm" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps hbayesdm"):
        load_choice_data("bandit2arm")


@pytest.mark.skipif(importlib.util.find_spec("hbayesdm") is None,
                    reason="pip install --no-deps hbayesdm")
@pytest.mark.parametrize(("name", "n_sub", "n_trials", "K"), [
    ("bandit2arm", 20, 100, 2), ("bandit4arm", 10, 200, 4), ("bandit4arm2", 10, 300, 4)])
def test_real_bandit_data_in_long_format_fit(name, n_sub, n_trials, K):
    from probest.bandits import Exp3LearningRateMLE, IdentifiabilityWarning

    df = load_choice_data(name)
    assert list(df.columns[:4]) == ["subject", "trial", "action", "reward"]
    assert df.subject.nunique() == n_sub and (df.groupby("subject").size() == n_trials).all()
    assert set(df.action) == set(range(K)) and df.reward.between(0, 1).all()
    if name == "bandit2arm":
        with warnings.catch_warnings():  # real subjects do hit the range's ends (flagged)
            warnings.simplefilter("ignore", IdentifiabilityWarning)
            est = Exp3LearningRateMLE(gamma=0.05, ci=None, random_state=0).fit(df)
        assert est.diagnostics_["hit_bound"].sum() < n_sub / 2
        assert est.learning_rate_.shape == (n_sub,) and np.all(np.isfinite(est.loglik_))

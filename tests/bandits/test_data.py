"""Input formats give identical fits; bad input fails with probest's words."""

import numpy as np
import pandas as pd
import pytest

from probest.bandits import Exp3LearningRateMLE, simulate_exp3


@pytest.fixture(scope="module")
def sim():
    return simulate_exp3(3, 60, (0.2, 0.8), learning_rate=0.5, gamma=0.05, random_state=1)


def _fit(*args, **kw):
    est = Exp3LearningRateMLE(gamma=0.05, grid=(1e-2, 1e1, 20), ci=None,
                              random_state=0).fit(*args, **kw)
    return est.learning_rate_[np.argsort(est.subjects_)]  # by subject id


def test_every_input_form_gives_the_same_fit(sim):
    ref = _fit(sim.actions, sim.rewards)
    ev = sim.events()
    df = sim.to_frame().sample(frac=1.0, random_state=0)  # shuffled rows: trial order is used
    np.testing.assert_allclose(_fit(ev), ref)
    # shuffled rows list the subjects in another order, so each gets another grid jitter:
    # equal up to the refinement's resolution (~1e-4 relative)
    np.testing.assert_allclose(_fit(df), ref, rtol=1e-3)
    np.testing.assert_allclose(_fit(list(sim.actions), list(sim.rewards)), ref)
    np.testing.assert_allclose(_fit(ev["actions"], ev["rewards"], subject=ev["subjects"]), ref)
    one = _fit(sim.actions[0], sim.rewards[0])
    assert one.shape == (1,)
    # ragged: subjects of different lengths
    rag = _fit([sim.actions[0], sim.actions[1][:40]], [sim.rewards[0], sim.rewards[1][:40]])
    assert rag.shape == (2,) and rag[0] == pytest.approx(ref[0], rel=1e-3)  # jitter differs


@pytest.mark.parametrize(("change", "match"), [
    (lambda a, r: (a - 1, r), "outside 0..K-1"),
    (lambda a, r: (a + 0.5, r), "whole numbers"),
    (lambda a, r: (a, r * 2.0), r"outside \[0, 1\]"),
    (lambda a, r: (a, np.where(np.arange(a.size).reshape(a.shape) == 3, np.nan, r)), "NaN"),
    (lambda a, r: (a[:, :1], r[:, :1]), "at least 2 trials"),
    (lambda a, r: (a, r[:, :-1]), "shape"),
    (lambda a, r: (a.astype(str), r), "integer arm ids"),
])
def test_bad_input_is_refused_clearly(sim, change, match):
    a, r = change(sim.actions.copy(), sim.rewards.copy())
    with pytest.raises(ValueError, match=match):
        Exp3LearningRateMLE().fit(a, r)


def test_n_arms_smaller_than_observed_and_unknown_inputs(sim):
    with pytest.raises(ValueError, match="smaller than the observed"):
        Exp3LearningRateMLE(n_arms=2).fit(sim.actions + 1, sim.rewards)
    ev = sim.events()
    with pytest.raises(ValueError, match="subject"):
        Exp3LearningRateMLE().fit({"actions": ev["actions"], "rewards": ev["rewards"]})
    with pytest.raises(ValueError, match="rewards are missing"):
        Exp3LearningRateMLE().fit(sim.actions)
    est = Exp3LearningRateMLE(gamma=0.05, grid=(1e-2, 1e1, 20), random_state=0).fit(ev)
    with pytest.raises(ValueError, match="unknown subject"):
        est.predict_proba({**ev, "subjects": ev["subjects"] + 10})
    with pytest.raises(ValueError, match="unknown action"):
        est.predict_proba({**ev, "actions": ev["actions"] * 3})
    with pytest.raises(ValueError, match="length"):
        est.predict_proba({**ev, "rewards": ev["rewards"][:-1]})
    frame = pd.DataFrame({"subject": ev["subjects"], "action": ev["actions"]})
    with pytest.raises(ValueError, match="'actions' and 'rewards'"):
        Exp3LearningRateMLE().fit(frame)

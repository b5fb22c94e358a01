"""make_flow_toy: shapes, determinism, kinds."""

import numpy as np
import pytest

from probest.datasets import make_flow_toy


@pytest.mark.parametrize("kind", ["moons", "sine", "swirl", "checkerboard"])
def test_shapes_and_seed(kind):
    a = make_flow_toy(300, kind=kind, random_state=0)
    b = make_flow_toy(300, kind=kind, random_state=0)
    assert a.shape == (300, 2) and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, make_flow_toy(300, kind=kind, random_state=1))


def test_checkerboard_occupies_alternate_squares():
    X = make_flow_toy(4000, kind="checkerboard", noise=0.0, random_state=0)
    parity = (np.floor(X[:, 0]) + np.floor(X[:, 1])) % 2
    assert np.all(parity == parity[0])


def test_moons_are_centred_and_scaled():
    X = make_flow_toy(4000, random_state=0)
    assert np.abs(X.mean(0)).max() < 0.1 and 2.0 < X[:, 0].max() < 3.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        make_flow_toy(10, kind="spiral")
    with pytest.raises(ValueError, match="n_samples"):
        make_flow_toy(0)

"""The objective-surface helper, the synthetic generator and the tour rows."""

import numpy as np
import pytest
from sklearn.datasets import make_moons

from probest.gaussian_process import objective_surface, plot_objective_surface


def test_objective_surface_shapes_and_consistency():
    X, y = make_moons(40, noise=0.3, random_state=0)
    ls, os_ = np.array([0.5, 1.0, 2.0]), np.array([0.5, 2.0])
    surf = objective_surface(X, y, ls, os_)
    assert set(surf) == {"laplace", "ep", "elbo", "hybrid"}
    for z in surf.values():
        assert z.shape == (2, 3) and np.all(np.isfinite(z))
    # the ELBO lower-bounds the evidence; at the same CVI sites the EP energy sits above it
    assert np.all(surf["elbo"] <= surf["hybrid"] + 1e-8)
    with pytest.raises(ValueError, match="binary"):
        objective_surface(X, np.arange(40) % 3, ls, os_)
    with pytest.raises(ValueError, match="unknown kind"):
        objective_surface(X, y, ls, os_, kinds=("bogus",))


def test_plot_objective_surface_writes_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from probest.gaussian_process import GaussianProcessClassifier

    X, y = make_moons(30, noise=0.3, random_state=0)
    est = GaussianProcessClassifier(random_state=0).fit(X, y)
    fig = plot_objective_surface(X, y, np.array([0.5, 1, 2]), np.array([0.5, 2]),
                                 kinds=("ep", "hybrid"), estimators=[est],
                                 path=tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert len([a for a in fig.axes if a.get_title()]) == 2


def test_make_gp_classification():
    from probest.datasets import make_gp_classification

    X, y, f = make_gp_classification(500, 3, random_state=0, return_latent=True)
    assert X.shape == (500, 3) and set(np.unique(y)) == {0, 1}
    # labels follow the latent function: P(y=1) rises with f
    assert y[f > 1].mean() > 0.75 and y[f < -1].mean() < 0.25
    X2, y2 = make_gp_classification(500, 3, random_state=0)
    np.testing.assert_array_equal(y, y2)
    with pytest.raises(ValueError, match="link"):
        make_gp_classification(10, link="cauchit")


def test_tour_quick(tmp_path):
    from probest.gaussian_process._tour import run

    rows = run(True, tmp_path)
    assert len(rows) == 2
    for r in rows:
        assert r.family == "gaussian_process" and np.isfinite(r.value)
        assert np.isfinite(r.peer_value) and r.seconds > 0
    # hybrid beats sklearn's Laplace on breast cancer; exact GPR equals sklearn's GPR
    assert rows[0].value < rows[0].peer_value
    assert rows[1].value == pytest.approx(rows[1].peer_value, abs=1e-3)
    assert all((tmp_path / p).exists() or __import__("os").path.exists(p) for p in
               rows[0].plots)
    from probest._tour_types import tour_problems

    assert tour_problems(rows) == []  # directions declared; a loss would have to say why
    assert [r.outcome for r in rows] == ["win", "tie"]

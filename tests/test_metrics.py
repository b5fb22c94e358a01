import numpy as np
import pytest

from probest import metrics


def test_nlpd_classification_and_errors():
    y = np.array([0, 1, 1])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    expected = -np.mean(np.log([0.9, 0.8, 0.5]))
    assert metrics.nlpd_classification(y, p) == pytest.approx(expected)
    assert metrics.nlpd_classification(y, p[:, 1]) == pytest.approx(expected)
    with pytest.raises(ValueError, match="not in classes"):
        metrics.nlpd_classification(np.array([0, 2, 1]), p, classes=np.array([0, 1]))


def test_nlpd_gaussian():
    assert metrics.nlpd_gaussian([0.0], [0.0], [1.0]) == pytest.approx(0.5 * np.log(2 * np.pi))
    with pytest.raises(ValueError, match="positive"):
        metrics.nlpd_gaussian([0.0], [0.0], [0.0])


def test_ece_perfect_and_bad():
    y = np.array([0, 1, 0, 1])
    assert metrics.expected_calibration_error(y, np.eye(2)[y]) == 0.0
    assert metrics.expected_calibration_error(y, np.eye(2)[1 - y]) == pytest.approx(1.0)


def test_misclustering_and_matching():
    assert metrics.misclustering_error([0, 0, 1, 1], [1, 1, 0, 0]) == 0.0
    assert metrics.misclustering_error([0, 0, 1, 1], [1, 1, 0, 1]) == pytest.approx(0.25)
    perm = metrics.match_components([[0, 0], [5, 5]], [[5.1, 5], [0.1, 0]])
    assert list(perm) == [1, 0]


def test_roc_auc():
    assert metrics.roc_auc([1.0, 2.0], [-1.0, -2.0]) == 1.0

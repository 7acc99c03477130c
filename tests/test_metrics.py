import numpy as np
import pytest
from sklearn.metrics import accuracy_score, precision_recall_fscore_support

from headstart.core.metrics import classification_scores


def test_by_hand():
    scores = classification_scores(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 4)
    np.testing.assert_allclose(scores.precision, [1, 1 / 3, 0, 0])  # class 1: predicted 3 times, 1 right
    np.testing.assert_allclose(scores.recall, [0.5, 1, 0, 0])
    np.testing.assert_allclose(scores.fscore, [2 / 3, 0.5, 0, 0])
    assert scores.macro_f1 == pytest.approx((2 / 3 + 0.5) / 4) and scores.accuracy == 0.5
    assert scores.support.tolist() == [2, 1, 1, 0]


@pytest.mark.parametrize("seed", range(5))
def test_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    labels, predictions = rng.integers(0, 7, 200), rng.integers(0, 6, 200)
    scores = classification_scores(labels, predictions, 8)
    expected = precision_recall_fscore_support(labels, predictions, labels=np.arange(8), zero_division=0)
    for got, want in zip((scores.precision, scores.recall, scores.fscore, scores.support), expected, strict=True):
        np.testing.assert_allclose(got, want)
    assert scores.accuracy == pytest.approx(accuracy_score(labels, predictions))

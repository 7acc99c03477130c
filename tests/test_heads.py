"""Initial heads: the top-K mix by hand, K rules, fallback, baselines."""

import numpy as np
import pytest

from headstart.heads import (
    baseline_head,
    best_k_per_type,
    calibrated_head,
    fit_temperature,
    head_diagnostics,
    head_predictions,
    imprint_head,
    kgrid_scores,
    probe_head,
    similarity_head,
    similarity_heads,
    topk_indices,
    topk_mix,
    xavier_head,
)

SIM = np.array(
    [
        [0.1, 0.6, 0.3, 0.0, 0.2],
        [0.5, 0.5, 0.1, 0.5, 0.0],  # a three-way tie at 0.5: lower index first
        [0.0, 0.0, 0.0, 0.0, 0.0],  # nothing similar
    ]
)
W = np.arange(10, dtype=float).reshape(5, 2)  # rows (0,1), (2,3), (4,5), (6,7), (8,9)
B = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


def test_topk_mix_by_hand():
    weight, bias, empty = topk_mix(SIM, W, B, 2)
    # row 0: top-2 = sources 1 (0.6), 2 (0.3) -> 2/3 * (2,3) + 1/3 * (4,5) = (8/3, 11/3); bias 2/3*2 + 1/3*3
    np.testing.assert_allclose(weight[0], [8 / 3, 11 / 3], rtol=1e-6)
    assert bias[0] == pytest.approx(7 / 3)
    # row 1: tie -> sources 0 and 1, equal weights: ((0,1)+(2,3))/2 = (1, 2); bias 1.5
    np.testing.assert_allclose(weight[1], [1.0, 2.0])
    assert bias[1] == pytest.approx(1.5)
    assert empty == [2]
    weight, bias, _ = topk_mix(SIM, W, B, 1)
    np.testing.assert_allclose(weight[0], W[1])  # K=1 copies the nearest source row
    weight, _, _ = topk_mix(SIM, W, B, [3, 1, 1])  # per-row K (best K per class type)
    np.testing.assert_allclose(weight[0], (0.6 * W[1] + 0.3 * W[2] + 0.2 * W[4]) / 1.1, rtol=1e-6)


def test_k_limits_and_negative_similarities():
    with pytest.raises(ValueError, match="K=6 exceeds the 5 source classes"):
        topk_indices(SIM, 6)
    with pytest.raises(ValueError, match="K must be at least 1"):
        topk_indices(SIM, 0)
    weight, _, empty = topk_mix(np.array([[0.8, -0.4, 0.0]]), W[:3], B[:3], 2)
    np.testing.assert_allclose(weight[0], W[0])  # the negative cosine weighs 0
    assert empty == []


def test_zero_rows_fall_back_to_random():
    weight, bias, empty = similarity_head(SIM, W, B, 2, seed=0)
    random_weight, _ = xavier_head(3, 2, seed=0)
    np.testing.assert_allclose(weight[2], random_weight[2])
    assert bias[2] == 0 and empty == [2]


def test_xavier_bounds_and_seed():
    weight, bias = xavier_head(10, 1280, seed=1)
    bound = np.sqrt(6 / (10 + 1280))
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.9 * bound
    assert (bias == 0).all()
    np.testing.assert_array_equal(weight, xavier_head(10, 1280, seed=1)[0])  # the same for the same seed
    assert not np.allclose(weight, xavier_head(10, 1280, seed=2)[0])  # another seed, another head


def test_imprint_and_probe():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 8)) * 4
    labels = np.repeat(np.arange(3), 5)
    features = centres[labels] + rng.normal(size=(15, 8))
    source = rng.normal(size=(20, 8)) * 2
    weight, bias = imprint_head(features, labels, 3, source)
    np.testing.assert_allclose(np.linalg.norm(weight, axis=1), np.linalg.norm(source, axis=1).mean(), rtol=1e-5)
    assert ((features @ weight.T + bias).argmax(1) == labels).mean() == 1.0
    weight, bias = probe_head(features, labels, 3, seed=0)
    assert ((features @ weight.T + bias).argmax(1) == labels).mean() == 1.0


def test_kgrid_and_best_k():
    # Two target classes; their features equal source rows 0 and 3. The nearest source is right for
    # class 0 but the second-nearest for class 1: K=2 beats K=1 for class 1.
    sources = np.eye(4)
    sim = np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.6, 0.0, 0.5]])
    features = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1.0]])
    scores = kgrid_scores(
        sim, sources, np.zeros(4), [1, 2], features, np.array([0, 1]), ["included", "disjoint"], seed=0
    )
    table = scores.set_index(["k", "type"])["fscore"]
    assert table[(1, "all")] == pytest.approx(2 / 3 / 2 + 0)  # K=1: both predicted class 0 -> F 2/3 and 0
    assert table[(2, "all")] == pytest.approx(1.0)
    assert best_k_per_type(scores[scores["type"] != "all"]) == {"disjoint": 2, "included": 2}


def test_similarity_heads_at_one_shot_level():
    # the K grid's setup above: the best K is 2 for both types, so the 'best' head is the K=2 mix
    sources, sim = np.eye(4), np.array([[0.9, 0.1, 0.0, 0.0], [0.0, 0.6, 0.0, 0.5]])
    features, labels = np.array([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]), np.array([0, 1])
    scores, best, heads = similarity_heads(
        sim,
        sources,
        np.array([0.03, 0.02, 0.01, 0.0]),
        [1, 2],
        ["1", "best"],
        features,
        labels,
        ["included", "disjoint"],
        seed=0,
    )
    assert best == {"disjoint": 2, "included": 2} and set(scores["k"]) == {1, 2}
    np.testing.assert_allclose(heads["1"]["weight"], [[1, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_allclose(heads["best"]["weight"], [[0.9, 0.1, 0, 0], [0, 6 / 11, 0, 5 / 11]], rtol=1e-6)
    np.testing.assert_allclose(heads["best"]["bias"], [0.9 * 0.03 + 0.1 * 0.02, 6 / 11 * 0.02], rtol=1e-6)
    assert heads["best"]["ks"] == [2, 2] and heads["1"]["ks"] == [1, 1] and heads["1"]["random_rows"] == []


def test_baseline_head_dispatches_by_name():
    rng = np.random.default_rng(0)
    features, labels, source = rng.normal(size=(6, 4)), np.array([0, 0, 1, 1, 2, 2]), rng.normal(size=(5, 4))
    np.testing.assert_array_equal(
        baseline_head("imprint", features, labels, 3, source, 7)[0], imprint_head(features, labels, 3, source)[0]
    )
    np.testing.assert_array_equal(
        baseline_head("probe", features, labels, 3, source, 7)[1], probe_head(features, labels, 3, 7)[1]
    )
    for other in ("lp", "random"):  # the random head does not depend on the features: xavier_head, per seed
        with pytest.raises(ValueError, match=f"unknown feature baseline '{other}'"):
            baseline_head(other, features, labels, 3, source, 7)


def test_fit_temperature_by_hand():
    # three images with logits (1, 0), two of class 0 and one of class 1: the loss is least where
    # softmax gives class 0 a probability of 2/3, i.e. 1/T = ln 2
    logits = np.array([[1.0, 0.0]] * 3)
    assert fit_temperature(logits, np.array([0, 0, 1])) == pytest.approx(1 / np.log(2), rel=1e-6)
    # logits twice as large need twice the temperature
    assert fit_temperature(2 * logits, np.array([0, 0, 1])) == pytest.approx(2 / np.log(2), rel=1e-6)


def test_fit_temperature_stops_at_its_bound_when_every_image_is_right(caplog):
    logits = np.array([[3.0, 0.0], [0.0, 3.0]])
    assert fit_temperature(logits, np.array([0, 1]), bounds=(0.1, 10.0)) == pytest.approx(0.1, rel=1e-3)
    assert "at its bound" in caplog.text


def test_calibrated_head_divides_weights_and_bias_by_the_fitted_temperature():
    weight, bias = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.5, 0.0])
    features = np.array([[0.5, 0.0]] * 3)  # logits (1, 0) for all three images, as above
    new_weight, new_bias, temperature = calibrated_head(weight, bias, features, np.array([0, 0, 1]))
    assert temperature == pytest.approx(1 / np.log(2), rel=1e-6)
    np.testing.assert_allclose(new_weight, weight * np.log(2), rtol=1e-6)
    np.testing.assert_allclose(new_bias, bias * np.log(2), rtol=1e-6)
    assert new_weight.dtype == np.float32 and new_bias.dtype == np.float32
    # the same predictions on any image: only the confidence changes
    images = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_array_equal(
        head_predictions(new_weight, new_bias, images), head_predictions(weight, bias, images)
    )


def test_head_diagnostics_by_hand():
    weight = np.array([[2.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # rows 0 and 1 identical: two classes tied
    bias = np.zeros(3)
    features = np.array([[1.0, 0.0]])  # logits (2, 2, 0)
    stats = head_diagnostics(weight, bias, features)
    assert stats["row_norm"] == pytest.approx(5 / 3)
    assert stats["logit_range"] == pytest.approx(2.0)
    p = np.exp([2.0, 2.0, 0.0]) / np.exp([2.0, 2.0, 0.0]).sum()
    assert stats["entropy"] == pytest.approx(-(p * np.log(p)).sum())
    assert stats["max_row_cosine"] == pytest.approx(1.0)
    assert stats["mean_row_cosine"] == pytest.approx(1 / 3)  # cosines 1, 0, 0

"""Initial heads: the top-K mix by hand, K rules, fallback, baselines."""

import numpy as np
import pytest

from headstart.heads.initial import (
    IMPRINT_SCALE,
    CGrid,
    best_k_per_type,
    calibrated_head,
    cotuning_head,
    fit_logistic,
    fit_temperature,
    head_diagnostics,
    head_logits,
    head_predictions,
    imprint_head,
    kgrid_scores,
    linear_fit_at,
    linear_sweep,
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


def blobs(rng, n_per_class, centres, noise=1.0):
    labels = np.repeat(np.arange(len(centres)), n_per_class)
    return centres[labels] + noise * rng.normal(size=(len(labels), centres.shape[1])), labels


def test_imprinted_rows_are_normalised_means_of_normalised_features():
    features = np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0], [0.0, -5.0], [1.0, 1.0]])
    labels = np.array([0, 0, 1, 1, 2])
    weight, scale = imprint_head(features, labels, 3)
    # class 0: mean of (1, 0) and (0, 1) is (0.5, 0.5), normalised (1, 1)/sqrt 2; class 1: (0, 1) and (0, -1)
    # average to 0: a zero row stays zero; class 2: (1, 1)/sqrt 2
    np.testing.assert_allclose(weight, [[2**-0.5, 2**-0.5], [0, 0], [2**-0.5, 2**-0.5]], atol=1e-7)
    assert scale == IMPRINT_SCALE == 10.0  # Qi et al.'s reference: nn.Parameter(torch.FloatTensor([10]))
    # the cosine classifier's logits: scale times the cosine with each row
    logits = head_logits({"weight": weight, "scale": np.array([scale])}, {"classifier": "cosine"}, [[2.0, 0.0]])
    np.testing.assert_allclose(logits, [[10 * 2**-0.5, 0.0, 10 * 2**-0.5]], atol=1e-6)


def test_fit_logistic_without_a_prior_is_scikit_learns_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    features, labels = blobs(rng, 20, rng.normal(size=(3, 5)) * 2, noise=1.5)
    for c in (0.01, 1.0):
        weight, bias = fit_logistic(features, labels, 3, c, max_iter=10_000, tol=1e-9)
        reference = LogisticRegression(C=c, tol=1e-10, max_iter=10_000).fit(features, labels)
        np.testing.assert_allclose(weight, reference.coef_, atol=1e-3)  # float32 matmuls
        # the intercept is not penalised, so it is defined up to a constant: compare centred
        np.testing.assert_allclose(bias - bias.mean(), reference.intercept_ - reference.intercept_.mean(), atol=1e-3)


def test_the_prior_pulls_the_fit_to_the_similarity_head_or_lets_the_data_decide():
    rng = np.random.default_rng(1)
    features, labels = blobs(rng, 60, rng.normal(size=(3, 4)), noise=2.0)  # overlapping: a finite unpenalised fit
    prior = (rng.normal(size=(3, 4)) * 3, rng.normal(size=3))
    strong, _ = fit_logistic(features, labels, 3, 1e-9, prior=prior, tol=1e-9)
    np.testing.assert_allclose(strong, prior[0], atol=1e-6)  # a very strong penalty returns the prior head
    weak_prior, _ = fit_logistic(features, labels, 3, 1e6, prior=prior, max_iter=20_000, tol=1e-9)
    weak_zero, _ = fit_logistic(features, labels, 3, 1e6, max_iter=20_000, tol=1e-9)
    # a very weak one: the unpenalised fit, whatever the centre. Softmax ignores a vector added to every
    # row, so the fits can differ by one: compare the rows centred on their mean
    centred = lambda w: w - w.mean(axis=0)  # noqa: E731
    np.testing.assert_allclose(centred(weak_prior), centred(weak_zero), atol=1e-3)
    assert np.abs(centred(weak_zero) - centred(prior[0])).max() > 1  # and it is not the prior


def test_the_sweep_keeps_the_strength_validation_favours_and_maps_back_to_raw_features():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 6))
    train = blobs(rng, 4, centres, noise=2.0)  # few, noisy training images: a strong penalty helps
    val = blobs(rng, 50, centres, noise=2.0)
    grid = CGrid(-4, 2, 7)
    weight, bias, chosen, sweep = linear_sweep((train[0] * 3 + 5, train[1]), (val[0] * 3 + 5, val[1]), 3, grid)
    np.testing.assert_allclose(sweep["c"], np.logspace(-4, 2, 7))
    best = sweep["val_macro_f1"].max()
    assert chosen == sweep.loc[sweep["val_macro_f1"] == best, "c"].min()  # the strongest on ties
    # the returned head, on raw features, predicts what the chosen fit scored on validation
    from headstart.core.metrics import classification_scores

    predicted = head_predictions(weight, bias, val[0] * 3 + 5)
    assert classification_scores(val[1], predicted, 3).macro_f1 == pytest.approx(best)
    # by hand: the standardised fit at the chosen C, mapped back (LP-FT's scalar mean and std)
    x = train[0] * 3 + 5
    mean, std = x.mean(), x.std()
    fit = None
    for c in grid.values():  # the same warm-started path
        fit = fit_logistic((x - mean) / std, train[1], 3, float(c), start=fit)
        if c == chosen:
            break
    np.testing.assert_allclose(weight, fit[0] / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias, fit[1] - mean / std * fit[0].sum(axis=1), rtol=1e-5, atol=1e-5)


def test_the_fit_at_a_grid_value_is_the_sweeps_head_when_the_sweep_picks_it():
    """headstart init's probe without a validation split: the same warm-started path, so the same head."""
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 6))
    train, val = blobs(rng, 4, centres, noise=2.0), blobs(rng, 50, centres, noise=2.0)
    prior = (rng.normal(size=(3, 6)).astype(np.float32), rng.normal(size=3).astype(np.float32))
    grid = CGrid(-4, 2, 7)
    weight, bias, chosen, _ = linear_sweep((train[0] * 3 + 5, train[1]), val, 3, grid, prior)
    at = linear_fit_at((train[0] * 3 + 5, train[1]), 3, grid, chosen, prior)
    np.testing.assert_array_equal(at[0], weight)
    np.testing.assert_array_equal(at[1], bias)
    assert not np.array_equal(linear_fit_at((train[0] * 3 + 5, train[1]), 3, grid, 100.0, prior)[0], weight) or (
        chosen == 100.0
    )
    with pytest.raises(ValueError, match="is not a value of the grid"):
        linear_fit_at(train, 3, grid, 0.5, prior)


def test_a_prior_sweep_with_the_strongest_penalty_returns_the_prior_head_on_raw_features():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(2, 3))
    train, val = blobs(rng, 5, centres), blobs(rng, 5, centres)
    prior = (rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=2).astype(np.float32))
    weight, _, chosen, _ = linear_sweep((train[0] * 2 + 1, train[1]), (val[0], val[1]), 2, CGrid(-12, -12, 1), prior)
    assert chosen == pytest.approx(1e-12)
    np.testing.assert_allclose(weight, prior[0], atol=1e-5)


def test_cotuning_head_checks_its_relationship():
    target, source = (np.zeros((2, 4)), np.zeros(2)), (np.ones((3, 4)), np.zeros(3))
    tensors = cotuning_head(target, source, np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]))
    assert tensors["relationship"].shape == (2, 3) and tensors["source_weight"].shape == (3, 4)
    with pytest.raises(ValueError, match="rows summing to 1"):
        cotuning_head(target, source, np.array([[0.5, 0.4, 0.0], [0.2, 0.3, 0.5]]))


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
    stats = head_diagnostics(weight, head_logits({"weight": weight, "bias": bias}, {}, features))
    assert stats["row_norm"] == pytest.approx(5 / 3)
    assert stats["logit_range"] == pytest.approx(2.0)
    p = np.exp([2.0, 2.0, 0.0]) / np.exp([2.0, 2.0, 0.0]).sum()
    assert stats["entropy"] == pytest.approx(-(p * np.log(p)).sum())
    assert stats["max_row_cosine"] == pytest.approx(1.0)
    assert stats["mean_row_cosine"] == pytest.approx(1 / 3)  # cosines 1, 0, 0

"""Figures and tables on a small synthetic curves table, numbers checked by hand."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from scipy import stats

from headstart.report.figures import (
    MARKERS,
    PALETTE,
    figure1,
    figure2,
    figure3,
    figure_answer,
    figure_answer_curves,
)
from headstart.report.statistics import (
    ReportError,
    answer_margins,
    answer_table,
    answer_wide,
    convergence_table,
    example_class,
    label,
    mean_ci,
    method_family,
    method_order,
    read_best_k,
    run_scores,
    run_summary,
    t_interval,
    table1,
    table2,
    table2_wide,
    top_sources,
    write_table,
)

WNIDS = ["n1", "n2"]


def synthetic_curves() -> pd.DataFrame:
    rows = []
    # (method, k, shots, seed) -> test macro F at iterations 0, 10, 20; per-class F = macro +/- 0.1
    runs = {
        ("random", "0", 5, 0): [0.10, 0.50, 0.60],
        ("random", "0", 5, 1): [0.20, 0.40, 0.70],
        ("inference", "best", 5, 0): [0.50, 0.70, 0.65],
        ("inference", "best", 5, 1): [0.60, 0.60, 0.80],
        ("inference", "1", 5, 0): [0.40, 0.50, 0.60],
        ("inference", "1", 5, 1): [0.45, 0.55, 0.65],
        ("random", "0", 1, 0): [0.05, 0.15, 0.10],
    }
    # the validation macro F of the same evaluations: it picks the 'selected' iteration (the earliest on ties)
    val = {
        ("random", "0", 5, 0): [0.10, 0.60, 0.50],  # -> iteration 10: test 0.50
        ("random", "0", 5, 1): [0.20, 0.50, 0.60],  # -> 20: 0.70
        ("inference", "best", 5, 0): [0.40, 0.60, 0.60],  # tie at 10 and 20 -> 10: 0.70
        ("inference", "best", 5, 1): [0.70, 0.70, 0.60],  # tie at 0 and 10 -> 0: 0.60 (test maximum 0.80)
        ("inference", "1", 5, 0): [0.40, 0.50, 0.60],
        ("inference", "1", 5, 1): [0.45, 0.55, 0.65],
        ("random", "0", 1, 0): [0.05, 0.15, 0.10],  # -> 10: 0.15
    }
    for (method, k, shots, seed), values in runs.items():
        for iteration, macro, val_macro in zip([0, 10, 20], values, val[(method, k, shots, seed)], strict=True):
            for c, class_id in enumerate(WNIDS):
                f = macro + (0.1 if c == 0 else -0.1)
                rows.append(
                    {
                        "iteration": iteration,
                        "class_id": class_id,
                        "precision": f,
                        "recall": f,
                        "fscore": f,
                        "support": 10,
                        "macro_f1": macro,
                        "accuracy": macro,
                        "val_macro_f1": val_macro,
                        "val_accuracy": val_macro,
                        "train_loss": np.nan if iteration == 0 else 1.0,
                        "method": method,
                        "k": k,
                        "shots": shots,
                        "seed": seed,
                    }
                )
    return pd.DataFrame(rows)


def test_mean_ci_by_hand():
    mean, half = mean_ci([0.1, 0.2])
    assert mean == pytest.approx(0.15)
    assert half == pytest.approx(stats.t.ppf(0.975, 1) * np.std([0.1, 0.2], ddof=1) / np.sqrt(2))
    assert np.isnan(mean_ci([0.3])[1])


def test_table2_by_hand(tmp_path):
    best_k = {"inference": {"5": {"included": 3, "disjoint": 1}}}
    table = table2(synthetic_curves(), best_k).set_index(["shots", "method"])
    assert table.loc[(5, "random"), "first"] == pytest.approx(0.15)  # mean of 0.10, 0.20
    assert table.loc[(5, "random"), "best"] == pytest.approx(0.65)  # mean of max 0.60, 0.70
    assert table.loc[(5, "inference"), "first"] == pytest.approx(0.55)
    assert table.loc[(5, "inference"), "best"] == pytest.approx(0.75)  # max 0.70 and 0.80
    assert table.loc[(5, "inference"), "best_k"] == "disjoint:1 included:3"
    # selected: the test score where validation peaks, the earliest iteration on ties
    assert table.loc[(5, "random"), "selected"] == pytest.approx((0.50 + 0.70) / 2)
    assert table.loc[(5, "inference"), "selected"] == pytest.approx((0.70 + 0.60) / 2)
    assert table.loc[(5, "inference"), "selected_iteration"] == 5  # median of iterations 10 and 0
    assert table.loc[(1, "random"), "selected"] == pytest.approx(0.15)
    assert table.loc[(1, "random"), "seeds"] == 1 and np.isnan(table.loc[(1, "random"), "first_ci95"])
    assert (5, "inference") in table.index and len(table) == 3  # the K=1 runs are not Table 2's
    flat = table2(synthetic_curves(), best_k)
    wide = table2_wide(flat, ["random", "inference"])
    half = stats.t.ppf(0.975, 1) * np.std([0.1, 0.2], ddof=1) / np.sqrt(2)
    assert wide.loc[5, "Random first"] == f"0.15 ± {half:.2f}"
    assert wide.loc[1, "Random best"] == "0.15" and wide.loc[1, "Inference (visual) first"] == ""
    assert wide.loc[1, "Random selected"] == "0.15"
    write_table(flat, tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.tex", wide=wide, caption="Table 2.")
    assert pd.read_csv(tmp_path / "t.csv")["first"].round(4).tolist() == flat["first"].round(4).tolist()
    assert "Random first" in (tmp_path / "t.md").read_text() and "\\begin{tabular}" in (tmp_path / "t.tex").read_text()


def test_method_order_and_best_k_files(tmp_path):
    assert method_order(
        ["probe", "wordnet", "random", "imprint", "inference"], ["inference", "softmax", "wordnet"]
    ) == ["random", "inference", "wordnet", "imprint", "probe"]
    assert method_order(["imprint", "wordvec"], ["wordvec"]) == ["wordvec", "imprint"]  # no random: no gap
    for shots, best in [(5, {"included": 3}), (1, {"included": 1})]:
        (tmp_path / f"{shots}.json").write_text(json.dumps({"measure": "inference", "shots": shots, "best_k": best}))
    # a semantic measure's heads are the same at every shot level: one file, shots null
    (tmp_path / "wordnet.json").write_text(json.dumps({"measure": "wordnet", "shots": None, "best_k": {"disjoint": 2}}))
    best_k = read_best_k([tmp_path / "5.json", tmp_path / "1.json", tmp_path / "wordnet.json"])
    assert best_k == {"inference": {"5": {"included": 3}, "1": {"included": 1}}, "wordnet": {"all": {"disjoint": 2}}}
    curves = synthetic_curves()
    table = table2(curves.assign(method=curves["method"].replace({"inference": "wordnet"})), best_k)
    assert set(table.loc[table["method"] == "wordnet", "best_k"]) == {"disjoint:2"}  # at every shot level


def test_example_class_must_be_a_target_class():
    classes = pd.DataFrame({"class_id": ["n03057021", "n04133789"], "name": ["Coat", "Sandal"]})
    assert example_class(classes, "n04133789") == ("n04133789", "Sandal")
    assert example_class(classes, "Sandal") == ("n04133789", "Sandal")  # by label too
    assert example_class(classes, None) == ("n03057021", "Coat")  # not set: the first class
    with pytest.raises(
        ReportError, match=r"^report.example_class n99 is not a target class \(one of n03057021, n04133789"
    ):
        example_class(classes, "n99")


def test_top_sources_per_target_class():
    matrix = pd.DataFrame(
        [[0.1, 0.7, 0.7, 0.2], [0.0, 0.0, 0.3, 0.9]], index=["t1", "t2"], columns=["s1", "s2", "s3", "s4"]
    )
    table = top_sources(matrix, {"t1": "bullet", "t2": "coat"}, {"s1": "a", "s2": "b", "s3": "c", "s4": "d"}, n=3)
    assert table.columns.tolist() == ["target", "#1", "#2", "#3"]
    assert table.iloc[0].tolist() == [
        "bullet (t1)",
        "b (s2, 0.7)",
        "c (s3, 0.7)",
        "d (s4, 0.2)",
    ]  # tie: lower index first
    assert table.iloc[1].tolist() == ["coat (t2)", "d (s4, 0.9)", "c (s3, 0.3)", "a (s1, 0)"]


def test_table1_picks_the_top_source():
    matrices = {
        "inference": pd.DataFrame([[0.1, 0.7, 0.7]], index=["t"], columns=["s1", "s2", "s3"]),
        "wordnet": pd.DataFrame([[0.9, 0.2, 0.1]], index=["t"], columns=["s1", "s2", "s3"]),
    }
    table = table1(matrices, "t", "bullet", {"s1": "projectile", "s2": "lipstick", "s3": "slug"})
    assert table.loc[0, "Inference (visual)"] == "lipstick (s2, 0.7)"  # ties go to the lower index
    assert table.loc[0, "WordNet (Wu–Palmer)"] == "projectile (s1, 0.9)"


def test_figures_are_written(tmp_path):
    curves = synthetic_curves()
    data = figure1(curves, 5, tmp_path / "f1.png", tmp_path / "f1.pdf")
    assert set(data["method"]) == {"random", "inference"} and set(data["k"]) == {"0", "1"}
    data = figure2(curves, "n1", "coat", 5, tmp_path / "f2.png", tmp_path / "f2.pdf")
    assert data["fscore"].max() == pytest.approx(0.80) and data["fscore"].min() == pytest.approx(0.20)  # class n1 only
    kgrid = pd.DataFrame(
        [
            # inference at two shot levels; wordnet's grid (semantic) is every level's: shots null
            {"measure": m, "shots": n, "k": k, "type": t, "fscore": f, "n_classes": 1}
            for m, f0, levels in (("inference", 0.5, (5, 1)), ("wordnet", 0.3, (None,)))
            for n in levels
            for k in (1, 2, 5)
            for t, f in (("included", f0 + k / 100), ("disjoint", f0), ("all", f0))
        ]
    )
    data = figure3(kgrid, 5, tmp_path / "f3.png", tmp_path / "f3.pdf")
    assert set(data["type"]) == {"included", "disjoint"}
    assert len(data) == 2 * 3 * 2 and set(data["shots"].dropna()) == {5}  # 2 measures x 3 K x 2 types
    for name in ("f1", "f2", "f3"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000 and (tmp_path / f"{name}.pdf").stat().st_size > 1000


def test_each_method_keeps_its_colour_and_marker_in_every_figure(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr("headstart.report.figures.plt.close", figures.append)  # keep each figure to look at it
    curves = synthetic_curves()
    figure1(curves, 5, tmp_path / "f1.png", tmp_path / "f1.pdf")
    figure2(curves, "n1", "coat", 5, tmp_path / "f2.png", tmp_path / "f2.pdf")
    kgrid = pd.DataFrame(
        [
            {"measure": m, "shots": 5, "k": k, "type": "disjoint", "fscore": 0.5, "n_classes": 1}
            for m in ("wordnet", "random", "inference")
            for k in (1, 2)
        ]
    )
    figure3(kgrid, 5, tmp_path / "f3.png", tmp_path / "f3.pdf")
    styles = []  # per figure: legend label -> (colour, marker)
    for figure in figures:
        legend = figure.axes[0].get_legend() or figure.legends[0]
        handles = zip(legend.get_texts(), legend.legend_handles, strict=True)
        styles.append({text.get_text(): (to_hex(handle.get_color()), handle.get_marker()) for text, handle in handles})
    assert styles[0]["Random"] == styles[1]["Random"] == styles[2]["Random"]
    assert styles[0]["Inference (visual)"] == styles[2]["Inference (visual)"]
    assert styles[0]["Random"] != styles[0]["Inference (visual)"]
    assert {marker for _, marker in styles[2].values()} == {"o", "s", "^"}  # random, inference, wordnet


def test_convergence_table_by_hand():
    """C6 on mean curves: random ahead of wordnet at iterations 10 and 20, before both converge."""
    runs = {
        ("random", "0"): [0.1, 0.6, 0.8, 0.8],  # converged (within 0.01 of its best) from iteration 20
        ("wordnet", "1"): [0.3, 0.4, 0.7, 0.8],  # from 30: random leads by 0.2 at 10 and 0.1 at 20
        ("inference", "1"): [0.3, 0.7, 0.8, 0.8],  # ahead until both converge at 20
    }
    rows = [
        {"method": m, "k": k, "shots": 5, "seed": seed, "iteration": 10 * i, "macro_f1": f + offset}
        for (m, k), values in runs.items()
        for seed, offset in [(0, -0.05), (1, 0.05)]  # two seeds around the mean
        for i, f in enumerate(values)
    ]
    rows += [{"method": "wordnet", "k": "1", "shots": 1, "seed": 0, "iteration": 0, "macro_f1": 0.5}]  # no random
    curves = pd.DataFrame(rows).assign(accuracy=0.0, train_loss=1.0)
    curves["val_macro_f1"] = curves["macro_f1"]
    table = convergence_table(curves).set_index("method")
    assert list(table.index) == ["inference", "wordnet"] and set(table["shots"]) == {5}
    wordnet, inference = table.loc["wordnet"], table.loc["inference"]
    assert wordnet["converged_at"] == 30 and wordnet["random_converged_at"] == 20
    assert wordnet["random_ahead_from"] == 10 and wordnet["largest_random_lead"] == pytest.approx(0.2)
    assert not wordnet["accelerated"]
    assert wordnet["first"] == pytest.approx(0.3) and wordnet["random_first"] == pytest.approx(0.1)
    assert inference["accelerated"] and pd.isna(inference["random_ahead_from"])
    assert inference["converged_at"] == 20 and np.isnan(inference["largest_random_lead"])
    assert wordnet["selected"] == pytest.approx(0.8) and wordnet["random_selected"] == pytest.approx(0.8)


def test_a_calibrated_method_has_its_own_style_next_to_its_measure():
    assert label("wordnet_lin_calibrated") == "WordNet Lin, calibrated"
    assert method_order(["probe", "wordnet_calibrated", "random", "wordnet"], ["inference", "wordnet"]) == [
        "random",
        "wordnet",
        "wordnet_calibrated",
        "probe",
    ]
    styles = {name: (PALETTE[name], MARKERS[name]) for name in PALETTE}
    assert len(set(styles.values())) == len(styles)  # no two methods look alike
    names = list(PALETTE)
    assert names.index("Inference (visual), calibrated") == names.index("Inference (visual)") + 1
    assert MARKERS["Word vectors, calibrated"] == "*" and PALETTE["Word vectors"] != PALETTE["Word vectors, calibrated"]


def test_the_winner_is_ranked_on_validation_even_when_test_says_otherwise():
    """Issue 27.1: a method better on test but worse on validation does not win; the table says so."""
    curves = synthetic_curves()
    random, inference = curves["method"] == "random", curves["method"] == "inference"
    # validation: a constant 0.20 for random, 0.65 for inference (both select iteration 0, the earliest)
    curves.loc[random, "val_macro_f1"], curves.loc[inference, "val_macro_f1"] = 0.20, 0.65
    curves.loc[random, ["macro_f1", "fscore"]] += 0.5  # test at iteration 0: random 0.60, 0.70; inference 0.50, 0.60
    table = answer_table(curves).set_index("shots")
    assert table.at[5, "best_method"] == "inference" and table.at[5, "test_best_method"] == "random"
    assert table.at[5, "selected"] == pytest.approx(0.55) and table.at[5, "runner_up_selected"] == pytest.approx(0.65)
    assert not table.at[5, "tie"]  # validation: inference ahead by 0.45 at both seeds, a CI of width 0
    assert answer_wide(table.reset_index()).loc[5, "best on test (not used to choose)"] == "Random"


def test_the_zero_image_row_holds_the_untrained_heads_that_need_no_image(tmp_path):
    """Issue 27.6: at 0 images per class, the runs whose head needs no image (random, a semantic measure at
    K = best), at iteration 0 of the largest shot level; visual measures and fixed-K runs are left out."""
    curves = synthetic_curves()
    wordnet = curves[curves["method"] == "inference"].assign(method="wordnet")  # the same numbers, semantic
    table = answer_table(pd.concat([curves, wordnet], ignore_index=True)).set_index("shots")
    assert table.index.tolist() == [5, 1, 0]
    zero = table.loc[0]
    # iteration 0 at 5 shots: wordnet/kbest val 0.40, 0.70 (test 0.50, 0.60); random val 0.10, 0.20 (test 0.10, 0.20)
    assert zero["best_method"] == "wordnet" and zero["runner_up"] == "random"
    assert zero["val_selected"] == pytest.approx(0.55) and zero["selected"] == pytest.approx(0.55)
    assert zero["random_selected"] == pytest.approx(0.15) and zero["margin_over_random"] == pytest.approx(0.40)
    half = stats.t.ppf(0.975, 1) * np.std([0.3, 0.5], ddof=1) / np.sqrt(2)  # paired val margins 0.30, 0.50
    assert zero["val_margin_over_runner_up_ci95"] == pytest.approx(half) and zero["tie"]
    wide = answer_wide(table.reset_index())
    assert wide.index[-1] == "0 (class names only)" and wide.iloc[-1]["random (test)"] == "0.15"
    alone = answer_table(synthetic_curves()).set_index("shots").loc[0]  # inference is visual: random alone
    assert alone["best_method"] == "random" and pd.isna(alone["runner_up"])
    figure_answer(pd.concat([curves, wordnet], ignore_index=True), tmp_path / "a.png", tmp_path / "a.pdf")
    assert (tmp_path / "a.png").stat().st_size > 5000


def test_figures_draw_the_tables_interval():
    """Issue 27.2: the band is the Student-t interval the tables print, not a bootstrap of three seeds."""
    values = [0.60, 0.70, 0.65]
    mean, half = mean_ci(values)
    assert t_interval(values) == pytest.approx((mean - half, mean + half))
    assert half == pytest.approx(stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / np.sqrt(3))
    assert half > (max(values) - min(values)) / 2  # wider than the seeds' range, as t with 2 d.o.f. is
    assert t_interval([0.5]) == (0.5, 0.5)


def test_selection_takes_the_earliest_of_tied_validation_maxima():
    scores = run_scores(synthetic_curves())
    summary = run_summary(scores).set_index(["method", "k", "shots", "seed"])
    assert summary.loc[("inference", "best", 5, 0), "selected_iteration"] == 10  # val 0.60 at 10 and 20
    assert summary.loc[("inference", "best", 5, 1), "selected_iteration"] == 0  # val 0.70 at 0 and 10
    assert summary.loc[("inference", "best", 5, 1), "selected"] == pytest.approx(0.60)
    assert summary.loc[("inference", "best", 5, 1), "best"] == pytest.approx(0.80)  # the test maximum
    # the order of the rows does not matter
    shuffled = run_summary(scores.sample(frac=1, random_state=0)).set_index(["method", "k", "shots", "seed"])
    pd.testing.assert_frame_equal(shuffled.sort_index(), summary.sort_index())


def test_answer_table_by_hand(tmp_path):
    table = answer_table(synthetic_curves()).set_index("shots")
    five = table.loc[5]
    # ranked on validation: inference 0.60 and 0.70 at its selected evaluations, random 0.60 and 0.60
    assert five["best_method"] == "inference" and five["runner_up"] == "random"
    assert five["val_selected"] == pytest.approx(0.65) and five["runner_up_val_selected"] == pytest.approx(0.60)
    # the paired validation margin (0.00, 0.10): 0.05 ± 12.7 * 0.071 / 1.41, a CI that includes 0: a tie
    val_half = stats.t.ppf(0.975, 1) * np.std([0.0, 0.1], ddof=1) / np.sqrt(2)
    assert five["val_margin_over_runner_up_ci95"] == pytest.approx(val_half) and five["tie"]
    assert five["selected"] == pytest.approx(0.65) and five["runner_up_selected"] == pytest.approx(0.60)
    # paired per seed: inference - random = 0.70 - 0.50 and 0.60 - 0.70
    half = stats.t.ppf(0.975, 1) * np.std([0.2, -0.1], ddof=1) / np.sqrt(2)
    assert five["margin_over_runner_up"] == pytest.approx(0.05)
    assert five["margin_over_runner_up_ci95"] == pytest.approx(half)
    assert five["margin_over_random"] == pytest.approx(0.05) and five["random_selected"] == pytest.approx(0.60)
    one = table.loc[1]  # random alone (one seed): no runner-up, no CI
    assert one["best_method"] == "random" and pd.isna(one["runner_up"]) and np.isnan(one["selected_ci95"])
    wide = answer_wide(table.reset_index())
    assert wide.loc[5, "best init (on validation)"] == "tie: Inference (visual) / Random"
    assert wide.loc[1, "best init (on validation)"] == "Random"
    assert wide.loc[5, "test margin over runner-up"] == f"+0.05 ± {half:.2f}"
    assert (
        wide.loc[1, "runner-up (validation; test)"] == "" and wide.loc[5, "best on test (not used to choose)"] == "same"
    )
    figure_answer(synthetic_curves(), tmp_path / "a.png", tmp_path / "a.pdf")
    assert (tmp_path / "a.png").stat().st_size > 5000 and (tmp_path / "a.pdf").stat().st_size > 1000


def test_answer_margins_by_hand(tmp_path, monkeypatch):
    """The answer figure's numbers: each method's paired test margin over random at its selected evaluations,
    the winner on validation and the runner-up it ties with marked; random has no row of its own."""
    curves = synthetic_curves()
    wordnet = curves[curves["method"] == "inference"].assign(method="wordnet_prior")  # a semantic prior
    wordnet["val_macro_f1"] -= 0.2  # below inference on validation: never picked at 5 shots
    margins = answer_margins(pd.concat([curves, wordnet], ignore_index=True)).set_index(["shots", "method"])
    assert "random" not in margins.index.get_level_values("method")
    five = margins.loc[(5, "inference")]
    # selected test scores: inference 0.70, 0.60; random 0.50, 0.70 -> paired differences 0.20, -0.10
    half = stats.t.ppf(0.975, 1) * np.std([0.2, -0.1], ddof=1) / np.sqrt(2)
    assert five["margin_over_random"] == pytest.approx(0.05) and five["margin_over_random_ci95"] == pytest.approx(half)
    assert five["pick"] == "best"  # inference ties with random on validation: random has no row to mark
    # wordnet_prior at 5 shots: val 0.20, 0.40, 0.40 (seed 0) -> iteration 10, test 0.70; 0.50, 0.50, 0.40
    # (seed 1) -> iteration 0, test 0.60: the same margins as inference's, and no pick
    assert margins.loc[(5, "wordnet_prior"), "margin_over_random"] == pytest.approx(0.05)
    assert margins.loc[(5, "wordnet_prior"), "pick"] == ""
    # 0 images per class: a prior is a linear probe fitted on the images, so it has no untrained head there
    assert 0 not in margins.index.get_level_values("shots") or "wordnet_prior" not in margins.loc[0].index
    methods = ("wordnet_prior", "sentence", "softmax_calibrated", "probe", "cotuning_adam")
    assert [method_family(m) for m in methods] == ["semantic", "semantic", "visual", "baseline", "baseline"]
    drawn = []
    monkeypatch.setattr("headstart.report.figures.plt.close", drawn.append)  # keep the figure to look at it
    figure_answer(pd.concat([curves, wordnet], ignore_index=True), tmp_path / "a.png", tmp_path / "a.pdf")
    (semantic, visual) = [ax for ax in drawn[0].axes if ax.get_title(loc="left")]
    assert semantic.get_title(loc="left") == "Semantic heads" and visual.get_title(loc="left") == "Visual heads"
    cells = [text.get_text() for text in visual.texts]
    assert f"+0.05\n±{half:.2f}" in cells  # inference at 5 shots
    boxes = [patch for patch in visual.patches if patch.get_linestyle() == "-" and not patch.get_fill()]
    assert len(boxes) == 1  # the winner at 5 shots; random wins at 1 (one seed, alone)
    labels = [tick.get_text() for tick in semantic.get_xticklabels()]
    # random's own score heads each level, * where random wins (alone at 1, and untrained at 0: no semantic head)
    assert labels == ["5\nrandom 0.60", "1\nrandom 0.15 *", "0\n(names only)\nrandom 0.15 *"]
    assert (tmp_path / "a.png").stat().st_size > 5000 and (tmp_path / "a.pdf").stat().st_size > 1000
    figure_answer_curves(curves, tmp_path / "c.png", tmp_path / "c.pdf")
    assert (tmp_path / "c.png").stat().st_size > 5000


def test_docs_blocks_are_replaced_from_the_generated_table(tmp_path):
    from headstart.report.docs import DocsError, main, markdown_table, splice

    table = tmp_path / "answer.md"
    table.write_text("Caption line.\n\n| a | b |\n|--:|--:|\n| 1 | 2 |\n")
    page = tmp_path / "README.md"
    page.write_text("# x\n<!-- generated: answer:head -->\nold\n<!-- /generated -->\ntail\n")
    assert main([str(page), f"answer:head={table}"]) == 0
    assert (
        page.read_text()
        == "# x\n<!-- generated: answer:head -->\n| a | b |\n|--:|--:|\n| 1 | 2 |\n<!-- /generated -->\ntail\n"
    )
    assert markdown_table(table.read_text()).startswith("| a")
    # two tables (the benchmark's) stay two, with what stands between them; notes after the last are left out
    two = "Caption.\n| a |\n|---|\n| 1 |\n\nMeasured on a vm:\n\n| b |\n|---|\n| 2 |\n\nA note.\n"
    assert markdown_table(two) == "| a |\n|---|\n| 1 |\n\nMeasured on a vm:\n\n| b |\n|---|\n| 2 |"
    with pytest.raises(DocsError, match="no block '<!-- generated: answer:last_stage -->'"):
        splice(page.read_text(), "answer:last_stage", "x")


def test_random_alone_gives_every_table(tmp_path):
    """Issue 28: finetune.methods [random] alone: no convergence rows (nothing to compare), not a KeyError."""
    curves = synthetic_curves()
    alone = curves[curves["method"] == "random"]
    table = convergence_table(alone)
    assert table.empty and "random_ahead_from" in table.columns
    answer = answer_table(alone).set_index("shots")
    assert (answer["best_method"] == "random").all() and answer["runner_up"].isna().all()
    assert not answer["tie"].any()
    answer_wide(answer.reset_index())
    figure_answer(alone, tmp_path / "a.png", tmp_path / "a.pdf")

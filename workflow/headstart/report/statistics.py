"""The paper's tables and their statistics from the workflow's tables (curves, K grids, similarities):
per-seed scores, the selected evaluation, confidence intervals, the answer and convergence tables, and
one writer for every table (CSV, Markdown, LaTeX). The figures are headstart.report.figures'; no plotting
library is imported here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..core.errors import HeadstartError
from ..core.vocabulary import (
    BASELINES,
    CALIBRATED_SUFFIX,
    PRIOR_SUFFIX,
    VISUAL_MEASURES,
    Method,
    needs_no_images,
    similarity_measure,
)

LABELS = {
    "random": "Random",
    "inference": "Inference (visual)",
    "wordnet": "WordNet (Wu–Palmer)",
    "wordvec": "Word vectors",
    "sentence": "Sentence embeddings",
    "softmax": "Softmax (Co-Tuning's relationship)",
    "imprint": "Imprinting",
    "probe": "Linear probe",
    "cotuning": "Co-Tuning",
    "cotuning_adam": "Co-Tuning, Adam",
    "wordnet_path": "WordNet path",
    "wordnet_lch": "WordNet LCH",
    "wordnet_res": "WordNet Resnik",
    "wordnet_lin": "WordNet Lin",
    "wordnet_jcn": "WordNet JCN",
}


def label(method: str) -> str:
    """The name a figure or table shows for a method (a calibrated or prior method: its measure's, with
    ', calibrated' or ', prior')."""
    kind = Method(method)
    if kind.suffix:
        return f"{label(kind.measure)}, {kind.suffix.removeprefix('_')}"
    return LABELS.get(method, method)


class ReportError(HeadstartError, ValueError):
    """A report setting that does not fit the run's data."""


def example_class(classes: pd.DataFrame, wanted: str | None) -> tuple[str, str]:
    """(class id, name) of ``report.example_class`` among the target classes (classes.parquet), given by
    id or by name; the first class when it is not set."""
    if wanted is None:
        return classes["class_id"].iloc[0], classes["name"].iloc[0]
    for class_id, name in zip(classes["class_id"], classes["name"], strict=True):
        if wanted in (class_id, name):
            return class_id, name
    raise ReportError(
        f"report.example_class {wanted} is not a target class (one of {', '.join(classes['class_id'][:5])}, ...)"
    )


def method_order(methods: Sequence[str], measures: Sequence[str]) -> list[str]:
    """The given methods in the paper's order: the random baseline, the similarity measures in the
    config's order, then the other baselines."""
    order = [
        "random",
        *(v for m in measures for v in (m, m + CALIBRATED_SUFFIX, m + PRIOR_SUFFIX)),
        *(b for b in BASELINES if b != "random"),
    ]
    return [m for m in order if m in set(methods)]


def read_best_k(paths: Sequence[str | Path]) -> dict[str, dict[str, dict[str, int]]]:
    """measure -> shot level -> class type -> best K, from the heads jobs' ``*_best_k.json`` files (a
    semantic measure's, 'shots' null, holds at every level: its shot level is 'all')."""
    import json

    best_k: dict[str, dict[str, dict[str, int]]] = {}
    for path in paths:
        content = json.loads(Path(path).read_text())
        level = "all" if content["shots"] is None else str(content["shots"])
        best_k.setdefault(content["measure"], {})[level] = content["best_k"]
    return best_k


def collect_curves(paths: Sequence[str | Path]) -> pd.DataFrame:
    """All fine-tuning jobs' curve files in one long table (each row names its run: method, k, shots, seed)."""
    curves = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    return curves.astype({"method": str, "k": str, "shots": int, "seed": int})


RUN_KEYS = ["method", "k", "shots", "seed"]


def run_scores(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, iteration): test macro F-score and accuracy, validation macro F, train loss."""
    columns = ["macro_f1", "accuracy", "val_macro_f1", "train_loss"]
    return curves.groupby([*RUN_KEYS, "iteration"], as_index=False)[columns].first()


def run_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per run (method, k, shots, seed): the test macro F at iteration 0 ('first'), the test
    curve's maximum ('best', the paper's "best registered performance", chosen on test), and the test
    score at the evaluation with the best validation macro F ('selected', the earliest on ties), with
    that evaluation's iteration and its validation macro F ('val_selected', what methods are ranked by)."""
    ordered = scores.sort_values([*RUN_KEYS, "iteration"])
    runs = ordered.groupby(RUN_KEYS, sort=False)
    chosen = ordered.loc[runs["val_macro_f1"].idxmax()]  # idxmax: the first maximum, so the earliest iteration
    summary = runs.agg(first=("macro_f1", "first"), best=("macro_f1", "max")).reset_index()
    picked = chosen[[*RUN_KEYS, "macro_f1", "iteration", "val_macro_f1"]].rename(
        columns={"macro_f1": "selected", "iteration": "selected_iteration", "val_macro_f1": "val_selected"}
    )
    return summary.merge(picked, on=RUN_KEYS)


def compared_runs(summary: pd.DataFrame) -> pd.DataFrame:
    """The runs Table 2 and the answer compare: every method's K = best run (best K per class type,
    picked on validation), the K-less methods' only runs."""
    return summary[(summary["k"] == "best") | summary["method"].isin(BASELINES)]


def zero_image_runs(scores: pd.DataFrame) -> pd.DataFrame:
    """:func:`run_summary` rows at 0 images per class ('shots' 0) for the compared runs of the methods
    whose head needs no target image (random, the semantic measures): their untrained head, i.e. their
    evaluation at iteration 0, where every score of the run is that head's (the same at every shot level:
    taken at the largest)."""
    start = scores[(scores["iteration"] == 0) & (scores["shots"] == scores["shots"].max())]
    start = compared_runs(start[start["method"].map(needs_no_images)])
    return start.assign(
        shots=0,
        first=start["macro_f1"],
        best=start["macro_f1"],
        selected=start["macro_f1"],
        selected_iteration=0,
        val_selected=start["val_macro_f1"],
    )[[*RUN_KEYS, "first", "best", "selected", "selected_iteration", "val_selected"]]


def answer_runs(curves: pd.DataFrame) -> pd.DataFrame:
    """The runs the answer compares (:func:`compared_runs`) at every shot level, and at 0 images per class
    the untrained heads that need no image (:func:`zero_image_runs`)."""
    scores = run_scores(curves)
    return pd.concat([compared_runs(run_summary(scores)), zero_image_runs(scores)], ignore_index=True)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its Student-t confidence interval (NaN for a single value): the one
    interval of every table and figure (headstart.report.figures draws :func:`t_interval`)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return mean, float(half)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% Student-t interval of the mean of ``values`` (over seeds) as (low, high): :func:`mean_ci`
    in the form seaborn's ``errorbar`` takes; the mean alone for a single value."""
    mean, half = mean_ci(values)
    return (mean, mean) if np.isnan(half) else (mean - half, mean + half)


def table1(
    similarities: dict[str, pd.DataFrame], class_id: str, target_name: str, source_names: dict[str, str]
) -> pd.DataFrame:
    """The most similar source class of one target class under each measure."""
    row = {"target": f"{target_name} ({class_id})"}
    for measure, matrix in similarities.items():
        values = matrix.loc[class_id]
        best = values.index[int(np.argmax(values.to_numpy()))]  # first maximum: ties go to the lower index
        row[label(measure)] = f"{source_names[best]} ({best}, {values[best]:.3g})"
    return pd.DataFrame([row])


def top_sources(
    matrix: pd.DataFrame, target_names: dict[str, str], source_names: dict[str, str], n: int = 5
) -> pd.DataFrame:
    """Each target class's ``n`` most similar source classes (name, wnid, value), in the matrix's
    order of targets: what a similarity head borrows from. Ties go to the lower source index, as in
    the heads' top-K."""
    values = matrix.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")[:, :n]
    rows = []
    for i, class_id in enumerate(matrix.index):
        row = {"target": f"{target_names[class_id]} ({class_id})"}
        for rank, j in enumerate(order[i], start=1):
            source = matrix.columns[j]
            row[f"#{rank}"] = f"{source_names[source]} ({source}, {values[i, j]:.3g})"
        rows.append(row)
    return pd.DataFrame(rows)


def table2(curves: pd.DataFrame, best_k: dict[str, dict[str, dict[str, int]]]) -> pd.DataFrame:
    """'first' (iteration 0), 'best' (test maximum, the paper's) and 'selected' (test score at the
    evaluation best on validation) macro F-score per method and shot level, mean ± CI over seeds.

    Similarity methods use their best-K-per-type runs ('kbest'); baselines their only runs.
    """
    rows = []
    for (method, shots), group in compared_runs(run_summary(run_scores(curves))).groupby(["method", "shots"]):
        levels = best_k.get(similarity_measure(method), {})
        ks = levels.get(str(shots), levels.get("all", {}))
        row = {"shots": int(shots), "method": method, "seeds": len(group)}
        for column in ("first", "best", "selected"):
            row[column], row[f"{column}_ci95"] = mean_ci(group[column].to_numpy())
        row["selected_iteration"] = float(group["selected_iteration"].median())
        row["best_k"] = " ".join(f"{t}:{k}" for t, k in sorted(ks.items()))
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["shots", "method"], ascending=[False, True]).reset_index(drop=True)


def answer_table(curves: pd.DataFrame) -> pd.DataFrame:
    """Which initialisation at n images per class, decided on validation: per shot level, the method with
    the best mean validation macro F at its selected evaluation ('val_selected'), the runner-up on
    validation, and random; their test scores there ('selected'), and the winner's test margins over both
    with the 95% CI of the per-seed differences (every method of a seed trains on the same batches, so the
    differences are paired). ``tie``: the winner's paired validation margin over the runner-up has a CI
    that includes 0 (or is 0), so validation does not tell them apart; ``test_best_method`` is the method
    with the best mean test score, for the reader to compare (never used to choose). Shot level 0: the
    methods that need no target image, untrained (:func:`zero_image_runs`)."""
    summary = answer_runs(curves)
    rows = []
    for shots, level in summary.groupby("shots"):
        per_seed = level.pivot_table(index="seed", columns="method", values="selected")
        val_per_seed = level.pivot_table(index="seed", columns="method", values="val_selected")
        ranking = val_per_seed.mean().sort_values(ascending=False, kind="stable")
        winner, runner_up = ranking.index[0], ranking.index[1] if len(ranking) > 1 else None
        val_margin, val_margin_ci = _paired_margin(val_per_seed, winner, runner_up)
        over_runner_up = _paired_margin(per_seed, winner, runner_up)
        over_random = _paired_margin(per_seed, winner, "random")
        test_means = per_seed.mean()
        rows.append(
            {
                "shots": int(shots),
                "best_method": winner,
                "val_selected": ranking.iloc[0],
                "selected": test_means[winner],
                "selected_ci95": mean_ci(per_seed[winner].dropna().to_numpy())[1],
                "runner_up": runner_up,
                "runner_up_val_selected": ranking.iloc[1] if runner_up else float("nan"),
                "runner_up_selected": test_means[runner_up] if runner_up else float("nan"),
                "val_margin_over_runner_up": val_margin,
                "val_margin_over_runner_up_ci95": val_margin_ci,
                "tie": bool(runner_up) and (val_margin == 0 or abs(val_margin) <= val_margin_ci),
                "margin_over_runner_up": over_runner_up[0],
                "margin_over_runner_up_ci95": over_runner_up[1],
                "random_selected": test_means.get("random", float("nan")),
                "margin_over_random": over_random[0],
                "margin_over_random_ci95": over_random[1],
                "test_best_method": test_means.sort_values(ascending=False, kind="stable").index[0],
                "seeds": len(per_seed),
            }
        )
    return pd.DataFrame(rows).sort_values("shots", ascending=False).reset_index(drop=True)


def _paired_margin(per_seed: pd.DataFrame, method: str, other: str | None) -> tuple[float, float]:
    """Mean and CI of ``method`` minus ``other`` over the seeds both ran (NaN if ``other`` did not run)."""
    if other is None or other not in per_seed:
        return float("nan"), float("nan")
    return mean_ci((per_seed[method] - per_seed[other]).dropna().to_numpy())


def answer_margins(curves: pd.DataFrame) -> pd.DataFrame:
    """What the answer figure draws: per shot level and method other than random, the test macro F margin over
    random at the selected evaluations, paired per seed (mean and 95% CI), as :func:`answer_table` computes the
    winner's; ``pick`` is 'best' for the level's winner on validation, 'tie' for the runner-up it ties with,
    '' otherwise. Random's own score per level is :func:`answer_table`'s ``random_selected``."""
    summary = answer_runs(curves)
    table = answer_table(curves).set_index("shots")
    rows = []
    for shots, level in summary.groupby("shots"):
        per_seed = level.pivot_table(index="seed", columns="method", values="selected")
        winner = table.at[shots, "best_method"]
        tied = table.at[shots, "runner_up"] if table.at[shots, "tie"] else None
        for method in per_seed.columns.drop("random", errors="ignore"):
            margin, ci = _paired_margin(per_seed, method, "random")
            pick = "best" if method == winner else "tie" if method == tied else ""
            rows.append(
                {
                    "shots": int(shots),
                    "method": method,
                    "margin_over_random": margin,
                    "margin_over_random_ci95": ci,
                    "pick": pick,
                }
            )
    columns = ["shots", "method", "margin_over_random", "margin_over_random_ci95", "pick"]
    return pd.DataFrame(rows, columns=columns)


def method_family(method: str) -> str:
    """The group a method is shown in: 'semantic' (a WordNet, word-vector or sentence head, plain, calibrated or
    as a prior), 'visual' (from the source network's outputs on the target images) or 'baseline'."""
    kind = Method(method)
    if kind.is_baseline:
        return "baseline"
    return "visual" if kind.measure in VISUAL_MEASURES else "semantic"


def answer_wide(table: pd.DataFrame) -> pd.DataFrame:
    """The answer table as a person reads it: one row per shot level; a winner validation cannot tell from
    the runner-up is shown as a tie with it; the test's own best, where it differs, beside."""
    best = [
        f"tie: {label(m)} / {label(r)}" if tie else label(m)
        for m, r, tie in zip(table["best_method"], table["runner_up"], table["tie"], strict=True)
    ]
    return pd.DataFrame(
        {
            "images/class": [n if n else "0 (class names only)" for n in table["shots"]],
            "best init (on validation)": best,
            "validation macro F": [f"{v:.3f}" for v in table["val_selected"]],
            "test macro F": [_cell(m, c) for m, c in zip(table["selected"], table["selected_ci95"], strict=True)],
            "runner-up (validation; test)": [
                f"{label(m)} ({v:.3f}; {t:.2f})" if isinstance(m, str) else ""
                for m, v, t in zip(
                    table["runner_up"], table["runner_up_val_selected"], table["runner_up_selected"], strict=True
                )
            ],
            "test margin over runner-up": [
                _cell(m, c, signed=True)
                for m, c in zip(table["margin_over_runner_up"], table["margin_over_runner_up_ci95"], strict=True)
            ],
            "random (test)": [f"{v:.2f}" for v in table["random_selected"]],
            "test margin over random": [
                _cell(m, c, signed=True)
                for m, c in zip(table["margin_over_random"], table["margin_over_random_ci95"], strict=True)
            ],
            "best on test (not used to choose)": [
                "same" if t == m else label(t)
                for m, t in zip(table["best_method"], table["test_best_method"], strict=True)
            ],
        }
    ).set_index("images/class")


def convergence_table(curves: pd.DataFrame, tolerance: float = 0.01) -> pd.DataFrame:
    """Claim C6 ("the convergence is accelerated") for every run against the random head at its shot
    level, on the mean macro F-score over seeds at each evaluation.

    A curve has converged from its first evaluation within ``tolerance`` of its own best; before both
    the run and random have converged, random must never be ahead (``accelerated``). The table also
    gives where random first leads and its largest lead there (NaN: never ahead).
    """
    scores = run_scores(curves)
    mean = scores.groupby(["method", "k", "shots", "iteration"])["macro_f1"].mean()
    selected = run_summary(scores).groupby(["method", "k", "shots"])["selected"].mean()

    def converged_at(curve: pd.Series) -> int:
        return int(curve.index[curve >= curve.max() - tolerance][0])

    rows = []
    for (method, k, shots), curve in mean.groupby(level=["method", "k", "shots"]):
        if method == "random" or ("random", "0", shots) not in mean.index.droplevel("iteration"):
            continue
        curve = curve.droplevel(["method", "k", "shots"])
        random = mean.loc[("random", "0", shots)].reindex(curve.index)
        run_converged, random_converged = converged_at(curve), converged_at(random)
        until = max(run_converged, random_converged)
        lead = (random - curve)[curve.index < until]
        ahead = lead[lead > 0]
        rows.append(
            {
                "shots": int(shots),
                "method": method,
                "k": k,
                "first": float(curve.iloc[0]),
                "random_first": float(random.iloc[0]),
                "best": float(curve.max()),
                "random_best": float(random.max()),
                "selected": float(selected[(method, k, shots)]),
                "random_selected": float(selected[("random", "0", shots)]),
                "converged_at": run_converged,
                "random_converged_at": random_converged,
                "random_ahead_from": int(ahead.index[0]) if len(ahead) else None,
                "largest_random_lead": float(ahead.max()) if len(ahead) else float("nan"),
                "accelerated": ahead.empty,
            }
        )
    columns = [
        "shots",
        "method",
        "k",
        "first",
        "random_first",
        "best",
        "random_best",
        "selected",
        "random_selected",
        "converged_at",
        "random_converged_at",
        "random_ahead_from",
        "largest_random_lead",
        "accelerated",
    ]
    table = pd.DataFrame(rows, columns=columns).astype({"random_ahead_from": "Int64"})  # no rows: random alone
    return table.sort_values(["shots", "method", "k"], ascending=[False, True, True]).reset_index(drop=True)


def linear_strengths(sweeps: Sequence[pd.DataFrame], chosen: Sequence[float]) -> pd.DataFrame:
    """The inverse L2 strength C each linear head (the probe, the priors) chose on validation, per shot
    level, from the ``heads_linear`` jobs' sweeps (``sweep``: one row per C, with method and shots;
    ``chosen``: its head's chosen C) with the grid it was chosen from."""
    rows = [
        {
            "method": sweep["method"].iloc[0],
            "shots": int(sweep["shots"].iloc[0]),
            "chosen_c": float(c),
            "val_macro_f1": float(sweep.loc[np.isclose(sweep["c"], c, rtol=1e-9), "val_macro_f1"].iloc[0]),
            "c_min": float(sweep["c"].min()),
            "c_max": float(sweep["c"].max()),
            "points": len(sweep),
        }
        for sweep, c in zip(sweeps, chosen, strict=True)
    ]
    return pd.DataFrame(rows).sort_values(["method", "shots"], ascending=[True, False]).reset_index(drop=True)


def linear_strengths_wide(table: pd.DataFrame) -> pd.DataFrame:
    """One row per linear head, one column per shot level (most images first), and the swept grid."""
    wide = table.pivot(index="method", columns="shots", values="chosen_c")
    wide = wide[sorted(wide.columns, reverse=True)].map(lambda c: f"{c:g}")
    wide.columns = [f"{n} images" for n in wide.columns]
    grid = table.groupby("method").first()
    wide["C swept"] = [
        f"{grid.at[m, 'points']} values, {grid.at[m, 'c_min']:g} to {grid.at[m, 'c_max']:g}" for m in wide.index
    ]
    wide.index = [f"`{m}`" for m in wide.index]
    wide.index.name = "C chosen on validation"
    return wide


def _cell(mean: float, ci: float, signed: bool = False) -> str:
    if np.isnan(mean):
        return ""
    value = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return value if np.isnan(ci) else f"{value} ± {ci:.2f}"


def table2_wide(table: pd.DataFrame, methods: Sequence[str]) -> pd.DataFrame:
    """Rows: images per class; columns: '<method> first', '<method> best' (test maximum, the paper's) and
    '<method> selected' (iteration picked on validation), each mean ± CI."""
    out = pd.DataFrame(index=sorted(table["shots"].unique(), reverse=True))
    out.index.name = "images/class"
    for method in methods:
        part = table[table["method"] == method].set_index("shots")
        if part.empty:
            continue
        for column in ("first", "best", "selected"):
            out[f"{label(method)} {column}"] = [
                _cell(part.at[s, column], part.at[s, f"{column}_ci95"]) if s in part.index else "" for s in out.index
            ]
    return out


def write_table(
    frame: pd.DataFrame,
    csv: str | Path,
    md: str | Path,
    tex: str | Path,
    wide: pd.DataFrame | None = None,
    caption: str = "",
) -> None:
    """CSV (the long, exact numbers), Markdown and LaTeX (the readable form)."""
    frame.to_csv(csv, index=False)
    shown = frame if wide is None else wide
    keep_index = wide is not None
    # disable_numparse: cells are written as formatted ('0.80' stays '0.80', not '0.8')
    markdown = shown.to_markdown(index=keep_index, disable_numparse=True)
    Path(md).write_text((f"{caption}\n\n" if caption else "") + markdown + "\n")
    Path(tex).write_text(shown.to_latex(index=keep_index, caption=caption or None, escape=True))

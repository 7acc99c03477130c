"""The paper's figures (Fig. 1-3 and the answer figure) from the workflow's tables, drawn with seaborn:
one colour and marker per method in every figure. The numbers come from headstart.report.statistics."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..core.vocabulary import BASELINES, CALIBRATED_SUFFIX, PRIOR_SUFFIX, UNMAPPED  # noqa: E402
from .statistics import (  # noqa: E402
    RUN_KEYS,
    answer_margins,
    answer_runs,
    answer_table,
    label,
    method_family,
    run_scores,
    t_interval,
)

# One colour and marker per method in every figure (Fig. 1, 2 and 3 show different subsets).
STYLE_ORDER = [
    "random",
    "inference",
    "softmax",
    "wordnet",
    "wordvec",
    "sentence",
    "imprint",
    "probe",
    "cotuning",
    "wordnet_path",
    "wordnet_lch",
    "wordnet_res",
    "wordnet_lin",
    "wordnet_jcn",
]


_COLOURS = ["#333333", *sns.color_palette("tab10").as_hex()[:10], "#b15928", "#6a3d9a", "#01665e"]


_SHAPES = "osD^vXP<>phHdo"  # (filled markers only: seaborn cannot mix them with line markers)


# the paper's four methods: drawn prominently where every method is shown
PAPER_METHODS = ("random", "inference", "wordnet", "wordvec")


def _method_styles() -> tuple[dict[str, str], dict[str, str]]:
    """Colour and marker per method label, in legend order. A calibrated head keeps its measure's hue,
    lightened, and a star; a prior head its hue, darkened, and an octagon; both follow their measure:
    the family reads as one."""
    palette, markers = {}, {}
    for method, colour, shape in zip(STYLE_ORDER, _COLOURS, _SHAPES, strict=True):
        palette[label(method)], markers[label(method)] = colour, shape
        if method not in BASELINES:
            calibrated, prior = label(method + CALIBRATED_SUFFIX), label(method + PRIOR_SUFFIX)
            palette[calibrated], markers[calibrated] = sns.light_palette(colour, n_colors=3).as_hex()[1], "*"
            palette[prior], markers[prior] = sns.dark_palette(colour, n_colors=4).as_hex()[2], "8"
    # Co-Tuning with the paper's Adam: Co-Tuning's hue, lightened, and a star
    palette[label("cotuning_adam")] = sns.light_palette(palette[label("cotuning")], n_colors=3).as_hex()[1]
    markers[label("cotuning_adam")] = "*"
    return palette, markers


PALETTE, MARKERS = _method_styles()


def _styled(labels) -> dict:
    """seaborn's hue/style arguments for these method labels: each with its fixed colour and marker."""
    shown = [name for name in PALETTE if name in set(labels)]
    return {
        "hue": labels.name,
        "hue_order": shown,
        "palette": PALETTE,
        "style": labels.name,
        "style_order": shown,
        "markers": MARKERS,
        "dashes": False,
    }


def _save(fig: plt.Figure, png: str | Path, pdf: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(png, dpi=150)
    fig.savefig(pdf)
    plt.close(fig)


def _k1_runs(scores: pd.DataFrame, shots: int) -> pd.DataFrame:
    """Random (K-less) and each similarity method at K=1, at one shot level: the runs of Fig. 1/2."""
    at = scores[scores["shots"] == shots]
    return at[((at["method"] == "random") & (at["k"] == "0")) | (~at["method"].isin(BASELINES) & (at["k"] == "1"))]


def figure1(curves: pd.DataFrame, shots: int, png: str | Path, pdf: str | Path) -> pd.DataFrame:
    """Macro F-score vs iteration, random and each similarity init at K=1, mean and 95% CI over seeds."""
    data = _k1_runs(run_scores(curves), shots).assign(Method=lambda d: d["method"].map(label))
    if data.empty:
        raise ValueError(f"no K=1 or random runs at {shots} shots in the curves")
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.lineplot(
        data=data, x="iteration", y="macro_f1", errorbar=t_interval, markersize=4, ax=ax, **_styled(data["Method"])
    )
    ax.set(xlabel="iteration", ylabel="macro F-score (test)", title=f"Fig. 1 — {shots} images per class, K = 1")
    _save(fig, png, pdf)
    return data


def figure2(
    curves: pd.DataFrame, class_id: str, name: str, shots: int, png: str | Path, pdf: str | Path
) -> pd.DataFrame:
    """One target class's F-score vs iteration, for each method's K=1 run (mean over seeds)."""
    runs = curves[curves["class_id"] == class_id]
    if runs.empty:
        raise ValueError(f"class {class_id} is not in the curves (report.example_class)")
    keys = ["method", "k", "shots", "seed", "iteration"]
    data = _k1_runs(runs[keys + ["fscore"]], shots).assign(Method=lambda d: d["method"].map(label))
    sns.set_theme(style="whitegrid", context="paper")
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    sns.lineplot(
        data=data, x="iteration", y="fscore", errorbar=t_interval, markersize=4, ax=ax, **_styled(data["Method"])
    )
    ax.set(
        xlabel="iteration", ylabel=f"F-score of {name}", title=f"Fig. 2 — {name} ({class_id}), {shots} images per class"
    )
    _save(fig, png, pdf)
    return data


def figure3(kgrid: pd.DataFrame, shots: int, png: str | Path, pdf: str | Path) -> pd.DataFrame:
    """F-score right after initialisation vs K: one panel per class type, one line per measure (the visual
    measures' at ``shots``; a semantic measure's K grid, 'shots' null, is the same at every level)."""
    at_level = kgrid["shots"].isna() | (kgrid["shots"] == shots)
    data = kgrid[at_level & (kgrid["type"] != "all")].assign(Measure=lambda d: d["measure"].map(label))
    types = [t for t in ("included", "inclusive", "disjoint", "identical", UNMAPPED) if t in set(data["type"])]
    sns.set_theme(style="whitegrid", context="paper")
    grid = sns.relplot(
        data=data,
        x="k",
        y="fscore",
        col="type",
        col_order=types,
        kind="line",
        **_styled(data["Measure"]),
        height=3.0,
        aspect=1.0,
        facet_kws={"sharey": True},
    )
    grid.set(xscale="log", xlabel="K (source neighbours)", ylabel="F-score at initialisation (val)")
    grid.set_titles("{col_name} classes")
    grid.figure.suptitle(f"Fig. 3 — initialisation only, {shots} images per class", y=1.02)
    grid.figure.savefig(png, dpi=150, bbox_inches="tight")
    grid.figure.savefig(pdf, bbox_inches="tight")
    plt.close(grid.figure)
    return data


FAMILIES = {"semantic": "Semantic heads", "visual": "Visual heads", "baseline": "Baselines"}


def _answer_rows(methods) -> list[str]:
    """The answer figure's rows: by family (:data:`FAMILIES`), each in the figures' method order, a measure's
    calibrated and prior heads after its plain one."""
    order = [
        variant
        for method in [*STYLE_ORDER, "cotuning_adam"]
        for variant in (
            (method,) if method in BASELINES else (method, method + CALIBRATED_SUFFIX, method + PRIOR_SUFFIX)
        )
    ]
    shown = [m for m in order if m in set(methods)] + sorted(set(methods) - set(order))
    return sorted(shown, key=lambda m: list(FAMILIES).index(method_family(m)))


def _column_label(shots: int, random_score: float, random_picked: bool) -> str:
    level = "0\n(names only)" if shots == 0 else str(shots)
    random = "" if pd.isna(random_score) else f"\nrandom {random_score:.2f}" + (" *" if random_picked else "")
    return level + random


def figure_answer(curves: pd.DataFrame, png: str | Path, pdf: str | Path) -> pd.DataFrame:
    """The answer at a glance: per method (rows, grouped by family) and images per class (columns), the test
    macro F margin over random at the evaluation picked on validation, mean and 95% Student-t interval of the
    per-seed differences (headstart.report.statistics.answer_margins); the winner on validation boxed, the
    runner-up it ties with dashed. Random's own score heads each column (* where random is the winner)."""
    margins = answer_margins(curves)
    table = answer_table(curves).set_index("shots")
    sns.set_theme(style="white", context="paper")
    if margins.empty:  # random alone: nothing to compare with it
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "Random is the only method: no margin over random to draw", ha="center", va="center")
        _save(fig, png, pdf)
        return margins
    levels = sorted(table.index, reverse=True)  # every level, one where random ran alone too
    rows = _answer_rows(margins["method"].unique())
    families = [f for f in FAMILIES if any(method_family(m) == f for m in rows)]
    # the colour scale of the trained levels: the untrained heads' far larger margins at 0 saturate it
    trained = margins[margins["shots"] > 0] if (margins["shots"] > 0).any() else margins
    limit = max(float(trained["margin_over_random"].abs().max()), 0.01)
    fig, axes = plt.subplots(
        len(families),
        1,
        figsize=(1.0 * len(levels) + 3.2, 0.42 * len(rows) + 0.9 * len(families) + 0.6),
        gridspec_kw={"height_ratios": [sum(method_family(m) == f for m in rows) for f in families]},
        squeeze=False,
    )
    for ax, family in zip(axes[:, 0], families, strict=True):
        _family_panel(ax, family, [m for m in rows if method_family(m) == family], margins, levels, limit)
    top = axes[0, 0]
    top.xaxis.tick_top()
    top.set_xticklabels(
        [_column_label(n, table.at[n, "random_selected"], table.at[n, "best_method"] == "random") for n in levels],
        fontsize=7,
    )
    axes[-1, 0].set_xlabel("images per class")
    fig.suptitle(
        "Test macro F margin over random, fine-tuned (evaluation picked on validation), mean ± 95% CI over seeds\n"
        "boxed: the winner on validation; dashed: the runner-up it ties with",
        fontsize=9,
    )
    colour = plt.cm.ScalarMappable(cmap="vlag_r", norm=plt.Normalize(-limit, limit))
    fig.colorbar(colour, ax=axes[:, 0].tolist(), label="margin over random (macro F)", shrink=0.6, pad=0.02)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)
    return margins


def _family_panel(ax, family: str, members: list[str], margins: pd.DataFrame, levels: list[int], limit: float) -> None:
    """One family's rows of the answer figure on ``ax``: the margins as a heat map on the shared colour scale
    (+-``limit``), each cell annotated with its mean and interval, the picks boxed."""
    cells = margins[margins["method"].isin(members)]
    value = cells.pivot(index="method", columns="shots", values="margin_over_random").reindex(members, columns=levels)
    ci = cells.pivot(index="method", columns="shots", values="margin_over_random_ci95").reindex(members, columns=levels)
    text = [
        [_margin_text(v, c) for v, c in zip(*pair, strict=True)] for pair in zip(value.values, ci.values, strict=True)
    ]
    sns.heatmap(
        value,
        annot=np.array(text, dtype=object),
        fmt="",
        cmap="vlag_r",
        center=0,
        vmin=-limit,
        vmax=limit,
        cbar=False,
        linewidths=0.5,
        linecolor="white",
        annot_kws={"fontsize": 7},
        ax=ax,
    )
    picks = cells[cells["pick"] != ""]
    for method, shots, pick in zip(picks["method"], picks["shots"], picks["pick"], strict=True):
        box = plt.Rectangle(
            (levels.index(shots), members.index(method)),
            1,
            1,
            fill=False,
            edgecolor="black",
            linewidth=2.0,
            linestyle="-" if pick == "best" else "--",
        )
        ax.add_patch(box)
    ax.set_yticklabels([label(m) for m in members], rotation=0)
    ax.set(xlabel="", ylabel="")
    ax.set_title(FAMILIES[family], loc="left", fontsize=9, fontweight="bold")
    ax.set_xticklabels([])
    ax.tick_params(axis="x", length=0)


def _margin_text(margin: float, ci: float) -> str:
    if pd.isna(margin):
        return ""
    return f"{margin:+.2f}" if pd.isna(ci) else f"{margin:+.2f}\n±{ci:.2f}"


def figure_answer_curves(curves: pd.DataFrame, png: str | Path, pdf: str | Path) -> pd.DataFrame:
    """Macro F-score (test) vs images per class: left at iteration 0 ('first'), right fine-tuned with the
    iteration picked on validation ('selected'); mean and 95% CI over seeds. At 0 images per class, the
    untrained heads that need no image (headstart.report.statistics.zero_image_runs), on a linear stretch of the axis
    (symlog). The paper's four methods are drawn prominently, the others lighter."""
    summary = answer_runs(curves).assign(Method=lambda d: d["method"].map(label))
    long = summary.melt(id_vars=[*RUN_KEYS, "Method"], value_vars=["first", "selected"], var_name="score")
    sns.set_theme(style="whitegrid", context="paper")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    titles = {"first": "at initialisation (iteration 0)", "selected": "fine-tuned (iteration picked on validation)"}
    for ax, (score, title) in zip(axes, titles.items(), strict=True):
        data = long[long["score"] == score]
        prominent = data["method"].isin(PAPER_METHODS)
        for subset, width, alpha in ((data[~prominent], 1.0, 0.45), (data[prominent], 2.2, 1.0)):
            if subset.empty:
                continue
            styled = _styled(subset["Method"])
            sns.lineplot(
                data=subset,
                x="shots",
                y="value",
                errorbar=t_interval,
                markersize=5,
                ax=ax,
                linewidth=width,
                alpha=alpha,
                legend=ax is axes[1],
                **styled,
            )
        ax.set_xscale("symlog", linthresh=1)  # 0 images per class on a linear stretch, then log
        ax.set(xlabel="images per class", ylabel="macro F-score (test)", title=title)
        levels = sorted(data["shots"].unique())
        ax.set_xticks(levels, [str(n) for n in levels])  # the shot levels themselves, not powers of ten
        ax.minorticks_off()
    handles, labels = axes[1].get_legend_handles_labels()
    if axes[1].get_legend() is not None:
        axes[1].get_legend().remove()
    order = [name for name in PALETTE if name in labels]
    fig.legend(
        [handles[labels.index(n)] for n in order], order, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
    )
    fig.suptitle("Macro F-score per images per class (similarity methods at the best K on validation)")
    fig.tight_layout()
    fig.savefig(png, dpi=150, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)
    return summary

"""Which run's weights are kept, and which are exported: a run's weights at its selected evaluation (the
best validation macro F, the earliest of ties), the best of a job's runs on validation, the best of the
jobs' candidates on validation. Never on test. Fine-tuning writes the candidates; the export reads them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..core.errors import HeadstartError
from ..core.tables import write_tensors
from ..core.vocabulary import RunId
from .classifiers import Classifier, classifier_kind

# classifier state that evaluation does not use: Co-Tuning's source head and relationship
TRAINING_ONLY = ("source_head.", "relationship")


class SelectionError(HeadstartError, ValueError):
    """No run to choose from; the message says which choice."""


@dataclass
class SelectedState:
    """A run's weights at its selected evaluation (the best validation macro F, the earliest of ties):
    what an exported classifier is made of."""

    iteration: int
    val_macro_f1: float
    state: dict[str, torch.Tensor]  # the run's classifier state_dict, on the CPU


def select(kept: dict[RunId, SelectedState], run: RunId, model: nn.Module, rows: list[dict]) -> None:
    """Keep ``run``'s weights (``model``'s) if its latest evaluation (``rows``' last) has the best
    validation macro F so far (the earliest of ties)."""
    iteration, score = rows[-1]["iteration"], rows[-1]["val_macro_f1"]
    best = kept.get(run)
    if best is None or score > best.val_macro_f1:
        state = {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}
        kept[run] = SelectedState(iteration, score, state)


def best_selected(kept: dict[RunId, SelectedState], run_order: Sequence[RunId]) -> RunId | None:
    """Of the runs in ``run_order`` (those export may choose), the kept one with the best validation macro F
    at its selected evaluation (the first in ``run_order`` on ties); None when none was kept."""
    candidates = [run for run in run_order if run in kept]
    if not candidates:
        return None
    return max(candidates, key=lambda run: (kept[run].val_macro_f1, -candidates.index(run)))


def write_selected(
    path: Path, run: RunId, selected: SelectedState, model: Classifier, curve: pd.DataFrame, shots: int, seed: int
) -> None:
    """One job's candidate for export: the run's evaluation weights at its selected iteration, its
    classifier's kind (``model``, the run's), and its scores there (test macro F and accuracy from
    ``curve``, the run's curve)."""
    at = curve[curve["iteration"] == selected.iteration].iloc[0]
    state = {key: value for key, value in selected.state.items() if not key.startswith(TRAINING_ONLY)}
    write_tensors(
        state,
        path,
        {
            "method": run.method,
            "k": run.k,
            "shots": shots,
            "seed": seed,
            "iteration": selected.iteration,
            "classifier": classifier_kind(model),
            "scores": {
                "val_macro_f1": float(at["val_macro_f1"]),
                "val_accuracy": float(at["val_accuracy"]),
                "test_macro_f1": float(at["macro_f1"]),
                "test_accuracy": float(at["accuracy"]),
            },
        },
    )

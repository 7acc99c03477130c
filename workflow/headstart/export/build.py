"""A classifier to take home: one fine-tuned run, exported as a whole network plus a JSON card.

A fine-tuning job asked to (the export rule's shot level) keeps, of the runs export names (all by
default), the one with the best validation macro F, at that evaluation: its trainable part and head, in
``runs/shots{n}/seed{s}.selected.safetensors`` (headstart.finetune.selection). The export rule picks the best of
those across seeds (on validation again, never on test) and writes ``export/model.safetensors`` (the
whole network: the frozen trunk is written too, so the classifier loads without the workflow's results,
its package or a download; 14 MB for EfficientNet-Lite0, 170 MB for ResNet-101) and ``export/card.json``.
Its format is headstart.export.card's; headstart.export.predict loads it and classifies images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ..core.tables import read_tensor_metadata, read_tensors, write_tensors
from ..core.vocabulary import RunId
from ..finetune.classifiers import Classifier
from .card import ExportError, assemble, make_card, write_export


def choose_candidate(paths: Sequence[Path], seed: int | None = None) -> Path:
    """Among the jobs' candidates (one per seed), the one with the best validation macro F (the lowest
    seed on ties), or the one of ``seed``."""
    metas = [(Path(path), read_tensor_metadata(path)) for path in paths]
    if seed is not None:
        metas = [(path, meta) for path, meta in metas if meta["seed"] == seed]
    if not metas:
        raise ExportError(f"no fine-tuned run to export{f' of seed {seed}' if seed is not None else ''}")
    return max(metas, key=lambda item: (item[1]["scores"]["val_macro_f1"], -item[1]["seed"]))[0]


def write_untrained_candidate(
    curve: pd.DataFrame,
    heads: Sequence[Path],
    entry: dict[str, Any],
    weights: Path,
    train: str,
    seed: int,
    out: Path,
) -> RunId:
    """Export's candidate at 0 images per class for one seed, in the format of a fine-tuning job's
    (headstart.finetune.selection.write_selected): of the runs whose initial head files are ``heads`` (heads that
    need no image), the one with the best validation macro F at iteration 0 of ``curve`` (the largest shot
    level's job of ``seed``: before its first step each run is its initial head), the first of ties; its
    head untrained, with the source network's own trainable part. Returns the run."""
    from ..extract.models import load_parts
    from ..finetune.classifiers import classifier_from_head
    from ..heads.headfile import read_head

    start = curve[curve["iteration"] == 0]
    files, scores = {}, {}
    for path in heads:
        meta = read_tensor_metadata(path)  # (the metadata alone: the chosen head is read whole below)
        run = RunId.of(meta)
        rows = start[(start["method"] == run.method) & (start["k"] == run.k)]
        if rows.empty:
            raise ExportError(f"no iteration-0 evaluation of {run} in the curves of seed {seed}")
        files[run], scores[run] = Path(path), rows.iloc[0]
    candidates = list(files)
    best = max(candidates, key=lambda run: (scores[run]["val_macro_f1"], -candidates.index(run)))
    arrays, meta = read_head(files[best])
    parts, _, _ = load_parts(entry, weights)
    trainable = parts.trainable if train == "last_stage" else nn.Identity()
    model = classifier_from_head(trainable, arrays, meta, 0.0)
    if type(model) is not Classifier:
        raise ExportError(f"{files[best]}: a {meta.get('classifier')} head is not an untrained classifier to export")
    at = scores[best]
    write_tensors(
        model.state_dict(),
        out,
        {
            "method": best.method,
            "k": best.k,
            "shots": 0,
            "seed": seed,
            "iteration": 0,
            "classifier": "linear",
            "scores": {
                "val_macro_f1": float(at["val_macro_f1"]),
                "val_accuracy": float(at["val_accuracy"]),
                "test_macro_f1": float(at["macro_f1"]),
                "test_accuracy": float(at["accuracy"]),
            },
        },
    )
    return best


def export_classifier(
    candidate: Path,
    entry: dict[str, Any],
    model_name: str,
    weights: Path,
    classes: pd.DataFrame,
    preprocess: dict[str, int],
    train: str,
    out_dir: Path,
) -> dict[str, Any]:
    """Write ``out_dir``/model.safetensors (the whole network with the candidate's trained part and head)
    and ``out_dir``/card.json; return the card."""
    from ..extract.models import load_parts

    state, meta = read_tensors(candidate)
    parts, mean, std = load_parts(entry, weights)
    card = make_card(meta, entry, model_name, classes, {**preprocess, "mean": mean, "std": std}, train)
    module = assemble(card, parts, tuple(state["head.weight"].shape))
    try:
        module.classifier.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{candidate} does not fit {entry['arch']}: {err}") from None
    write_export(card, module, out_dir)
    return card

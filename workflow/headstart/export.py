"""A classifier to take home: one fine-tuned run, exported as a whole network plus a JSON card.

A fine-tuning job asked to (the export rule's shot level) keeps, of the runs export names (all by
default), the one with the best validation macro F, at that evaluation: its trainable part and head, in
``runs/shots{n}/seed{s}.selected.safetensors`` (headstart.selection). The export rule picks the best of
those across seeds (on validation again, never on test) and writes ``export/model.safetensors`` (the
whole network: the frozen trunk is written too, so the classifier loads without the workflow's results,
its package or a download; 14 MB for EfficientNet-Lite0, 170 MB for ResNet-101) and ``export/card.json``.
headstart.predict loads it and classifies images.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .classifiers import Classifier, CosineClassifier
from .errors import HeadstartError
from .tables import read_tensor_metadata, read_tensors, write_tensors

CARD = "card.json"
WEIGHTS = "model.safetensors"


class ExportError(HeadstartError, ValueError):
    """An export that cannot be made or read; the message says which file and why."""


class ExportedClassifier(nn.Module):
    """Normalised images (N, 3, H, W) -> one logit per target class: the frozen part of the network,
    then the fine-tuned classifier (its trainable part, if any, and its head), as in evaluation."""

    def __init__(self, frozen: nn.Module, classifier: Classifier):
        super().__init__()
        self.frozen, self.classifier = frozen, classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.logits(self.frozen(images))


def choose_candidate(paths: Sequence[Path], seed: int | None = None) -> Path:
    """Among the jobs' candidates (one per seed), the one with the best validation macro F (the lowest
    seed on ties), or the one of ``seed``."""
    metas = [(Path(path), read_tensor_metadata(path)) for path in paths]
    if seed is not None:
        metas = [(path, meta) for path, meta in metas if meta["seed"] == seed]
    if not metas:
        raise ExportError(f"no fine-tuned run to export{f' of seed {seed}' if seed is not None else ''}")
    return max(metas, key=lambda item: (item[1]["scores"]["val_macro_f1"], -item[1]["seed"]))[0]


def assemble(card: dict[str, Any], parts, head_shape: tuple[int, int]) -> ExportedClassifier:
    """The exported module's structure for ``card`` around the source network's ``parts``: in head mode
    the whole network up to the features is frozen; in last-stage mode the trainable part belongs to the
    classifier."""
    trained_part = card["train"] == "last_stage"
    frozen = parts.trunk if trained_part else nn.Sequential(parts.trunk, parts.trainable)
    trainable = parts.trainable if trained_part else nn.Identity()
    zeros = np.zeros(head_shape, np.float32)
    if card["classifier"] == "cosine":
        classifier = CosineClassifier(trainable, zeros + 1, 1.0, 0.0)
    else:
        classifier = Classifier(trainable, zeros, np.zeros(head_shape[0], np.float32), 0.0)
    return ExportedClassifier(frozen, classifier).eval()


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
    from .models import load_parts

    state, meta = read_tensors(candidate)
    parts, mean, std = load_parts(entry, weights)
    card = {
        "model": model_name,
        "library": entry["library"],
        "arch": entry["arch"],
        "trainable": list(entry["trainable"]),
        "head": entry["head"],
        "train": train,
        "classifier": meta["classifier"],
        "classes": [
            {"id": class_id, "label": name, "synset": synset}
            for class_id, name, synset in zip(classes["class_id"], classes["name"], classes["synset"], strict=True)
        ],
        "preprocess": {"resize": preprocess["resize"], "crop": preprocess["crop"], "mean": mean, "std": std},
        **{key: meta[key] for key in ("method", "k", "shots", "seed", "iteration", "scores")},
        "selected_on": "validation macro F (the run, then its iteration)",
    }
    module = assemble(card, parts, tuple(state["head.weight"].shape))
    try:
        module.classifier.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{candidate} does not fit {entry['arch']}: {err}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tensors(module.state_dict(), out_dir / WEIGHTS, {"card": CARD})
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":  # the command's older name: python -m headstart.predict
    from .predict import main

    sys.exit(main())

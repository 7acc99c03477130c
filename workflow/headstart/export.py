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
TIMM_CONFIG = "config.json"  # timm's own description of the network and its preprocessing


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


def write_untrained_candidate(
    curve: pd.DataFrame,
    heads: Sequence[Path],
    entry: dict[str, Any],
    weights: Path,
    train: str,
    seed: int,
    out: Path,
) -> str:
    """Export's candidate at 0 images per class for one seed, in the format of a fine-tuning job's
    (headstart.selection.write_selected): of the runs whose initial head files are ``heads`` (heads that
    need no image), the one with the best validation macro F at iteration 0 of ``curve`` (the largest shot
    level's job of ``seed``: before its first step each run is its initial head), the first of ties; its
    head untrained, with the source network's own trainable part. Returns the run's name."""
    from .classifiers import classifier_from_head
    from .models import load_parts
    from .tables import read_arrays
    from .vocabulary import run_name, split_run_name

    start = curve[curve["iteration"] == 0]
    files, scores = {}, {}
    for path in heads:
        meta = read_tensor_metadata(path)
        name = run_name(meta["method"], meta["k"])
        rows = start[(start["method"] == meta["method"]) & (start["k"] == str(meta["k"]))]
        if rows.empty:
            raise ExportError(f"no iteration-0 evaluation of {name} in the curves of seed {seed}")
        files[name], scores[name] = Path(path), rows.iloc[0]
    names = list(files)
    best = max(names, key=lambda name: (scores[name]["val_macro_f1"], -names.index(name)))
    arrays, meta = read_arrays(files[best])
    parts, _, _ = load_parts(entry, weights)
    trainable = parts.trainable if train == "last_stage" else nn.Identity()
    model = classifier_from_head(trainable, arrays, meta, 0.0)
    if type(model) is not Classifier:
        raise ExportError(f"{files[best]}: a {meta.get('classifier')} head is not an untrained classifier to export")
    method, k = split_run_name(best)
    at = scores[best]
    write_tensors(
        model.state_dict(),
        out,
        {
            "method": method,
            "k": k,
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


def timm_native(card: dict[str, Any]) -> bool:
    """Whether an export is timm's own format (config.json + model.safetensors in timm's names, loadable
    with timm alone): a timm network with a linear head. A cosine head (imprinting) or a torchvision
    network is headstart's format, read by headstart.load_classifier."""
    return card["library"] == "timm" and card["classifier"] == "linear"


def timm_network(card: dict[str, Any], state: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The card's timm network with one output per class, as timm builds it; with ``state`` (the exported
    module's tensors in headstart's names, :func:`assemble`'s structure) holding those weights."""
    import timm

    from .models import split_model

    model = timm.create_model(card["arch"], pretrained=False, num_classes=len(card["classes"]))
    if state is not None:
        parts = split_model(model, card["trainable"], card["head"])  # the model's own modules, shared
        module = assemble(card, parts, tuple(state["classifier.head.weight"].shape))
        module.load_state_dict(state, strict=True)
        with torch.no_grad():  # the fine-tuned head into timm's classifier (assemble made its own Linear)
            parts.head.weight.copy_(module.classifier.head.weight)
            parts.head.bias.copy_(module.classifier.head.bias)
    return model.eval()


def _write_timm(card: dict[str, Any], state: dict[str, torch.Tensor], out_dir: Path) -> None:
    """``out_dir``/model.safetensors in timm's names and ``out_dir``/config.json (timm's save_config_for_hf:
    architecture, num_classes, label_names, and the preprocessing as pretrained_cfg)."""
    from timm.models._hub import save_config_for_hf  # (timm exports save_for_hf, which also pickles)

    model = timm_network(card, state)
    write_tensors(model.state_dict(), out_dir / WEIGHTS, {"format": "timm", "card": CARD})
    pre = card["preprocess"]
    data_config = {
        "input_size": (3, pre["crop"], pre["crop"]),
        "crop_pct": pre["crop"] / pre["resize"],  # shorter side to resize, then the centre crop
        "crop_mode": "center",
        "interpolation": "bilinear",
        "mean": tuple(pre["mean"]),
        "std": tuple(pre["std"]),
    }
    labels = [cls["label"] for cls in card["classes"]]
    save_config_for_hf(model, str(out_dir / TIMM_CONFIG), model_config={"label_names": labels}, data_config=data_config)


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
    card["weights_format"] = "timm" if timm_native(card) else "headstart"
    card["load_with"] = (
        "timm alone: timm.create_model('local-dir:<this folder>', pretrained=True), preprocessing from "
        "timm.data.resolve_data_config; or headstart.load_classifier(<this folder>)"
        if timm_native(card)
        else "headstart.load_classifier(<this folder>) (a cosine head or a torchvision network is not timm's format)"
    )
    module = assemble(card, parts, tuple(state["head.weight"].shape))
    try:
        module.classifier.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{candidate} does not fit {entry['arch']}: {err}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TIMM_CONFIG).unlink(missing_ok=True)
    if timm_native(card):
        _write_timm(card, module.state_dict(), out_dir)
    else:
        write_tensors(module.state_dict(), out_dir / WEIGHTS, {"format": "headstart", "card": CARD})
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


if __name__ == "__main__":  # the command's older name: python -m headstart.predict
    from .predict import main

    sys.exit(main())

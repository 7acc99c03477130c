"""A classifier to take home: one fine-tuned run, exported as a whole network plus a JSON card.

A fine-tuning job asked to (the export rule's shot level) keeps, of the runs export names (all by
default), the one with the best validation macro F, at that evaluation: its trainable part and head, in
``runs/shots{n}/seed{s}.selected.safetensors``. The export rule picks the best of those across seeds (on
validation again, never on test) and writes ``export/model.safetensors`` (the whole network: the frozen
trunk is written too, so the classifier loads without the workflow's results, its package or a
download; 19 MB for EfficientNet-Lite0, 170 MB for ResNet-101) and ``export/card.json``.
:func:`load_classifier` rebuilds it; :func:`predict_folder` classifies a folder of images into a CSV.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .config import IMAGE_SUFFIXES
from .errors import HeadstartError
from .tables import read_tensors, write_tensors
from .train import Classifier, CosineClassifier, SelectedState

CARD = "card.json"
WEIGHTS = "model.safetensors"
# classifier state that evaluation does not use: Co-Tuning's source head and relationship
TRAINING_ONLY = ("source_head.", "relationship")


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


def runs_to_keep(run_names: Sequence[str], method: str | None, k: str | int | None) -> list[str]:
    """The runs ('<method>/k<K>') of a job that export may choose among: those of ``method`` and ``k``
    when set, every run otherwise."""
    kept = []
    for name in run_names:
        run_method, run_k = name.split("/k")
        if (method is None or run_method == method) and (k is None or run_k == str(k)):
            kept.append(name)
    return kept


def best_selected(kept: dict[str, SelectedState], run_order: Sequence[str]) -> str | None:
    """The kept run with the best validation macro F at its selected evaluation (the first in
    ``run_order`` on ties); None when none was kept."""
    names = [name for name in run_order if name in kept]
    if not names:
        return None
    return max(names, key=lambda name: (kept[name].val_macro_f1, -names.index(name)))


def write_selected(
    path: Path, name: str, selected: SelectedState, model: Classifier, curve: pd.DataFrame, shots: int, seed: int
) -> None:
    """One job's candidate for export: the run's evaluation weights at its selected iteration, its
    classifier's kind (``model``, the run's), and its scores there (test macro F and accuracy from
    ``curve``, the run's curve)."""
    at = curve[curve["iteration"] == selected.iteration].iloc[0]
    method, k = name.split("/k")
    state = {key: value for key, value in selected.state.items() if not key.startswith(TRAINING_ONLY)}
    write_tensors(
        state,
        path,
        {
            "method": method,
            "k": k,
            "shots": shots,
            "seed": seed,
            "iteration": selected.iteration,
            "classifier": "cosine" if isinstance(model, CosineClassifier) else "linear",
            "scores": {
                "val_macro_f1": float(at["val_macro_f1"]),
                "val_accuracy": float(at["val_accuracy"]),
                "test_macro_f1": float(at["macro_f1"]),
                "test_accuracy": float(at["accuracy"]),
            },
        },
    )


def choose_candidate(paths: Sequence[Path], seed: int | None = None) -> Path:
    """Among the jobs' candidates (one per seed), the one with the best validation macro F (the lowest
    seed on ties), or the one of ``seed``."""
    from .tables import read_tensor_metadata

    metas = [(Path(path), read_tensor_metadata(path)) for path in paths]
    if seed is not None:
        metas = [(path, meta) for path, meta in metas if meta["seed"] == seed]
    if not metas:
        raise ExportError(f"no fine-tuned run to export{f' of seed {seed}' if seed is not None else ''}")
    return max(metas, key=lambda item: (item[1]["scores"]["val_macro_f1"], -item[1]["seed"]))[0]


def _assemble(card: dict[str, Any], parts, head_shape: tuple[int, int]) -> ExportedClassifier:
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
    module = _assemble(card, parts, tuple(state["head.weight"].shape))
    try:
        module.classifier.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ExportError(f"{candidate} does not fit {entry['arch']}: {err}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tensors(module.state_dict(), out_dir / WEIGHTS, {"card": CARD})
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


def read_card(export_dir: Path | str) -> dict[str, Any]:
    path = Path(export_dir) / CARD
    if not path.is_file():
        raise ExportError(f"{path} does not exist: {export_dir} is not an export folder")
    return json.loads(path.read_text())


def load_classifier(export_dir: Path | str) -> ExportedClassifier:
    """The exported classifier of ``export_dir`` (card.json + model.safetensors), in eval mode on the CPU:
    normalised images (N, 3, crop, crop) -> (N, classes) logits, classes in the card's order. Needs no
    download: the whole network is in the folder."""
    from .models import _build_architecture, split_model

    card = read_card(export_dir)
    state, _ = read_tensors(Path(export_dir) / WEIGHTS)
    model = _build_architecture(card["library"], card["arch"])
    parts = split_model(model, card["trainable"], card["head"])
    module = _assemble(card, parts, tuple(state["classifier.head.weight"].shape))
    module.load_state_dict(state, strict=True)
    return module.eval()


def image_transform(card: dict[str, Any]):
    """The card's evaluation preprocessing for a PIL image of any mode."""
    from .models import eval_transform

    pre = card["preprocess"]
    return eval_transform(pre["resize"], pre["crop"], tuple(pre["mean"]), tuple(pre["std"]))


def predict_folder(
    export_dir: Path | str, folder: Path | str, out_csv: Path | str, top: int = 5, batch_size: int = 32
) -> pd.DataFrame:
    """Classify every image under ``folder`` (recursively) with the exported classifier; write one CSV row
    per image: the image's path, then the ``top`` labels with their probabilities. Unreadable files are
    listed with an empty prediction and the reason."""
    from PIL import Image
    from tqdm.auto import tqdm

    card = read_card(export_dir)
    model = load_classifier(export_dir)
    transform = image_transform(card)
    labels = [cls["label"] for cls in card["classes"]]
    top = min(top, len(labels))
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ExportError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    rows: list[dict[str, Any]] = []
    batch, names = [], []

    def flush() -> None:
        with torch.inference_mode():
            probabilities = model(torch.stack(batch)).softmax(dim=1)
        values, indices = probabilities.topk(top, dim=1)
        for name, value_row, index_row in zip(names, values.tolist(), indices.tolist(), strict=True):
            row: dict[str, Any] = {"image": name}
            for rank, (value, index) in enumerate(zip(value_row, index_row, strict=True), start=1):
                row[f"label_{rank}"], row[f"probability_{rank}"] = labels[index], round(value, 6)
            rows.append(row)
        batch.clear()
        names.clear()

    for path in tqdm(files, desc="predict", unit="image"):
        try:
            with Image.open(path) as image:
                batch.append(transform(image))
        except Exception as err:  # noqa: BLE001 - PIL raises many types for broken files: listed, not fatal
            rows.append({"image": str(path), "error": f"{type(err).__name__}: {err}"})
            continue
        names.append(str(path))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    columns = ["image"] + [f"{kind}_{r}" for r in range(1, top + 1) for kind in ("label", "probability")]
    table = pd.DataFrame(rows)
    table = table.reindex(columns=columns + (["error"] if "error" in table else []))
    Path(out_csv).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """python -m headstart.export EXPORT_DIR IMAGES_DIR [-o predictions.csv]"""
    parser = argparse.ArgumentParser(
        prog="python -m headstart.export", description="Classify a folder of images with an exported classifier."
    )
    parser.add_argument("export_dir", help="an export folder (card.json, model.safetensors)")
    parser.add_argument("images", help="a folder of images (searched recursively)")
    parser.add_argument("-o", "--out", default="predictions.csv", help="the CSV to write (default predictions.csv)")
    parser.add_argument("--top", type=int, default=5, help="labels per image (default 5)")
    args = parser.parse_args(argv)
    try:
        table = predict_folder(args.export_dir, args.images, args.out, args.top)
    except HeadstartError as err:
        print(f"headstart: {err}", file=sys.stderr)
        return 1
    print(f"{len(table)} images -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Use an exported classifier (headstart.export): load it, and classify a folder of images into a CSV.

    python -m headstart.predict EXPORT_DIR IMAGES_DIR [-o predictions.csv] [--top 5]

No job runs this module: editing it reruns nothing (headstart.provenance).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .errors import HeadstartError
from .export import CARD, WEIGHTS, ExportedClassifier, ExportError, assemble, timm_network
from .tables import read_tensors
from .vocabulary import IMAGE_SUFFIXES

# What a card must hold to rebuild its classifier (headstart.export writes it); checked before any weight
# is read, so that a broken or tampered card is one line, not a traceback or silently other predictions.
CARD_SCHEMA = {
    "type": "object",
    "required": ["library", "arch", "trainable", "head", "train", "classifier", "classes", "preprocess"],
    "properties": {
        "library": {"enum": ["timm", "torchvision"]},
        "arch": {"type": "string", "minLength": 1},
        "trainable": {"type": "array", "items": {"type": "string"}},
        "head": {"type": "string", "minLength": 1},
        "train": {"enum": ["head", "last_stage"]},
        "classifier": {"enum": ["linear", "cosine"]},
        "weights_format": {"enum": ["timm", "headstart"]},
        "classes": {
            "type": "array",
            "minItems": 2,
            "items": {"type": "object", "required": ["id", "label"], "properties": {"label": {"type": "string"}}},
        },
        "preprocess": {
            "type": "object",
            "required": ["resize", "crop", "mean", "std"],
            "properties": {
                "resize": {"type": "integer", "minimum": 1},
                "crop": {"type": "integer", "minimum": 1},
                "mean": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
                "std": {
                    "type": "array",
                    "items": {"type": "number", "exclusiveMinimum": 0},
                    "minItems": 3,
                    "maxItems": 3,
                },
            },
        },
    },
}


def read_card(export_dir: Path | str) -> dict[str, Any]:
    """The card of ``export_dir``, checked against :data:`CARD_SCHEMA`; an :class:`ExportError` naming the
    file and what is wrong otherwise."""
    import jsonschema

    path = Path(export_dir) / CARD
    if not path.is_file():
        raise ExportError(f"{path} does not exist: {export_dir} is not an export folder")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportError(f"{path} is not JSON: {err}") from None
    errors = list(jsonschema.Draft202012Validator(CARD_SCHEMA).iter_errors(card))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        where = ".".join(str(part) for part in error.absolute_path) or "the card"
        raise ExportError(f"{path}: {where}: {error.message}")
    pre = card["preprocess"]
    if pre["crop"] > pre["resize"]:
        raise ExportError(f"{path}: preprocess.crop ({pre['crop']}) is larger than preprocess.resize ({pre['resize']})")
    return card


def load_classifier(export_dir: Path | str) -> ExportedClassifier:
    """The exported classifier of ``export_dir`` (card.json + model.safetensors), in eval mode on the CPU:
    normalised images (N, 3, crop, crop) -> (N, classes) logits, classes in the card's order. Needs no
    download: the whole network is in the folder. The card and the tensors are checked against each other:
    a class list that does not fit the head, or tensors that do not fit the card's network, are one
    :class:`ExportError` naming the file."""
    from safetensors import SafetensorError

    from .models import _build_architecture, split_model

    card = read_card(export_dir)
    weights = Path(export_dir) / WEIGHTS
    try:
        state, _ = read_tensors(weights)
    except (SafetensorError, OSError) as err:
        raise ExportError(f"{weights} is not a readable safetensors file: {err}") from None
    timm_format = card.get("weights_format", "headstart") == "timm"
    head_key = f"{card['head']}.weight" if timm_format else "classifier.head.weight"
    head = state.get(head_key)
    if head is None or head.dim() != 2:
        raise ExportError(f"{weights} has no 2-D {head_key}: not the weights of {CARD}")
    if head.shape[0] != len(card["classes"]):
        raise ExportError(
            f"{Path(export_dir) / CARD} lists {len(card['classes'])} classes, its head in {weights} has {head.shape[0]}"
        )
    try:
        if timm_format:  # timm's own network and names: load them, then view the network as headstart's parts
            network = timm_network(card)
            network.load_state_dict(state, strict=True)
            parts = split_model(network, card["trainable"], card["head"])
            module = assemble(card, parts, tuple(head.shape))
            module.classifier.head.load_state_dict(parts.head.state_dict())
        else:
            parts = split_model(_build_architecture(card["library"], card["arch"]), card["trainable"], card["head"])
            module = assemble(card, parts, tuple(head.shape))
            module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        problem = " ".join(str(err).split())[:300]
        raise ExportError(f"{weights} does not fit the network {CARD} describes ({card['arch']}): {problem}") from None
    return module.eval()


def image_transform(card: dict[str, Any]):
    """The card's evaluation preprocessing for a PIL image of any mode."""
    from .models import eval_transform

    pre = card["preprocess"]
    return eval_transform(pre["resize"], pre["crop"], tuple(pre["mean"]), tuple(pre["std"]))


# image files the classifier does not read (listed as skipped, never dropped without a word)
UNSUPPORTED_IMAGES = (".gif", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".svg")


def image_files(images: Path | str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(the images to classify, the skipped files with why) of ``images``: one image file, or every image
    file under a folder (recursively), in name order."""
    images = Path(images)
    if images.is_file():
        if images.suffix.lower() not in IMAGE_SUFFIXES:
            raise ExportError(f"{images}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        return [images], []
    if not images.is_dir():
        raise ExportError(f"{images}: no such file or folder")
    found, skipped = [], []
    for path in sorted(images.rglob("*")):
        suffix = path.suffix.lower()
        if path.is_symlink() and not path.exists():
            skipped.append((path, "a link to nothing"))
        elif path.is_file() and suffix in IMAGE_SUFFIXES:
            found.append(path)
        elif path.is_file() and suffix in UNSUPPORTED_IMAGES:
            skipped.append(
                (path, f"{suffix[1:].upper()} is not read (convert it to one of {', '.join(IMAGE_SUFFIXES)})")
            )
    if not found:
        raise ExportError(f"{images}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return found, skipped


def check_output(out_csv: Path | str, export_dir: Path | str) -> Path:
    """``out_csv`` as a file the predictions may be written to: not a folder, not a file of the export."""
    out = Path(out_csv)
    if out.is_dir():
        raise ExportError(f"-o {out}: is a folder; name the CSV file to write")
    if out.resolve().parent == Path(export_dir).resolve() and out.name in (CARD, WEIGHTS):
        raise ExportError(f"-o {out}: is the export's own {out.name}; write the predictions elsewhere")
    return out


def predict_folder(
    export_dir: Path | str, folder: Path | str, out_csv: Path | str, top: int = 5, batch_size: int = 32
) -> pd.DataFrame:
    """Classify ``folder`` (one image, or every image under a folder, recursively) with the exported
    classifier; write one CSV row per image: the image's path, then the ``top`` labels with their
    probabilities. Unreadable and skipped files (unsupported formats, links to nothing) are listed with an
    empty prediction and the reason. Every argument is checked before the first image is read."""
    from PIL import Image
    from tqdm.auto import tqdm

    if top < 1:
        raise ExportError(f"--top {top}: give at least 1 label per image")
    out = check_output(out_csv, export_dir)
    card = read_card(export_dir)
    files, skipped = image_files(folder)
    model = load_classifier(export_dir)
    transform = image_transform(card)
    labels = [cls["label"] for cls in card["classes"]]
    top = min(top, len(labels))
    rows: list[dict[str, Any]] = [{"image": str(path), "error": f"skipped: {why}"} for path, why in skipped]
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
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return table


def main(argv: Sequence[str] | None = None, prog: str = "python -m headstart.predict") -> int:
    """python -m headstart.predict EXPORT_DIR IMAGES [-o predictions.csv] [--top 5] (or headstart predict ...)"""
    parser = argparse.ArgumentParser(prog=prog, description="Classify images with an exported classifier.")
    parser.add_argument("export_dir", help="an export folder (card.json, model.safetensors)")
    parser.add_argument("images", help="an image, or a folder of images (searched recursively)")
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

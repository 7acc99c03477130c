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
from .export import CARD, WEIGHTS, ExportedClassifier, ExportError, assemble
from .tables import read_tensors
from .vocabulary import IMAGE_SUFFIXES


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
    module = assemble(card, parts, tuple(state["classifier.head.weight"].shape))
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
    """python -m headstart.predict EXPORT_DIR IMAGES_DIR [-o predictions.csv] [--top 5]"""
    parser = argparse.ArgumentParser(
        prog="python -m headstart.predict", description="Classify a folder of images with an exported classifier."
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

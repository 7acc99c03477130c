"""Use an exported classifier (headstart.export.build): load it, and classify a folder of images into a CSV.

    python -m headstart.export.predict EXPORT_DIR IMAGES_DIR [-o predictions.csv] [--top 5]

No job runs this module: editing it reruns nothing (headstart.pipeline.provenance).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..core.errors import HeadstartError
from ..core.vocabulary import IMAGE_SUFFIXES
from .card import ExportError, load_classifier, read_card


def image_transform(card: dict[str, Any]):
    """The card's evaluation preprocessing for a PIL image of any mode."""
    from ..extract.models import eval_transform

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
    for path in _walk(images):
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


def _walk(folder: Path) -> list[Path]:
    """Every path under ``folder``, in name order, following links to folders (each real folder once, so a
    link back up is no loop)."""
    seen, found = set(), []
    for root, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            folders.clear()
            continue
        seen.add(real)
        found += [Path(root) / name for name in files]
        found += [Path(root) / name for name in folders if not os.path.exists(Path(root) / name)]
    return sorted(found)


def check_output(out_csv: Path | str, export_dir: Path | str, inputs: Sequence[Path] = ()) -> Path:
    """``out_csv`` as a file the predictions may be written to, checked before the first image: not a
    folder, nothing inside the export, none of the images, not an existing file other than a CSV, and in a
    folder that exists (or can be made) and can be written."""
    out = Path(out_csv)
    if out.is_dir() or str(out_csv).endswith(("/", os.sep)):
        raise ExportError(f"-o {out_csv}: is a folder; name the CSV file to write")
    if len(out.name.encode()) > 200:  # (room for the temporary name beside it, within 255 bytes)
        raise ExportError(f"-o {out}: the file name is longer than 200 bytes")
    try:
        resolved, export = out.resolve(), Path(export_dir).resolve()
    except (RuntimeError, OSError) as err:  # a link loop
        raise ExportError(f"-o {out}: {err}") from None
    if resolved.is_relative_to(export):
        raise ExportError(f"-o {out}: is inside the export {export_dir}; write the predictions elsewhere")
    if any(resolved == Path(path).resolve() for path in inputs):
        raise ExportError(f"-o {out}: is one of the images to classify; write the predictions elsewhere")
    if out.exists() and out.suffix.lower() != ".csv":
        raise ExportError(f"-o {out}: exists and is not a CSV file; name a new file, or a .csv to replace")
    folder = resolved.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ExportError(f"-o {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"-o {out}: {folder} cannot be written")
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
    card = read_card(export_dir)
    files, skipped = image_files(folder)
    out = check_output(out_csv, export_dir, files)
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
    if "error" in table and table["error"].notna().all():
        first = table.iloc[0]
        raise ExportError(
            f"{folder}: no image could be classified ({len(table)} unreadable or skipped; {first['image']}: "
            f"{first['error']})"
        )
    _write_whole(table, out)
    return table


def _write_whole(table: pd.DataFrame, out: Path) -> None:
    """``table`` as CSV at ``out``, through a new temporary file beside it (created exclusively, so no link
    planted there is followed) renamed at the end: never half a CSV."""
    import tempfile

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    except OSError as err:
        raise ExportError(f"-o {out}: cannot write there: {err}") from None
    try:
        with os.fdopen(handle, "w", newline="") as file:
            table.to_csv(file, index=False)
        os.chmod(partial, 0o666 & ~current_umask())
        os.replace(partial, out)
    except OSError as err:
        raise ExportError(f"-o {out}: cannot write there: {err}") from None
    finally:
        Path(partial).unlink(missing_ok=True)


def current_umask() -> int:
    """The process's umask (read by setting it, then put back): the mode a plain create would give."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def main(argv: Sequence[str] | None = None, prog: str = "python -m headstart.export.predict") -> int:
    """python -m headstart.export.predict EXPORT_DIR IMAGES [-o predictions.csv] [--top 5] (or headstart predict ...)"""
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
    failed = int(table["error"].notna().sum()) if "error" in table else 0
    print(f"{len(table) - failed} images classified, {failed} unreadable or skipped -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

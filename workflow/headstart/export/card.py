"""The export's format, in one place: an export folder holds ``model.safetensors`` (the whole network), its
``card.json`` (what the network is, its classes in output order, its preprocessing, and the run it came
from) and, when the network is timm's with a linear head, timm's own ``config.json``, so that timm loads the
folder alone. headstart.export.build writes it (:func:`make_card`, :func:`write_export`); headstart.export.predict and
``headstart.load_classifier`` read it (:func:`read_card`, :func:`load_classifier`).

Loading reads this folder and nothing else: the card names a plain model name of its library (never a hub
name or a path), and the card's classes, timm's ``label_names`` and the head's rows must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.errors import HeadstartError
from ..core.tables import read_tensors, write_tensors
from ..finetune.classifiers import Classifier, CosineClassifier

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
    from ..extract.models import build_architecture, split_model

    model = build_architecture("timm", card["arch"], num_classes=len(card["classes"]))
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


def make_card(
    candidate_meta: dict[str, Any],
    entry: dict[str, Any],
    model_name: str,
    classes: pd.DataFrame,
    preprocess: dict[str, Any],
    train: str,
) -> dict[str, Any]:
    """The card of an export: the network (``entry``, a config ``models`` entry), how it was trained, the
    target classes (classes.parquet) in output order, the preprocessing with the weights' normalisation
    (``preprocess``: resize, crop, mean, std), and the run the candidate (its metadata) came from."""
    card = {
        "model": model_name,
        "library": entry["library"],
        "arch": entry["arch"],
        "trainable": list(entry["trainable"]),
        "head": entry["head"],
        "train": train,
        "classifier": candidate_meta["classifier"],
        "classes": [
            # (pandas reads an unmapped class's synset as NaN: JSON has null for it, and no NaN)
            {"id": class_id, "label": name, "synset": synset if isinstance(synset, str) else None}
            for class_id, name, synset in zip(classes["class_id"], classes["name"], classes["synset"], strict=True)
        ],
        "preprocess": {key: preprocess[key] for key in ("resize", "crop", "mean", "std")},
        **{key: candidate_meta[key] for key in ("method", "k", "shots", "seed", "iteration", "scores")},
        "selected_on": "validation macro F (the run, then its iteration)",
    }
    card["weights_format"] = "timm" if timm_native(card) else "headstart"
    card["load_with"] = (
        "timm alone: timm.create_model('local-dir:<this folder>', pretrained=True), preprocessing from "
        "timm.data.resolve_data_config; or headstart.load_classifier(<this folder>)"
        if timm_native(card)
        else "headstart.load_classifier(<this folder>) (a cosine head or a torchvision network is not timm's format)"
    )
    return card


def write_export(card: dict[str, Any], module: ExportedClassifier, out_dir: Path) -> None:
    """``out_dir``/model.safetensors (in timm's names with timm's config.json when timm reads it alone)
    and ``out_dir``/card.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TIMM_CONFIG).unlink(missing_ok=True)
    if timm_native(card):
        _write_timm(card, module.state_dict(), out_dir)
    else:
        write_tensors(module.state_dict(), out_dir / WEIGHTS, {"format": "headstart", "card": CARD})
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")


# What a card must hold to rebuild its classifier (headstart.export.build writes it); checked before any weight
# is read, so that a broken or tampered card is one line, not a traceback or silently other predictions.
CARD_SCHEMA = {
    "type": "object",
    "required": ["library", "arch", "trainable", "head", "train", "classifier", "classes", "preprocess"],
    "properties": {
        "library": {"enum": ["timm", "torchvision"]},
        # a plain model name: a hub name ("hf-hub:…") or a path ("local-dir:…") would read elsewhere
        "arch": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
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
                # (an upper bound: a tampered size would resize every image to gigabytes)
                "resize": {"type": "integer", "minimum": 1, "maximum": 4096},
                "crop": {"type": "integer", "minimum": 1, "maximum": 4096},
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
    card = _read_json(path)
    errors = list(jsonschema.Draft202012Validator(CARD_SCHEMA).iter_errors(card))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        where = ".".join(str(part) for part in error.absolute_path) or "the card"
        raise ExportError(f"{path}: {where}: {error.message}")
    pre = card["preprocess"]
    for key in ("resize", "crop"):
        if not isinstance(pre[key], int):  # JSON Schema counts 183.0 as an integer; a transform does not
            raise ExportError(f"{path}: preprocess.{key}: {pre[key]!r} is not a whole number of pixels")
    if pre["crop"] > pre["resize"]:
        raise ExportError(f"{path}: preprocess.crop ({pre['crop']}) is larger than preprocess.resize ({pre['resize']})")
    for key in ("id", "label"):
        values = [cls[key] for cls in card["classes"]]
        twice = next((value for value in values if values.count(value) > 1), None)
        if twice is not None:
            raise ExportError(f"{path}: classes: {key} {twice!r} is given to two classes; each output needs its own")
    if card.get("weights_format") == "timm":
        if card["library"] != "timm":
            raise ExportError(f"{path}: weights_format timm with library {card['library']!r}: not timm's network")
        _check_timm_config(Path(export_dir), card)
    return card


def _not_a_number(constant: str):
    raise ValueError(f"{constant} is not a number JSON allows")


def _read_json(path: Path) -> Any:
    """A JSON file of the export, as strict JSON (no NaN or Infinity); an ExportError naming it otherwise."""
    try:
        return json.loads(path.read_text(), parse_constant=_not_a_number)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # (JSONDecodeError is a ValueError)
        raise ExportError(f"{path} is not JSON: {str(err)[:200] or 'nested too deep'}") from None
    except OSError as err:
        raise ExportError(f"{path} cannot be read: {err}") from None


def _check_timm_config(export_dir: Path, card: dict[str, Any]) -> None:
    """timm's config.json describes the card's network and classes in the card's order: timm's users read
    the labels from it, headstart's from the card, and both must name each output alike."""
    path = export_dir / TIMM_CONFIG
    if not path.is_file():
        raise ExportError(f"{path} does not exist: a timm export needs timm's config.json beside {CARD}")
    config = _read_json(path)
    labels = [cls["label"] for cls in card["classes"]]
    if not isinstance(config, dict) or config.get("architecture") != card["arch"]:
        found = config.get("architecture") if isinstance(config, dict) else None
        raise ExportError(f"{path}: architecture {found!r} is not the card's {card['arch']!r}")
    if config.get("label_names") != labels or config.get("num_classes") != len(labels):
        raise ExportError(
            f"{path}: label_names {config.get('label_names')} (num_classes {config.get('num_classes')}) are not "
            f"the {len(labels)} classes of {CARD} in its order ({', '.join(labels[:5])}{' …' * (len(labels) > 5)})"
        )
    pre, timm_pre = card["preprocess"], config.get("pretrained_cfg") or {}
    expected = {
        "input_size": [3, pre["crop"], pre["crop"]],
        "mean": list(pre["mean"]),
        "std": list(pre["std"]),
    }
    differing = [key for key, value in expected.items() if list(timm_pre.get(key) or []) != value]
    crop_pct = timm_pre.get("crop_pct")
    if not isinstance(crop_pct, int | float) or abs(crop_pct - pre["crop"] / pre["resize"]) > 1e-9:
        differing.append("crop_pct")
    if differing:
        raise ExportError(
            f"{path}: pretrained_cfg's {', '.join(differing)} differ from the card's preprocess: timm's users and "
            "headstart's would see other pixels"
        )


def load_classifier(export_dir: Path | str) -> ExportedClassifier:
    """The exported classifier of ``export_dir`` (card.json + model.safetensors), in eval mode on the CPU:
    normalised images (N, 3, crop, crop) -> (N, classes) logits, classes in the card's order. Needs no
    download: the whole network is in the folder. The card and the tensors are checked against each other:
    a class list that does not fit the head, or tensors that do not fit the card's network, are one
    :class:`ExportError` naming the file."""
    from safetensors import SafetensorError

    from ..extract.models import ModelError, build_architecture, split_model

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
            parts = split_model(build_architecture(card["library"], card["arch"]), card["trainable"], card["head"])
            module = assemble(card, parts, tuple(head.shape))
            module.load_state_dict(state, strict=True)
    except ModelError as err:  # a model its library does not list, or a part it lacks
        raise ExportError(f"{Path(export_dir) / CARD}: {err}") from None
    except RuntimeError as err:
        problem = " ".join(str(err).split())[:300]
        raise ExportError(f"{weights} does not fit the network {CARD} describes ({card['arch']}): {problem}") from None
    return module.eval()

"""The split stage: manifest.parquet (ranked, nested shot subsets) and classes.parquet (types)."""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..core.vocabulary import UNMAPPED
from ..core.wordnet import class_type, synset_from_wnid

if TYPE_CHECKING:
    from .classes import TargetClass

CLASS_TYPES = ("identical", "included", "inclusive", "disjoint")


def imagenet1k_wnids() -> list[str]:
    """The 1000 ILSVRC-2012 wnids in the standard head order, as timm ships them (the file its
    ``ImageNetInfo('imagenet-1k')`` reads), found without importing timm: importing it imports torch and
    torchvision, 4 s of the split job, which needs neither."""
    package = importlib.util.find_spec("timm")  # a top-level package: found, not imported
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("timm is not installed: the ILSVRC-2012 class list comes with it")
    synsets = Path(package.submodule_search_locations[0]) / "data" / "_info" / "imagenet_synsets.txt"
    return synsets.read_text().split()


def make_manifest(
    inventory: pd.DataFrame, train_per_class: int, val_per_class: int, test_per_class: int, seed: int
) -> pd.DataFrame:
    """One row per used image: image_id, path, class_id, split, rank.

    Within a class the training pool is shuffled (seeded by seed and class id) and ranked; ranks below
    ``train_per_class - val_per_class`` are 'train' (the k-shot set is ranks < k, so shot subsets
    nest) and the next ``val_per_class`` are 'val'. The test pool is ranked the same way.
    """
    parts = []
    for (class_id, pool), group in inventory.groupby(["class_id", "pool"], sort=True):
        rng = np.random.default_rng([seed, zlib.crc32(f"{class_id}/{pool}".encode())])
        keep = train_per_class if pool == "train" else test_per_class
        order = rng.permutation(len(group))[:keep]
        chosen = group.iloc[order].copy()
        chosen["rank"] = np.arange(len(chosen), dtype=np.int32)
        if pool == "train":
            chosen["split"] = np.where(chosen["rank"] < train_per_class - val_per_class, "train", "val")
            chosen.loc[chosen["split"] == "val", "rank"] -= train_per_class - val_per_class
        else:
            chosen["split"] = "test"
        parts.append(chosen)
    manifest = pd.concat(parts, ignore_index=True)[["image_id", "path", "class_id", "split", "rank"]]
    split_order = pd.CategoricalDtype(["train", "val", "test"], ordered=True)
    manifest["split"] = manifest["split"].astype(split_order)
    return (
        manifest.sort_values(["split", "class_id", "rank"], kind="stable").reset_index(drop=True).astype({"split": str})
    )


def make_classes(targets: list[TargetClass], source_wnids: list[str]) -> pd.DataFrame:
    """class_id, name, synset, lemmas, type (relative to the source classes), in target order. A class
    mapped to no synset has type 'unmapped', and its label's words as its only lemma."""
    sources = {synset_from_wnid(w) for w in source_wnids}
    rows = []
    for index, cls in enumerate(targets):
        row = {"index": index, "class_id": cls.id, "name": cls.name, "synset": cls.synset}
        if cls.synset is None:
            row |= {"lemmas": [cls.name.replace("_", " ")], "type": UNMAPPED}
        else:
            synset = synset_from_wnid(cls.wnid)
            row |= {
                "lemmas": [lemma.replace("_", " ") for lemma in synset.lemma_names()],
                "type": class_type(synset, sources),
            }
        rows.append(row)
    return pd.DataFrame(rows)


def in_shot_level(rows: pd.DataFrame, shots: int) -> np.ndarray:
    """Which rows (any table with the manifest's ``rank``) belong to the ``shots``-per-class level:
    ranks below ``shots``, so the levels nest."""
    return (rows["rank"] < shots).to_numpy()


def shot_subset(manifest: pd.DataFrame, shots: int) -> pd.DataFrame:
    """The training images of the ``shots``-per-class level."""
    return manifest[(manifest["split"] == "train").to_numpy() & in_shot_level(manifest, shots)]


def labelled(image_ids: list[str], manifest: pd.DataFrame, classes: pd.DataFrame) -> pd.DataFrame:
    """image_id, class_id, rank and label (index of the class in classes.parquet), in the given order."""
    rows = manifest.set_index("image_id").loc[image_ids, ["class_id", "rank"]].reset_index()
    rows["label"] = rows["class_id"].map({c: i for i, c in enumerate(classes["class_id"])}).astype(int)
    return rows


def shot_level_examples(
    features: np.ndarray, image_ids: list[str], manifest: pd.DataFrame, classes: pd.DataFrame, shots: int
) -> tuple[np.ndarray, np.ndarray]:
    """The feature rows and labels of the ``shots``-per-class level among extracted training images."""
    rows = labelled(image_ids, manifest, classes)
    subset = in_shot_level(rows, shots)
    return features[subset], rows["label"].to_numpy()[subset]

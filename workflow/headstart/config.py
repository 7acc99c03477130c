"""Config validation against workflow/schemas/config.schema.yaml, with one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .classes import ClassesError, checked_entries
from .errors import HeadstartError
from .vocabulary import (
    BASELINES,
    COTUNING_METHODS,
    FASHION_MNIST_LABELS,
    METHOD_SUFFIXES,
    PRIOR_SUFFIX,
    SOURCE_CLASSES,
    WEIGHT_SOURCES,
    VocabularyError,
    fashion_mnist_label,
    needs_no_images,
    run_name,
    runs_to_keep,
    similarity_measure,
)

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
    """Each class a WordNet noun or a label; ids unique; at least two classes; classes without a synset only
    where no WordNet measure and no per-synset archive needs one; the report's example class among them."""
    dataset = config["dataset"]
    try:
        classes = checked_entries(dataset)
    except ClassesError as err:
        raise ConfigError(str(err)) from None
    if len(classes) < 2:
        where = f" (folders of {dataset['imagefolder']['root']})" if dataset.get("classes") is None else ""
        raise ConfigError(f"dataset.classes: {len(classes)} class{where}; a classifier needs at least 2")
    wanted = (config.get("report") or {}).get("example_class")
    known = all(class_id is not None for class_id, _, _ in classes)  # (ids need WordNet's files: see checked_entries)
    if wanted is not None and known and not any(wanted in (class_id, name) for class_id, name, _ in classes):
        raise ConfigError(
            f"report.example_class: {wanted!r} is not a target class; give a class id or label, one of "
            + ", ".join(f"{class_id} ({name})" for class_id, name, _ in classes[:10])
            + (" ..." if len(classes) > 10 else "")
        )
    unmapped = [name for _, name, mapped in classes if not mapped]
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


def run_ks(config: dict[str, Any], method: str, shots: int) -> list[str]:
    """The K labels of a method's runs at a shot level ('0' for a baseline; a prior is centred on its
    measure's best-K head; below the largest shot level only K = best, unless k_fixed_at_largest_shot_only
    is false)."""
    finetune = config["finetune"]
    if method in BASELINES:
        return ["0"]
    if method.endswith(PRIOR_SUFFIX):
        return ["best"]
    every_level = not finetune.get("k_fixed_at_largest_shot_only", True)
    return [str(k) for k in finetune["k"] if k == "best" or every_level or int(shots) == max(finetune["shots"])]


def job_runs(config: dict[str, Any], shots: int) -> list[tuple[str, str]]:
    """The (method, K) runs that one fine-tuning job of a shot level trains in lockstep."""
    return [(method, k) for method in config["finetune"]["methods"] for k in run_ks(config, method, shots)]


def decoded_shots(split: dict[str, Any]) -> int:
    """The training images per class that are decoded and extracted for every experiment on the dataset:
    split.max_shots, at most the whole training pool (by default all of it)."""
    pool = split["train_per_class"] - split["val_per_class"]
    return min(split.get("max_shots") or pool, pool)


def export_runs(config: dict[str, Any], shots: int) -> list[str]:
    """The runs ('<method>/k<K>') export may choose among at ``shots`` images per class, as export's keys
    allow: at 0, the untrained heads that need no image (the largest shot level's runs of those methods)."""
    export, finetune = config.get("export") or {}, config["finetune"]
    if shots == 0:
        runs = [(m, k) for m, k in job_runs(config, max(finetune["shots"])) if needs_no_images(m)]
    else:
        runs = job_runs(config, shots)
    return runs_to_keep([run_name(m, k) for m, k in runs], export.get("method"), export.get("k"))


def _check_export(config: dict[str, Any]) -> None:
    """export's choices name runs that exist: the shot level (0: an untrained head that needs no image),
    the seed, and a run of that method and K at that shot level."""
    export, finetune = config.get("export") or {}, config["finetune"]
    if export.get("shots") not in (None, 0) and export["shots"] not in finetune["shots"]:
        raise ConfigError(
            f"export.shots: {export['shots']} is not a shot level of finetune.shots {finetune['shots']} (nor 0)"
        )
    if export.get("method") is not None and export["method"] not in finetune["methods"]:
        raise ConfigError(f"export.method: {export['method']!r} is not one of finetune.methods")
    if export.get("seed") is not None and export["seed"] not in finetune["seeds"]:
        raise ConfigError(f"export.seed: {export['seed']} is not one of finetune.seeds {finetune['seeds']}")
    shots = max(finetune["shots"]) if export.get("shots") is None else export["shots"]
    method, k = export.get("method"), export.get("k")
    if export_runs(config, shots):
        return
    if shots == 0:
        raise ConfigError(
            "export.shots: 0 images per class needs a method whose head needs no image (random, or a WordNet, "
            "word-vector or sentence measure) among finetune.methods"
            + (f"; {method} needs images" if method and not needs_no_images(method) else "")
            + (f" with K {k}" if k is not None else "")
        )
    fitting = [run_k for m, run_k in job_runs(config, shots) if method is None or m == method]
    raise ConfigError(
        f"export: no run at {shots} images per class is "
        + " with ".join(filter(None, [f"method {method}" if method else "", f"K {k}" if k is not None else ""]))
        + f" (its K there: {', '.join(dict.fromkeys(fitting))})"
    )


def _check_consistency(config: dict[str, Any]) -> None:
    dataset = config["dataset"]
    if dataset["source"] == "fashion_mnist" and isinstance(dataset.get("classes"), list):
        try:
            numbers = [fashion_mnist_label(entry.get("label")) for entry in dataset["classes"]]
        except VocabularyError as err:
            raise ConfigError(str(err)) from None
        if len(set(numbers)) != len(numbers):
            twice = next(FASHION_MNIST_LABELS[n] for n in numbers if numbers.count(n) > 1)
            raise ConfigError(f"dataset.classes: the Fashion-MNIST label {twice!r} is listed twice")
    _check_classes(config)
    _check_models(config)
    _check_shots_and_k(config)
    _check_methods(config)
    _check_export(config)
    if config["finetune"]["eval_every"] > config["finetune"]["iterations"]:
        raise ConfigError("finetune.eval_every: larger than finetune.iterations")


def _check_models(config: dict[str, Any]) -> None:
    """K within the source classes; one weights source per model; the model among them."""
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


def _check_shots_and_k(config: dict[str, Any]) -> None:
    """Every shot level within the decoded training images; every fine-tuned K on the heads' grid."""
    split, finetune = config["split"], config["finetune"]
    largest = max(finetune["shots"])
    room = split["train_per_class"] - split["val_per_class"]
    if largest > room:
        raise ConfigError(
            f"finetune.shots: {largest} images per class do not fit in split.train_per_class "
            f"({split['train_per_class']}) minus split.val_per_class ({split['val_per_class']})"
        )
    if largest > decoded_shots(split):
        raise ConfigError(
            f"finetune.shots: {largest} images per class is above split.max_shots ({split['max_shots']}), the "
            "training images decoded for every experiment on this dataset (raise split.max_shots)"
        )
    off_grid = [k for k in finetune["k"] if k != "best" and k not in config["heads"]["k_grid"]]
    if off_grid:
        raise ConfigError(
            f"finetune.k: {off_grid[0]} is not in heads.k_grid {config['heads']['k_grid']} (the similarity heads "
            "are written for every K of the grid; add it there)"
        )


def _check_methods(config: dict[str, Any]) -> None:
    """Every method a baseline or a measure's; what each training mode needs; a run at every shot level."""
    finetune, measures = config["finetune"], config["similarity"]["measures"]
    unknown = [m for m in finetune["methods"] if m not in BASELINES and similarity_measure(m) not in measures]
    if unknown:
        raise ConfigError(
            f"finetune.methods: {unknown[0]!r} is neither a baseline ({', '.join(BASELINES)}) nor a measure of "
            f"similarity.measures ({', '.join(measures)}), with or without a suffix "
            f"({', '.join(METHOD_SUFFIXES)})"
        )
    cotuning = [m for m in finetune["methods"] if m in COTUNING_METHODS]
    if cotuning and finetune["train"] != "last_stage":
        raise ConfigError(
            f"finetune.methods: {cotuning[0]} needs finetune.train: last_stage; with only the head trainable its "
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


def load_config(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(Path(path).read_text())
    validate_config(config)
    return config

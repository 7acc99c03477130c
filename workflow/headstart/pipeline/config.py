"""The config: validated against workflow/schemas/config.schema.yaml with one-line errors, checked across
fields, then parsed once into frozen dataclasses (:func:`parse_config`) that the rules and the planning
code (headstart.pipeline.plan) read by attribute.

A job's params are plain dicts and lists (a section's ``options``, or a ``tracked`` property): Snakemake
compares a finished job's params by their repr and ignores any other type, so a dataclass there would
never rerun a job whose settings changed."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ..core.errors import HeadstartError
from ..core.vocabulary import (
    BASELINES,
    COTUNING_METHODS,
    COTUNING_TRADE_OFF,
    FASHION_MNIST_LABELS,
    METHOD_SUFFIXES,
    PACKAGED_ENCODERS,
    PRIOR_SUFFIX,
    SOURCE_CLASSES,
    VISUAL_MEASURES,
    WEIGHT_SOURCES,
    Method,
    RunId,
    VocabularyError,
    fashion_mnist_label,
    needs_no_images,
    runs_to_keep,
    sentence_encoder_folder,
    similarity_measure,
)
from ..data.classes import ClassesError, checked_entries

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


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
            f"similarity.measures: {', '.join(wordnet)} need{'s' * (len(wordnet) == 1)} every class mapped to a "
            f"WordNet synset; unmapped: "
            f"{named} (give each a synset in dataset.classes, or measure with inference, softmax and wordvec only)"
        )
    if dataset["source"] == "imagenet21k":
        raise ConfigError(f"dataset.classes: ImageNet-21k archives are per synset; give a synset to {named}")


def decoded_shots(split: dict[str, Any]) -> int:
    """The training images per class that are decoded and extracted for every experiment on the dataset:
    split.max_shots, at most the whole training pool (by default all of it)."""
    pool = split["train_per_class"] - split["val_per_class"]
    return min(split.get("max_shots") or pool, pool)


def _check_export(config: dict[str, Any]) -> None:
    """export's choices name runs that exist: the shot level (0: an untrained head that needs no image),
    the seed, and a run of that method and K at that shot level."""
    export, finetune = config.get("export") or {}, config["finetune"]
    runs = FinetuneConfig.from_options(finetune)
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
    candidates = runs.export_runs(ExportConfig.from_options(export, runs.largest_shot), shots)
    if shots == 0 and candidates and all(run.method == "random" for run in candidates):
        raise ConfigError(
            "export.shots: at 0 images per class the only head to export would be random's untrained one (an "
            "Xavier draw, chance level): add a WordNet, word-vector or sentence method to finetune.methods, or "
            "export at a shot level"
        )
    if candidates:
        return
    if shots == 0:
        raise ConfigError(
            "export.shots: 0 images per class needs a method whose head needs no image (random, or a WordNet, "
            "word-vector or sentence measure) among finetune.methods"
            + (f"; {method} needs images" if method and not needs_no_images(method) else "")
            + (f" with K {k}" if k is not None else "")
        )
    fitting = [run_k for m, run_k in runs.job_runs(shots) if method is None or m == method]
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
    preprocess = config["preprocess"]
    if preprocess["crop"] > preprocess["resize"]:
        raise ConfigError(
            f"preprocess.crop: {preprocess['crop']} is larger than preprocess.resize ({preprocess['resize']}), "
            "the shorter side an image is resized to before its centre crop"
        )


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


def _check_local_files(config: dict[str, Any]) -> None:
    """The files the config names on the user's disk exist, and an ImageFolder holds enough images per
    class: checked at every parse, before the first job (Snakemake would otherwise say "Nothing to be done"
    while older results exist, or fail inside a job)."""
    weights = config["models"][config["model"]]["weights"].get("path")
    if weights and not os.path.isfile(weights):
        raise ConfigError(f"models.{config['model']}.weights.path: {weights} is not a file")
    if config["dataset"]["source"] == "imagefolder":
        _check_imagefolder_sizes(config["dataset"], config["split"])
    similarity = config["similarity"]
    vectors = similarity["wordvec"]["vectors"]
    if "wordvec" in similarity["measures"] and vectors != "glove-6b-50d" and not os.path.isfile(vectors):
        raise ConfigError(f"similarity.wordvec.vectors: {vectors} is not a file (download it, or use glove-6b-50d)")
    encoder = (similarity.get("sentence") or {}).get("encoder", DEFAULT_ENCODER)
    if "sentence" in similarity["measures"] and encoder not in PACKAGED_ENCODERS:
        if not os.path.isfile(os.path.join(encoder, "modules.json")):
            raise ConfigError(
                f"similarity.sentence.encoder: {encoder} is neither a packaged encoder "
                f"({', '.join(PACKAGED_ENCODERS)}) nor a sentence-transformers model folder (no modules.json)"
            )


def _check_imagefolder_sizes(dataset: dict[str, Any], split: dict[str, Any]) -> None:
    """Each ImageFolder class holds at least the split's train and test images per class (its image files,
    counted; an unreadable one still fails the dataset job, naming it)."""
    from ..data.classes import dataset_classes  # only for an ImageFolder: it imports NLTK (1.5 s)
    from ..data.sources import imagefolder_files

    root, needed = dataset["imagefolder"]["root"], split["train_per_class"] + split["test_per_class"]
    for target in dataset_classes(dataset):
        found = len(imagefolder_files(root, target.folder))
        if found < needed:
            raise ConfigError(
                f"dataset.imagefolder: class {target.name!r} has {found} image files in {Path(root) / target.folder}; "
                f"the split needs {needed} per class (split.train_per_class {split['train_per_class']} + "
                f"test_per_class {split['test_per_class']}): add images, or lower those"
            )


def check_model_parts(model: ModelConfig, cache: Path | None = None) -> None:
    """The head and the trainable modules that the model's entry names are parts of its architecture (built
    without weights), so that a typo fails here, not inside the first job. Building the network needs torch
    and timm (seconds): a passed check is remembered in ``cache`` under the entry's settings and the
    libraries' versions, so that it runs once per changed setting, not at every parse."""
    import hashlib
    import importlib.metadata
    import json

    entry = model.options
    checked = {key: entry[key] for key in ("library", "arch", "trainable", "head")}
    versions = {name: importlib.metadata.version(name) for name in ("timm", "torch", "torchvision")}
    # the check itself: a stricter one checks again
    checker = (Path(__file__).parents[1] / "extract" / "models.py").read_text()
    key = hashlib.sha256(json.dumps([checked, versions, checker], sort_keys=True).encode()).hexdigest()
    try:
        passed = set(json.loads(cache.read_text())) if cache is not None else set()
    except (OSError, ValueError, TypeError):
        passed = set()
    if key in passed:
        return
    from ..extract.models import ModelError, build_architecture, split_model

    try:
        split_model(build_architecture(entry["library"], entry["arch"]), list(entry["trainable"]), entry["head"])
    except ModelError as err:
        raise ConfigError(f"models.{model.name}: {err}") from None
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(sorted(passed | {key})))
            os.replace(partial, cache)
        except OSError:  # a read-only checkout: the check runs at every parse
            pass


# ---------------------------------------------------------------------------------------------
# The parsed config

DEFAULT_ENCODER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class DataConfig:
    """dataset: and split:, and the seed that draws the split."""

    name: str
    source: str  # fashion_mnist | imagenet21k | imagefolder
    options: dict[str, Any]  # the dataset section, as validated (the dataset job's param)
    split_options: dict[str, Any]
    seed: int

    @property
    def split(self) -> dict[str, Any]:
        """split's options that change the dataset and split jobs (max_shots is the decode stage's alone)."""
        return {key: value for key, value in self.split_options.items() if key != "max_shots"}

    @property
    def decoded_shots(self) -> int:
        """The training images per class decoded and extracted for every experiment on the dataset."""
        return decoded_shots(self.split_options)

    @property
    def source_options(self) -> dict[str, Any]:
        """The source's own section (dataset.fashion_mnist, .imagenet21k, .imagefolder); {} when absent."""
        return self.options.get(self.source) or {}


@dataclass(frozen=True)
class PreprocessConfig:
    resize: int
    crop: int
    options: dict[str, Any]


@dataclass(frozen=True)
class ModelConfig:
    """The source model (model: and its entry of models:)."""

    name: str
    options: dict[str, Any]  # its models: entry (library, arch, weights, trainable, head)


@dataclass(frozen=True)
class ExtractConfig:
    device: str
    options: dict[str, Any]

    @property
    def tracked(self) -> dict[str, Any]:
        """The options that change the extraction's result (the device does not)."""
        return {key: value for key, value in self.options.items() if key != "device"}


@dataclass(frozen=True)
class SimilarityConfig:
    measures: tuple[str, ...]
    wordvec: dict[str, Any]
    sentence_encoder: str  # a packaged encoder's name or the user's folder

    @property
    def visual(self) -> tuple[str, ...]:
        return tuple(m for m in self.measures if m in VISUAL_MEASURES)

    @property
    def wordnet(self) -> tuple[str, ...]:
        return tuple(m for m in self.measures if m.startswith("wordnet"))

    @property
    def sentence_folder(self) -> str:
        """Where the sentence measure reads its encoder (a packaged one is unpacked under results/)."""
        return sentence_encoder_folder(self.sentence_encoder)


@dataclass(frozen=True)
class HeadsConfig:
    k_grid: tuple[int, ...]
    c_grid: dict[str, Any]

    @property
    def head_ks(self) -> list[str]:
        """The K labels of the similarity heads written: every K of the grid and the best K per class type,
        whatever an experiment fine-tunes, so that the heads (shared by every experiment) never depend on one."""
        return [str(k) for k in self.k_grid] + ["best"]


# Fine-tuning options that only choose which jobs exist (methods, shots, K), or where and how fast a job runs
# (device, checkpoint spacing): kept out of a job's params, because Snakemake reruns a finished job whose params
# changed. cotuning_trade_off reaches a job through its Co-Tuning head file, which holds it.
FINETUNE_UNTRACKED = frozenset(
    {
        "methods",
        "shots",
        "k",
        "k_fixed_at_largest_shot_only",
        "seeds",
        "device",
        "checkpoint_every",
        "cotuning_trade_off",
    }
)


@dataclass(frozen=True)
class FinetuneConfig:
    methods: tuple[Method, ...]
    shots: tuple[int, ...]  # largest first
    seeds: tuple[int, ...]
    k: tuple[str, ...]  # the K labels fine-tuned ('best' or a K of heads.k_grid)
    k_fixed_at_largest_shot_only: bool
    train: str  # head | last_stage
    augment: bool
    options: dict[str, Any]

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FinetuneConfig:
        return cls(
            methods=tuple(Method(name) for name in options["methods"]),
            shots=tuple(sorted(options["shots"], reverse=True)),
            seeds=tuple(options["seeds"]),
            k=tuple(str(k) for k in options["k"]),
            k_fixed_at_largest_shot_only=options.get("k_fixed_at_largest_shot_only", True),
            train=options["train"],
            augment=options["augment"],
            options=options,
        )

    def run_ks(self, method: Method, shots: int) -> list[str]:
        """The K labels of a method's runs at a shot level ('0' for a baseline; a prior is centred on its
        measure's best-K head; below the largest shot level only K = best, unless
        k_fixed_at_largest_shot_only is false)."""
        if method.is_baseline:
            return ["0"]
        if method.suffix == PRIOR_SUFFIX:
            return ["best"]
        every_level = not self.k_fixed_at_largest_shot_only
        return [k for k in self.k if k == "best" or every_level or int(shots) == self.largest_shot]

    def job_runs(self, shots: int | str) -> list[RunId]:
        """The runs that one fine-tuning job of a shot level trains in lockstep."""
        return [RunId(method.name, k) for method in self.methods for k in self.run_ks(method, int(shots))]

    def export_runs(self, export: ExportConfig, shots: int) -> list[RunId]:
        """The runs export may choose among at ``shots`` images per class, as export's keys allow: at 0, the
        untrained heads that need no image (the largest shot level's runs of those methods)."""
        if shots == 0:
            runs = [run for run in self.job_runs(self.largest_shot) if not Method(run.method).needs_images]
        else:
            runs = self.job_runs(shots)
        return runs_to_keep(runs, export.method, export.k)

    @property
    def largest_shot(self) -> int:
        return self.shots[0]

    @property
    def method_names(self) -> list[str]:
        return [method.name for method in self.methods]

    @property
    def cotuning_trade_off(self) -> float:
        return self.options.get("cotuning_trade_off", COTUNING_TRADE_OFF)

    @property
    def tracked(self) -> dict[str, Any]:
        """The options that change a fine-tuning job's result: every option but FINETUNE_UNTRACKED, with the
        own optimisers of the methods it trains only (so that Co-Tuning's SGD reruns no job without it)."""
        options = {key: value for key, value in self.options.items() if key not in FINETUNE_UNTRACKED}
        own = options.get("method_optimizers") or {}
        options["method_optimizers"] = {m: sgd for m, sgd in own.items() if m in self.method_names}
        return options

    @property
    def on_cached_features(self) -> bool:
        """A head trained on cached features (train: head, no augment): a few small matmuls on a few MB."""
        return self.train == "head" and not self.augment


@dataclass(frozen=True)
class ExportConfig:
    """export: which run is handed back (None: chosen on validation)."""

    shots: int  # the shot level (0: an untrained head that needs no image)
    method: str | None
    k: str | None
    seed: int | None
    options: dict[str, Any]  # the keys set (not None)

    @classmethod
    def from_options(cls, options: dict[str, Any] | None, largest_shot: int) -> ExportConfig:
        options = {key: value for key, value in (options or {}).items() if value is not None}
        k = options.get("k")
        return cls(
            options.get("shots", largest_shot),
            options.get("method"),
            k if k is None else str(k),
            options.get("seed"),
            options,
        )

    @property
    def tracked(self) -> dict[str, Any]:
        """What the fine-tuning jobs of the export's shot level read: which runs they may keep (the seed is
        chosen after them)."""
        return {key: value for key, value in self.options.items() if key != "seed"}


@dataclass(frozen=True)
class ReportConfig:
    example_class: str | None


@dataclass(frozen=True)
class Config:
    """The whole config, parsed once (:func:`parse_config`)."""

    experiment: str
    seed: int
    data: DataConfig
    preprocess: PreprocessConfig
    model: ModelConfig
    models: dict[str, dict[str, Any]]  # every models: entry by name (a job of another model reads its own)
    extract: ExtractConfig
    similarity: SimilarityConfig
    heads: HeadsConfig
    finetune: FinetuneConfig
    export: ExportConfig
    report: ReportConfig

    def export_runs(self, shots: int) -> list[RunId]:
        """The runs export may choose among at ``shots`` images per class."""
        return self.finetune.export_runs(self.export, shots)


def parse_config(raw: dict[str, Any]) -> Config:
    """Validate ``raw`` (Snakemake's merged config) and parse it into a :class:`Config`."""
    validate_config(raw)
    _check_local_files(raw)
    finetune = FinetuneConfig.from_options(raw["finetune"])
    similarity = raw["similarity"]
    return Config(
        experiment=raw["experiment"],
        seed=raw["seed"],
        data=DataConfig(raw["dataset"]["name"], raw["dataset"]["source"], raw["dataset"], raw["split"], raw["seed"]),
        preprocess=PreprocessConfig(raw["preprocess"]["resize"], raw["preprocess"]["crop"], raw["preprocess"]),
        model=ModelConfig(raw["model"], raw["models"][raw["model"]]),
        models=raw["models"],
        extract=ExtractConfig(raw["extract"]["device"], raw["extract"]),
        similarity=SimilarityConfig(
            tuple(similarity["measures"]),
            similarity["wordvec"],
            (similarity.get("sentence") or {}).get("encoder", DEFAULT_ENCODER),
        ),
        heads=HeadsConfig(tuple(raw["heads"]["k_grid"]), raw["heads"]["c_grid"]),
        finetune=finetune,
        export=ExportConfig.from_options(raw.get("export"), finetune.largest_shot),
        report=ReportConfig((raw.get("report") or {}).get("example_class")),
    )

# Helpers shared by the rules: config validation, paths and the lists of expected files.
import os
import re
import sys

from pathlib import Path

from headstart.config import (
    ConfigError,
    decoded_shots,
    export_runs as config_export_runs,
    job_runs as config_job_runs,
    validate_config,
)
from headstart.vocabulary import (
    BASELINES,
    CALIBRATED_SUFFIX,
    COTUNING_METHODS,
    COTUNING_TRADE_OFF,
    PRIOR_SUFFIX,
    FASHION_MNIST_FILES,
    VISUAL_MEASURES,
    fashion_mnist_local,
    local_archive,
    PACKAGED_ENCODERS,
    sentence_encoder_folder,
    similarity_measure,
    split_run_name,
)
from headstart.provenance import code_hash

try:
    validate_config(config)
except ConfigError as err:
    sys.exit(f"headstart: invalid config: {err}")

if "wordvec" in config["similarity"]["measures"]:
    # checked on every run: Snakemake itself would say "Nothing to be done" while older results exist
    _vectors = config["similarity"]["wordvec"]["vectors"]
    if _vectors != "glove-6b-50d" and not os.path.isfile(_vectors):
        sys.exit(f"headstart: similarity.wordvec.vectors: {_vectors} is not a file (download it, or use glove-6b-50d)")

# the sentence measure's encoder: a packaged one (unpacked by rule sentence_encoder) or the user's folder
_encoder = config["similarity"].get("sentence", {}).get("encoder", "all-minilm-l6-v2")
SENTENCE_ENCODER = sentence_encoder_folder(_encoder)
if "sentence" in config["similarity"]["measures"] and _encoder not in PACKAGED_ENCODERS:
    if not os.path.isfile(os.path.join(_encoder, "modules.json")):
        sys.exit(
            f"headstart: similarity.sentence.encoder: {SENTENCE_ENCODER} is neither a packaged encoder "
            f"({', '.join(PACKAGED_ENCODERS)}) nor a sentence-transformers model folder (no modules.json)"
        )

DATASET = config["dataset"]["name"]
# the dataset stage runs one script per source: an edit to one source's code reruns no other's dataset
DATASET_SOURCE = config["dataset"]["source"]
MODEL = config["model"]
SHOTS = sorted(config["finetune"]["shots"], reverse=True)
LARGEST_SHOT = SHOTS[0]
SEEDS = config["finetune"]["seeds"]
MEASURES = config["similarity"]["measures"]
VISUAL = [m for m in MEASURES if m in VISUAL_MEASURES]
WORDNET = [m for m in MEASURES if m.startswith("wordnet")]
METHODS = config["finetune"]["methods"]
# which run to export (headstart.selection, headstart.export): by default the best on validation at the largest shot level
EXPORT = {key: value for key, value in config.get("export", {}).items() if value is not None}
EXPORT_SHOTS = EXPORT.get("shots", LARGEST_SHOT)
SPLITS = ["train", "val", "test"]
DATA = f"results/{DATASET}"
RUN = f"results/{DATASET}/{MODEL}"
PIXELS = f"{DATA}/pixels/resize{config['preprocess']['resize']}_crop{config['preprocess']['crop']}"
# the training images per class decoded and extracted: the dataset's, the same for every experiment on it
DECODED_SHOTS = decoded_shots(config["split"])
MODELS = f"results/models/{MODEL}"  # the source model's head and class list, shared by every dataset
EXPERIMENT = config["experiment"]
EXP = f"{RUN}/{EXPERIMENT}"  # one fine-tuning setup's runs, curves, figures and tables; all before is shared
CALIBRATED = [m for m in METHODS if m.endswith(CALIBRATED_SUFFIX)]
PRIORS = [m for m in METHODS if m.endswith(PRIOR_SUFFIX)]
LINEAR = ["probe", *PRIORS]  # heads fitted by the linear sweep (headstart.heads.linear_sweep)


def library_code(script):
    """A hash of workflow/scripts/{script}.py and the library modules it runs: a rule's param, so that a
    change to the library reruns the jobs whose code changed, and no others (headstart.provenance)."""
    return code_hash(
        Path(workflow.basedir) / "workflow" / "scripts" / f"{script}.py",
        Path(workflow.basedir) / "workflow" / "headstart",
    )


def log_file(rule, *parts):
    """results/logs/{rule}/{parts}.log: one log tree for every rule (SLURM's logs under results/logs/slurm)."""
    return os.path.join("results", "logs", rule, *parts) + ".log"


def benchmark_file(rule, *parts):
    """results/benchmarks/{rule}/{parts}.tsv: one tree of Snakemake's per-job time and memory records."""
    return os.path.join("results", "benchmarks", rule, *parts) + ".tsv"


wildcard_constraints:
    dataset=re.escape(DATASET),
    model=re.escape(MODEL),
    shots=r"\d+",
    level=r"shots\d+|all_shots",
    split="train|val|test",
    k=r"\d+|best",
    seed=r"\d+",
    measure="|".join(map(re.escape, MEASURES)),
    calibrated="|".join(map(re.escape, CALIBRATED)) or "(?!)",
    linear="|".join(map(re.escape, LINEAR)),
    baseline="|".join(BASELINES),
    cotuning="|".join(COTUNING_METHODS),
    encoder="|".join(map(re.escape, PACKAGED_ENCODERS)),


def sim_file(measure, shots):
    """Visual similarities are computed from each shot level's images; semantic ones are not."""
    if measure in VISUAL_MEASURES:
        return f"{RUN}/sim/{measure}_shots{shots}.parquet"
    return f"{RUN}/sim/{measure}.parquet"


def similarity_level(measure, shots):
    """The shot level a measure's similarity heads and K grid belong to: a visual measure's own, while a
    semantic measure's are the same at every level ('all_shots'), computed once and shared by all."""
    return f"shots{shots}" if measure in VISUAL_MEASURES else "all_shots"


def kgrid_file(measure, shots, suffix=".parquet"):
    """A measure's K grid on validation (suffix '_best_k.json': the best K per class type it picked)."""
    return f"{RUN}/kgrid/{measure}/{similarity_level(measure, shots)}{suffix}"


# The K labels for which similarity heads are written: every K of the grid and the best K per class type,
# whatever an experiment fine-tunes, so that the heads (shared by every experiment) never depend on one.
HEAD_KS = [str(k) for k in config["heads"]["k_grid"]] + ["best"]


def job_runs(shots):
    """The (method, K) runs that one fine-tuning job of a shot level trains in lockstep."""
    return config_job_runs(config, shots)


def head_file(method, k, shots, seed):
    """The initial head of one run: the random head is drawn per seed (so its confidence interval at
    iteration 0 is real), and Co-Tuning's target head is that seed's random head; a semantic measure's
    top-K head is the same at every shot level; every other head belongs to a shot level."""
    if method == "random":
        return f"{RUN}/heads/random/k0/seed{seed}.safetensors"
    if method in COTUNING_METHODS:  # it holds the experiment's trade-off (finetune.cotuning_trade_off)
        return f"{EXP}/heads/{method}/k0/shots{shots}_seed{seed}.safetensors"
    if method in MEASURES:
        return f"{RUN}/heads/{method}/k{k}/{similarity_level(method, shots)}.safetensors"
    return f"{RUN}/heads/{method}/k{k}/shots{shots}.safetensors"


def all_curves():
    """One curve file per fine-tuning job (shot level, seed), holding all its runs."""
    return [f"{EXP}/runs/shots{shots}/seed{seed}.parquet" for shots in SHOTS for seed in SEEDS]


def all_similarities():
    return [sim_file(m, s) for m in MEASURES for s in (SHOTS if m in VISUAL else [None])]


def all_targets():
    return (
        [f"{DATA}/manifest.parquet", f"{DATA}/classes.parquet"]
        + all_similarities()
        + [kgrid_file(m, LARGEST_SHOT) for m in MEASURES]
        + [f"{EXP}/curves.parquet", f"{EXP}/export/card.json"]
        + expand(f"{EXP}/figures/{{fig}}.{{ext}}", fig=["answer", "fig1", "fig2", "fig3"], ext=["png", "pdf"])
        + expand(
            f"{EXP}/tables/{{table}}.{{ext}}",
            table=["answer", "table1", "table2", "init", "convergence"],
            ext=["csv", "md", "tex"],
        )
        + [f"{EXP}/tables/top_sources/{m}.csv" for m in MEASURES]
        + (expand(f"{EXP}/tables/linear_c.{{ext}}", ext=["csv", "md", "tex"]) if set(LINEAR) & set(METHODS) else [])
    )


# Options that only choose which jobs exist (methods, shots, K), or where and how fast a job runs
# (device, loader workers, checkpoint spacing): kept out of a rule's params, because Snakemake reruns
# a finished job whose params changed. Scripts read them from `snakemake.config`.
# (cotuning_trade_off reaches a job through its Co-Tuning head file, which holds it.)
FINETUNE_UNTRACKED = {
    "methods",
    "shots",
    "k",
    "k_fixed_at_largest_shot_only",
    "seeds",
    "device",
    "checkpoint_every",
    "cotuning_trade_off",
}
EXTRACT_UNTRACKED = {"device"}


def tracked(options, untracked):
    """The options that change a job's result."""
    return {key: value for key, value in options.items() if key not in untracked}


def finetune_tracked():
    """finetune's options that change a job's result: the own optimisers of the methods it trains only (so
    that Co-Tuning's SGD reruns no job without Co-Tuning)."""
    options = tracked(config["finetune"], FINETUNE_UNTRACKED)
    own = options.get("method_optimizers") or {}
    options["method_optimizers"] = {m: sgd for m, sgd in own.items() if m in config["finetune"]["methods"]}
    return options


def finetune_on_cached_features():
    """A head trained on cached features (train: head, no augment): a few small matmuls on a few MB."""
    options = config["finetune"]
    return options["train"] == "head" and not options["augment"]


def finetune_threads():
    """One thread for a head on cached features, so jobs run side by side; every other mode runs
    convolutions (or feeds a GPU), as extraction does."""
    return 1 if finetune_on_cached_features() else 8


def finetune_mem_mb():
    """A head on cached features holds the features and its runs' heads (0.86 GB at 500 images per class,
    measured): the default 4 GB, so that a node runs many; every other mode holds a trunk's activations or
    a batch of crops through it, as extraction does (32 GB, as there)."""
    return 4000 if finetune_on_cached_features() else 32000


def dataset_inputs(wildcards):
    """Files the dataset stage reads, so editing an image list reruns it."""
    source = config["dataset"]["source"]
    files = []
    if source == "imagenet21k":
        files += [config["dataset"]["imagenet21k"]["train_list"], config["dataset"]["imagenet21k"]["test_list"]]
    if isinstance(config["dataset"].get("classes"), str):
        files.append(config["dataset"]["classes"])
    if source == "imagefolder":  # an image of a class added, removed or replaced reruns the stage (no other)
        from headstart.classes import dataset_classes
        from headstart.data import imagefolder_files

        root = config["dataset"]["imagefolder"]["root"]
        for target in dataset_classes(config["dataset"]):
            files += [str(path) for path in imagefolder_files(root, target.folder)]
    return files


def download_targets():
    """The files the dataset stage needs from the network (none when they are local): fetched by the
    download rules, on the submitting host."""
    from headstart.classes import dataset_classes  # only here: it imports NLTK (1.5 s)

    dataset = config["dataset"]
    if dataset["source"] == "fashion_mnist":
        if fashion_mnist_local(dataset.get("fashion_mnist", {}).get("local_dir")):
            return []
        return [f"{DATA}/downloads/{name}" for name in FASHION_MNIST_FILES]
    if dataset["source"] == "imagenet21k":
        tar_dir = dataset["imagenet21k"].get("tar_dir")
        return [
            f"{DATA}/downloads/{target.wnid}.tar"
            for target in dataset_classes(dataset)
            if not local_archive(target.wnid, tar_dir)
        ]
    return []


def wordvec_inputs(wildcards):
    """A word-vector file given by path is an input: replacing it reruns the wordvec matrix."""
    vectors = config["similarity"]["wordvec"]["vectors"]
    return [] if vectors == "glove-6b-50d" else [vectors]

# Wires the parsed config (headstart.pipeline.config) and the plan (headstart.pipeline.plan) to Snakemake: the names the rules
# read, the wildcards' constraints and each rule's code hash. Nothing is decided here.
import re
import sys

from pathlib import Path

from headstart.pipeline.config import ConfigError, check_model_parts, parse_config
from headstart.pipeline.plan import SPLITS, Plan, benchmark_file, log_file
from headstart.pipeline.provenance import CodeHashes
from headstart.core.vocabulary import (
    BASELINES,
    COTUNING_METHODS,
    FASHION_MNIST_FILES,
    PACKAGED_ENCODERS,
    VISUAL_MEASURES,
    similarity_measure,
)

try:
    CONFIG = parse_config(config)
    check_model_parts(CONFIG.model, Path(workflow.basedir) / ".snakemake" / "headstart" / "model_checks.json")
except ConfigError as err:
    sys.exit(f"headstart: invalid config: {err}")
PLAN = Plan(CONFIG)

DATASET = CONFIG.data.name
DATASET_SOURCE = CONFIG.data.source  # one dataset script per source: an edit to one reruns no other's
MODEL = CONFIG.model.name
EXPERIMENT = CONFIG.experiment
SHOTS = CONFIG.finetune.shots
LARGEST_SHOT = CONFIG.finetune.largest_shot
SEEDS = CONFIG.finetune.seeds
MEASURES = list(CONFIG.similarity.measures)  # a list: params compare by repr
EXPORT_SHOTS = CONFIG.export.shots
DATA, RUN, PIXELS, MODELS, EXP = PLAN.data, PLAN.run, PLAN.pixels, PLAN.models, PLAN.exp


# A hash of workflow/scripts/{script}.py and the library code it runs: a rule's param, so that a change to the
# library reruns the jobs whose code changed, and no others (headstart.pipeline.provenance).
library_code = CodeHashes(
    Path(workflow.basedir) / "workflow" / "scripts",
    Path(workflow.basedir) / "workflow" / "headstart",
    Path(workflow.basedir) / ".snakemake" / "headstart" / "code_hashes.json",
)


wildcard_constraints:
    dataset=re.escape(DATASET),
    model=re.escape(MODEL),
    shots=r"\d+",
    level=r"shots\d+|all_shots",
    split="|".join(SPLITS),
    k=r"\d+|best",
    seed=r"\d+",
    measure="|".join(map(re.escape, MEASURES)),
    calibrated="|".join(map(re.escape, PLAN.calibrated)) or "(?!)",
    linear="|".join(map(re.escape, PLAN.linear)),
    baseline="|".join(BASELINES),
    cotuning="|".join(COTUNING_METHODS),
    encoder="|".join(map(re.escape, PACKAGED_ENCODERS)),

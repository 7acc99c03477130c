"""Snakemake glue: one Co-Tuning run's start at one shot level and seed: the seed's random target head,
the source head it keeps, and the relationship p(source | target) of the shot level's training images
(TLlib's direct estimate: the mean source softmax per target class, the `softmax` measure's matrix)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays
from headstart.heads.headfile import read_head, write_head
from headstart.heads.initial import cotuning_head

log = setup_logging(snakemake.log[0])
shots, seed = int(snakemake.wildcards.shots), int(snakemake.wildcards.seed)
classes = pd.read_parquet(snakemake.input.classes)
source_wnids = pd.read_parquet(snakemake.input.source_classes)["wnid"]
target, _ = read_head(snakemake.input.target)
source, _ = read_arrays(snakemake.input.source)
relationship = pd.read_parquet(snakemake.input.relationship).loc[classes["class_id"], source_wnids].to_numpy()
tensors = cotuning_head((target["weight"], target["bias"]), (source["weight"], source["bias"]), relationship)
write_head(
    snakemake.output.head,
    tensors,
    method=snakemake.wildcards.cotuning,  # cotuning or cotuning_adam: the same start, two optimisers
    k="0",
    classes=classes["class_id"].tolist(),
    classifier="cotuning",
    shots=shots,
    seed=seed,
    trade_off=snakemake.params.trade_off,
)
log.info("Co-Tuning, %d shots, seed %d: trade-off %g", shots, seed, snakemake.params.trade_off)

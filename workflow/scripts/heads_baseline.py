"""Snakemake glue: one feature baseline's head (weight imprinting or a linear probe) at one shot level."""

import pandas as pd

from headstart.heads import baseline_head
from headstart.logs import setup_logging
from headstart.split import shot_level_examples
from headstart.tables import read_arrays, write_tensors

log = setup_logging(snakemake.log[0])
method, shots = snakemake.wildcards.baseline, int(snakemake.wildcards.shots)
source, _ = read_arrays(snakemake.input.head)
features, meta = read_arrays(snakemake.input.features_train, ["features"])
classes = pd.read_parquet(snakemake.input.classes)
examples, labels = shot_level_examples(
    features["features"], meta["image_ids"], pd.read_parquet(snakemake.input.manifest), classes, shots
)
weight, bias = baseline_head(method, examples, labels, len(classes), source["weight"], snakemake.params.seed)
write_tensors(
    {"weight": weight, "bias": bias},
    snakemake.output.head,
    {"method": method, "k": "0", "shots": shots, "classes": classes["wnid"].tolist()},
)
log.info("%s head, %d shots (%d images)", method, shots, len(labels))

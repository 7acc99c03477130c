"""Snakemake glue: a similarity head divided by the temperature fitted on its shot level's training
images (never validation or test images)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays
from headstart.data.split import shot_level_examples
from headstart.heads.headfile import read_head, write_head
from headstart.heads.initial import calibrated_head

log = setup_logging(snakemake.log[0])
method, shots = snakemake.wildcards.calibrated, int(snakemake.wildcards.shots)
head, head_meta = read_head(snakemake.input.head)
features, meta = read_arrays(snakemake.input.features_train, ["features"])
examples, labels = shot_level_examples(
    features["features"],
    meta["image_ids"],
    pd.read_parquet(snakemake.input.manifest),
    pd.read_parquet(snakemake.input.classes),
    shots,
)
weight, bias, temperature = calibrated_head(head["weight"], head["bias"], examples, labels)
log.info(
    "%s, K=%s, %d shots: temperature %.4g fitted on %d training images",
    method,
    head_meta["k"],
    shots,
    temperature,
    len(labels),
)
write_head(
    snakemake.output.head,
    {"weight": weight, "bias": bias},
    **{**head_meta, "method": method, "temperature": temperature, "fitted_on": f"train, {shots} images per class"},
)

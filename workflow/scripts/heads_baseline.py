"""Snakemake glue: the baseline heads (random Xavier, weight imprinting, linear probe) of one shot level."""

import pandas as pd

from headstart.heads import baseline_head
from headstart.logs import setup_logging
from headstart.split import in_shot_level, labelled
from headstart.tables import read_arrays, write_tensors

log = setup_logging(snakemake.log[0])
shots = int(snakemake.wildcards.shots)
source, _ = read_arrays(snakemake.input.head)
features, meta = read_arrays(snakemake.input.features_train, ["features"])
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
train = labelled(meta["image_ids"], manifest, classes)
subset = in_shot_level(train, shots)
for method in snakemake.params.baselines:
    weight, bias = baseline_head(
        method,
        features["features"][subset],
        train["label"].to_numpy()[subset],
        len(classes),
        source["weight"],
        snakemake.params.seed,
    )
    write_tensors(
        {"weight": weight, "bias": bias},
        getattr(snakemake.output, method),
        {"method": method, "k": "0", "shots": shots, "classes": classes["wnid"].tolist()},
    )
    log.info("%s head, %d shots (%d images)", method, shots, int(subset.sum()))

"""Snakemake glue: baseline heads (random Xavier, weight imprinting, linear probe) per shot level."""

import pandas as pd

from headstart.heads import imprint_head, probe_head, xavier_head
from headstart.logs import setup_logging
from headstart.split import labelled
from headstart.tables import read_tensors, write_tensors

log = setup_logging(snakemake.log[0])
method, params = snakemake.wildcards.baseline, snakemake.params
source, _ = read_tensors(snakemake.input.head)
features, meta = read_tensors(snakemake.input.features_train, ["features"])
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
train = labelled(meta["image_ids"], manifest, classes)
n_classes, n_features = len(classes), source["weight"].shape[1]
for shots, path in zip(params.shots, snakemake.output.heads):
    subset = (train["rank"] < shots).to_numpy()
    x, y = features["features"].numpy()[subset], train["label"].to_numpy()[subset]
    if method == "random":
        weight, bias = xavier_head(n_classes, n_features, params.seed)
    elif method == "imprint":
        weight, bias = imprint_head(x, y, n_classes, source["weight"].numpy())
    else:
        weight, bias = probe_head(x, y, n_classes, params.seed)
    write_tensors({"weight": weight, "bias": bias}, path,
                  {"method": method, "k": "0", "shots": shots, "classes": classes["wnid"].tolist()})
    log.info("%s head, %d shots (%d images)", method, shots, int(subset.sum()))

"""Snakemake glue: inference (F-score) or softmax similarity, one matrix per shot level."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.similarity import as_matrix, inference_fscore, mean_softmax
from headstart.split import labelled
from headstart.tables import write_parquet

log = setup_logging(snakemake.log[0])
measure = snakemake.wildcards.visual
logits = pd.read_parquet(snakemake.input.logits)
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
rows = labelled(logits.index.tolist(), manifest, classes)
compute = inference_fscore if measure == "inference" else mean_softmax
for shots, path in zip(snakemake.params.shots, snakemake.output):
    subset = (rows["rank"] < shots).to_numpy()
    values = compute(rows["label"].to_numpy()[subset], logits.to_numpy()[subset], len(classes))
    write_parquet(as_matrix(values, classes["wnid"], logits.columns), path,
                  {"measure": measure, "model": snakemake.params.model, "shots": shots,
                   "inputs": [snakemake.input.logits]}, index=True)
    log.info("%s, %d shots: %d images", measure, shots, int(subset.sum()))

"""Snakemake glue: inference (F-score) or softmax similarity from one shot level's training images."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.similarity import as_matrix, visual_similarity
from headstart.split import in_shot_level, labelled
from headstart.tables import write_parquet

log = setup_logging(snakemake.log[0])
measure, shots = snakemake.wildcards.visual, int(snakemake.wildcards.shots)
logits = pd.read_parquet(snakemake.input.logits)
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
rows = labelled(logits.index.tolist(), manifest, classes)
subset = in_shot_level(rows, shots)
values = visual_similarity(measure, rows["label"].to_numpy()[subset], logits.to_numpy()[subset], len(classes))
write_parquet(
    as_matrix(values, classes["class_id"], logits.columns),
    snakemake.output.matrix,
    {"measure": measure, "model": snakemake.params.model, "shots": shots, "inputs": [snakemake.input.logits]},
    index=True,
)
log.info("%s, %d shots: %d images", measure, shots, int(subset.sum()))

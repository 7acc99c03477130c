"""Snakemake glue: the inference (F-score) and softmax similarities from one shot level's training images."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.similarity import as_matrix, visual_similarity
from headstart.split import in_shot_level, labelled
from headstart.tables import write_parquet
from headstart.vocabulary import VISUAL_MEASURES

log = setup_logging(snakemake.log[0])
shots = int(snakemake.wildcards.shots)
logits = pd.read_parquet(snakemake.input.logits)
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
rows = labelled(logits.index.tolist(), manifest, classes)
subset = in_shot_level(rows, shots)
labels, scores = rows["label"].to_numpy()[subset], logits.to_numpy()[subset]
for measure in VISUAL_MEASURES:
    write_parquet(
        as_matrix(visual_similarity(measure, labels, scores, len(classes)), classes["class_id"], logits.columns),
        snakemake.output[measure],
        {"measure": measure, "model": snakemake.params.model, "shots": shots, "inputs": [snakemake.input.logits]},
        index=True,
    )
log.info("%d shots: %d images", shots, int(subset.sum()))

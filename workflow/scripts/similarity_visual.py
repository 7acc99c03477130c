"""Snakemake glue: the inference (F-score) and softmax similarities from one shot level's training images."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import write_parquet
from headstart.core.vocabulary import VISUAL_MEASURES
from headstart.data.split import in_shot_level, labelled
from headstart.similarity.measures import as_matrix, visual_similarity

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

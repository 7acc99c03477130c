"""Snakemake glue: cosine similarity of the sentence embeddings of target and source class texts."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import write_parquet
from headstart.similarity.sentence import sentence_matrix

log = setup_logging(snakemake.log[0])
classes, sources = pd.read_parquet(snakemake.input.classes), pd.read_parquet(snakemake.input.source_classes)
matrix = sentence_matrix(classes, sources, snakemake.input.encoder)
meta = {"measure": "sentence", "model": snakemake.params.model, "encoder": snakemake.params.encoder}
write_parquet(matrix, snakemake.output[0], meta, index=True)
log.info("sentence (%s): %d x %d", snakemake.params.encoder, *matrix.shape)

"""Snakemake glue: the WordNet similarity matrices (NLTK), one file per measure, WordNet loaded once."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import write_parquet
from headstart.similarity.measures import WORDNET_MEASURES, as_matrix, wordnet_similarity

log = setup_logging(snakemake.log[0])
classes, sources = pd.read_parquet(snakemake.input.classes), pd.read_parquet(snakemake.input.source_classes)
# a mapped class's id is its wnid, and a WordNet measure runs only when every class is mapped (config check)
targets, source_wnids = classes["class_id"].tolist(), sources["wnid"].tolist()
for measure in snakemake.params.measures:
    values = wordnet_similarity(measure, targets, source_wnids)
    write_parquet(
        as_matrix(values, targets, source_wnids),
        getattr(snakemake.output, measure),
        {"measure": measure, "model": snakemake.params.model, "nltk": WORDNET_MEASURES[measure]},
        index=True,
    )
    log.info("%s: %d x %d", measure, len(targets), len(source_wnids))

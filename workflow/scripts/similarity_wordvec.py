"""Snakemake glue: cosine similarity of the mean word vectors of target and source labels."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import write_parquet
from headstart.similarity.measures import as_matrix, load_word_vectors, wordvec_similarity

log = setup_logging(snakemake.log[0])
settings = snakemake.params.wordvec
classes, sources = pd.read_parquet(snakemake.input.classes), pd.read_parquet(snakemake.input.source_classes)
targets, source_wnids = classes["class_id"].tolist(), sources["wnid"].tolist()
vectors = load_word_vectors(settings["vectors"], settings.get("format", "auto"))
values = wordvec_similarity(
    vectors,
    [list(names) for names in classes["lemmas"]],
    [list(names) for names in sources["lemmas"]],
    targets,
    source_wnids,
)
write_parquet(
    as_matrix(values, targets, source_wnids),
    snakemake.output[0],
    {"measure": "wordvec", "model": snakemake.params.model, "vectors": settings["vectors"]},
    index=True,
)
log.info("wordvec (%s): %d x %d", settings["vectors"], len(targets), len(source_wnids))

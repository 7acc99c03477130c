"""Snakemake glue: every target class's top source classes under each measure (the report's view of a matrix)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.statistics import top_sources, write_table

setup_logging(snakemake.log[0])
classes, sources = pd.read_parquet(snakemake.input.classes), pd.read_parquet(snakemake.input.source_classes)
target_names = dict(zip(classes["class_id"], classes["name"], strict=True))
source_names = dict(zip(sources["wnid"], sources["name"], strict=True))
n, output = snakemake.params.n, snakemake.output
for measure in snakemake.params.measures:
    matrix = pd.read_parquet(snakemake.input[f"sim_{measure}"]).loc[classes["class_id"]]
    write_table(
        top_sources(matrix, target_names, source_names, n),
        output[f"csv_{measure}"],
        output[f"md_{measure}"],
        output[f"tex_{measure}"],
        caption=f"The {n} most similar source classes of each target class: {measure} (name, wnid, similarity).",
    )

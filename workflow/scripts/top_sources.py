"""Snakemake glue: every target class's top source classes under one measure (the report's view of a matrix)."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.report import top_sources, write_table

setup_logging(snakemake.log[0])
classes, sources = pd.read_parquet(snakemake.input.classes), pd.read_parquet(snakemake.input.source_classes)
matrix = pd.read_parquet(snakemake.input.sim).loc[classes["class_id"]]
table = top_sources(
    matrix,
    dict(zip(classes["class_id"], classes["name"], strict=True)),
    dict(zip(sources["wnid"], sources["name"], strict=True)),
    snakemake.params.n,
)
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    caption=f"The {snakemake.params.n} most similar source classes of each target class: "
    f"{snakemake.wildcards.measure} (name, wnid, similarity).",
)

"""Snakemake glue: Table 1."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.statistics import example_class, table1, write_table

setup_logging(snakemake.log[0])
class_id, name = example_class(pd.read_parquet(snakemake.input.classes), snakemake.params.example_class)
sources = pd.read_parquet(snakemake.input.source_classes)
matrices = {m: pd.read_parquet(getattr(snakemake.input, f"sim_{m}")) for m in snakemake.params.measures}
table = table1(matrices, class_id, name, dict(zip(sources["wnid"], sources["name"], strict=True)))
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    caption="Table 1. Most similar source class of the example target class under each measure.",
)

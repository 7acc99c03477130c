"""Snakemake glue: Table 1."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.report import table1, write_table

setup_logging(snakemake.log[0])
classes = pd.read_parquet(snakemake.input.classes).set_index("wnid")
sources = pd.read_parquet(snakemake.input.source_classes)
wnid = snakemake.params.example_class
if wnid not in classes.index:
    raise SystemExit(f"report.example_class {wnid} is not a target class ({', '.join(classes.index[:5])}, ...)")
matrices = {m: pd.read_parquet(p) for m, p in zip(snakemake.params.measures, snakemake.input.sims)}
names = dict(zip(sources["wnid"], sources["name"]))
table = table1(matrices, wnid, classes.at[wnid, "name"], names)
write_table(table, snakemake.output.csv, snakemake.output.md, snakemake.output.tex,
            caption="Table 1. Most similar source class of the example target class under each measure.")

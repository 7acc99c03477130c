"""Snakemake glue: Fig. 2."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.report import example_class_name, figure2

setup_logging(snakemake.log[0])
wnid = snakemake.params.example_class
name = example_class_name(pd.read_parquet(snakemake.input.classes), wnid)
figure2(
    pd.read_parquet(snakemake.input.curves),
    wnid,
    name,
    snakemake.params.shots,
    snakemake.output.png,
    snakemake.output.pdf,
)

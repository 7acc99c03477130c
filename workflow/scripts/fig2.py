"""Snakemake glue: Fig. 2."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.figures import figure2
from headstart.report.statistics import example_class

setup_logging(snakemake.log[0])
class_id, name = example_class(pd.read_parquet(snakemake.input.classes), snakemake.params.example_class)
figure2(
    pd.read_parquet(snakemake.input.curves),
    class_id,
    name,
    snakemake.params.shots,
    snakemake.output.png,
    snakemake.output.pdf,
)

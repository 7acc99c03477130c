"""Snakemake glue: Fig. 1."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.figures import figure1

setup_logging(snakemake.log[0])
figure1(pd.read_parquet(snakemake.input.curves), snakemake.params.shots, snakemake.output.png, snakemake.output.pdf)

"""Snakemake glue: Fig. 3."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.figures import figure3

setup_logging(snakemake.log[0])
kgrid = pd.concat([pd.read_parquet(path) for path in snakemake.input.kgrid], ignore_index=True)
figure3(kgrid, snakemake.params.shots, snakemake.output.png, snakemake.output.pdf)

"""Snakemake glue: the margin over random per method and images per class, the winner on validation boxed."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.figures import figure_answer

setup_logging(snakemake.log[0])
figure_answer(pd.read_parquet(snakemake.input.curves), snakemake.output.png, snakemake.output.pdf)

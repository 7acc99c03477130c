"""Snakemake glue: macro F-score vs images per class, at initialisation and fine-tuned (selected)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.figures import figure_answer_curves

setup_logging(snakemake.log[0])
figure_answer_curves(pd.read_parquet(snakemake.input.curves), snakemake.output.png, snakemake.output.pdf)

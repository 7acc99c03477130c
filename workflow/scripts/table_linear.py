"""Snakemake glue: the L2 strength C each linear head chose on validation, per shot level (methods.md)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_metadata
from headstart.report.statistics import linear_strengths, linear_strengths_wide, write_table

setup_logging(snakemake.log[0])
sweeps = [pd.read_parquet(path) for path in snakemake.input.sweeps]
chosen = [read_metadata(path)["chosen_c"] for path in snakemake.input.sweeps]
table = linear_strengths(sweeps, chosen)
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    wide=linear_strengths_wide(table),
    caption="The inverse L2 strength C of the linear probe and of each <measure>_prior head, chosen on the "
    "validation split's macro F at each shot level from the swept grid (heads.c_grid), read from the "
    "heads_linear jobs' sweeps.",
)

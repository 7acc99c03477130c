"""Snakemake glue: claim C6 (accelerated convergence) for every run against the random head."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.statistics import convergence_table, label, write_table

setup_logging(snakemake.log[0])
table = convergence_table(pd.read_parquet(snakemake.input.curves), snakemake.params.tolerance)
readable = table.assign(method=table["method"].map(label)).rename(columns={"shots": "images/class"})
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    wide=readable.set_index("images/class").round(3),
    caption=f"Convergence against the random head (mean macro F over seeds): a curve has converged from its "
    f"first evaluation within {snakemake.params.tolerance} of its best; 'accelerated' = random never ahead "
    "before both have converged.",
)

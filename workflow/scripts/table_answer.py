"""Snakemake glue: which initialisation at n images per class (the answer table)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.statistics import answer_table, answer_wide, write_table

setup_logging(snakemake.log[0])
table = answer_table(pd.read_parquet(snakemake.input.curves))
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    wide=answer_wide(table),
    caption="Which initialisation at n images per class: the best mean validation macro F-score, each run at "
    "its evaluation picked on validation ('tie': the 95% Student-t CI of the paired validation margin over the "
    "runner-up includes 0); the test macro F-score there, the test margins over the runner-up and over random "
    "(mean ± 95% Student-t CI of the per-seed differences), and the method best on test, never used to choose.",
)

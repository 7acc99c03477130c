"""Snakemake glue: which initialisation at n images per class (the answer table)."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.report import answer_table, answer_wide, write_table

setup_logging(snakemake.log[0])
table = answer_table(pd.read_parquet(snakemake.input.curves))
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    wide=answer_wide(table),
    caption="Which initialisation at n images per class: the best mean test macro F-score at the evaluation "
    'picked on validation ("selected"), its margin over the runner-up and over random (mean ± 95% CI of the '
    "per-seed differences).",
)

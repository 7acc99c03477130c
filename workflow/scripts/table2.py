"""Snakemake glue: Table 2."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.report.statistics import method_order, read_best_k, table2, table2_wide, write_table

setup_logging(snakemake.log[0])
table = table2(pd.read_parquet(snakemake.input.curves), read_best_k(snakemake.input.best_k))
order = method_order(table["method"].unique(), snakemake.params.measures)
write_table(
    table,
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    wide=table2_wide(table, order),
    caption="Table 2. Macro F-score on the test split right after initialisation (first), the test curve's "
    "maximum during fine-tuning (best, the paper's: chosen on test) and at the evaluation best on validation "
    "(selected), mean ± 95% CI over seeds; similarity methods use the best K per class type (picked on validation).",
)

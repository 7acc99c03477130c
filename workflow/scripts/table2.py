"""Snakemake glue: Table 2."""

import json

import pandas as pd

from headstart.config import BASELINES
from headstart.logs import setup_logging
from headstart.report import table2, table2_wide, write_table

setup_logging(snakemake.log[0])
best_k = {}
for path in snakemake.input.best_k:
    with open(path) as handle:
        content = json.load(handle)
    best_k.setdefault(content["measure"], {})[str(content["shots"])] = content["best_k"]
curves = pd.read_parquet(snakemake.input.curves)
table = table2(curves, best_k)
order = ["random"] + [m for m in snakemake.params.measures if m in set(table["method"])] + [b for b in BASELINES[1:]]
write_table(table, snakemake.output.csv, snakemake.output.md, snakemake.output.tex, wide=table2_wide(table, order),
            caption="Table 2. Macro F-score right after initialisation (first) and best during fine-tuning, "
                    "mean ± 95% CI over seeds; similarity methods use the best K per class type (picked on validation).")

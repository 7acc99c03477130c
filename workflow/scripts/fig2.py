"""Snakemake glue: Fig. 2."""

import pandas as pd

from headstart.logs import setup_logging
from headstart.report import figure2

setup_logging(snakemake.log[0])
classes = pd.read_parquet(snakemake.input.classes).set_index("wnid")
wnid = snakemake.params.example_class
if wnid not in classes.index:
    raise SystemExit(f"report.example_class {wnid} is not a target class ({', '.join(classes.index[:5])}, ...)")
figure2(pd.read_parquet(snakemake.input.curves), wnid, classes.at[wnid, "name"], snakemake.params.shots,
        snakemake.output.png, snakemake.output.pdf)

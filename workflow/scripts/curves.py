"""Snakemake glue: every run's curve in one table (method, k, shots, seed + the curve columns)."""

from headstart.core.logs import setup_logging
from headstart.core.tables import write_parquet
from headstart.report.statistics import collect_curves

log = setup_logging(snakemake.log[0])
curves = collect_curves(list(snakemake.input))
write_parquet(curves, snakemake.output[0], {"runs": len(snakemake.input)})
log.info("%d runs, %d rows", len(snakemake.input), len(curves))

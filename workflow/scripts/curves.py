"""Snakemake glue: every run's curve in one table (method, k, shots, seed + the curve columns)."""

from headstart.logs import setup_logging
from headstart.report import collect_curves
from headstart.tables import write_parquet

log = setup_logging(snakemake.log[0])
curves = collect_curves(list(snakemake.input))
write_parquet(curves, snakemake.output[0], {"runs": len(snakemake.input)})
log.info("%d runs, %d rows", len(snakemake.input), len(curves))

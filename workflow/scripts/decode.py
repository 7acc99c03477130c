"""Snakemake glue: decode one split's images once into a uint8 pixel cache."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.data.pixels import decode_split

log = setup_logging(snakemake.log[0], keep_attempts=True)  # a retried job
preprocess = snakemake.params.preprocess
count = decode_split(
    pd.read_parquet(snakemake.input.manifest),
    snakemake.wildcards.split,
    snakemake.params.largest_shot,
    preprocess["resize"],
    preprocess["crop"],
    snakemake.output.pixels,
    num_workers=snakemake.threads if snakemake.threads > 1 else 0,
)
log.info("%s: %d images decoded", snakemake.wildcards.split, count)

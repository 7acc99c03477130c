"""Snakemake glue: export's candidate at 0 images per class (an untrained head that needs no image)."""

from pathlib import Path

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.export.build import write_untrained_candidate

log = setup_logging(snakemake.log[0])
chosen = write_untrained_candidate(
    pd.read_parquet(snakemake.input.curves),
    [Path(path) for path in snakemake.input.heads],
    snakemake.params.entry,
    Path(snakemake.input.weights),
    snakemake.params.train,
    int(snakemake.wildcards.seed),
    Path(snakemake.output.candidate),
)
log.info("seed %s: %s, untrained (the best on validation at iteration 0)", snakemake.wildcards.seed, chosen)

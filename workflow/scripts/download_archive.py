"""Snakemake glue: one ImageNet-21k synset archive from the config's url_template (a localrule)."""

from pathlib import Path

from headstart.core.logs import setup_logging
from headstart.data.sources import download_archive

setup_logging(snakemake.log[0])
download_archive(snakemake.params.source, snakemake.wildcards.wnid, Path(snakemake.output.archive))

"""Snakemake glue: one ImageNet-21k synset archive from the config's url_template (a localrule)."""

from pathlib import Path

from headstart.data import download_archive
from headstart.logs import setup_logging

setup_logging(snakemake.log[0])
download_archive(snakemake.params.source, snakemake.wildcards.wnid, Path(snakemake.output.archive))

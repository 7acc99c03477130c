"""Snakemake glue: the Fashion-MNIST idx files, downloaded and MD5-checked (a localrule)."""

from pathlib import Path

from headstart.core.logs import setup_logging
from headstart.data.sources import download_fashion_mnist

setup_logging(snakemake.log[0])
download_fashion_mnist(snakemake.params.mirror, Path(snakemake.output[0]).parent)

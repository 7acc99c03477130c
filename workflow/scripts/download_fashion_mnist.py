"""Snakemake glue: the Fashion-MNIST idx files, downloaded and MD5-checked (a localrule)."""

from pathlib import Path

from headstart.data import download_fashion_mnist
from headstart.logs import setup_logging

setup_logging(snakemake.log[0])
download_fashion_mnist(snakemake.params.mirror, Path(snakemake.output[0]).parent)

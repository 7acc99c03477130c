"""Snakemake glue: the dataset stage from Fashion-MNIST's idx files (images of every target class, checked)."""

from headstart.core.logs import setup_logging
from headstart.data.sources import StageFiles, fashion_mnist_stage

setup_logging(snakemake.log[0])
files = StageFiles.beside(snakemake.output.inventory, snakemake.output.report)
fashion_mnist_stage(snakemake.params.dataset, snakemake.params.split, snakemake.params.seed, files)

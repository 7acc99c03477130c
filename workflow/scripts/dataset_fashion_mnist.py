"""Snakemake glue: the dataset stage from Fashion-MNIST's idx files (images of every target class, checked)."""

from headstart.data import StageFiles, fashion_mnist_stage
from headstart.logs import setup_logging

setup_logging(snakemake.log[0])
files = StageFiles.beside(snakemake.output.inventory, snakemake.output.report)
fashion_mnist_stage(snakemake.params.dataset, snakemake.params.split, snakemake.params.seed, files)

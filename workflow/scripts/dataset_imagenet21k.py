"""Snakemake glue: the dataset stage from ImageNet-21k archives (images of every target class, checked)."""

from headstart.data import StageFiles, imagenet21k_stage
from headstart.logs import setup_logging

setup_logging(snakemake.log[0])
files = StageFiles.beside(snakemake.output.inventory, snakemake.output.report)
imagenet21k_stage(snakemake.params.dataset, snakemake.params.split, snakemake.params.seed, files)

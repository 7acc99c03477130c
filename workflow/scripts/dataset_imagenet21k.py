"""Snakemake glue: the dataset stage from ImageNet-21k archives (images of every target class, checked)."""

from headstart.core.logs import setup_logging
from headstart.data.sources import StageFiles, imagenet21k_stage

setup_logging(snakemake.log[0])
files = StageFiles.beside(snakemake.output.inventory, snakemake.output.report)
imagenet21k_stage(snakemake.params.dataset, snakemake.params.split, snakemake.params.seed, files)

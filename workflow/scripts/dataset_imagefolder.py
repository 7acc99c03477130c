"""Snakemake glue: the dataset stage from an ImageFolder (images of every target class, checked)."""

from headstart.data import StageFiles, imagefolder_stage
from headstart.logs import setup_logging

setup_logging(snakemake.log[0])
files = StageFiles.beside(snakemake.output.inventory, snakemake.output.report)
imagefolder_stage(snakemake.params.dataset, snakemake.params.split, snakemake.params.seed, files)

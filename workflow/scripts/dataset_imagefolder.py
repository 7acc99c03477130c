"""Snakemake glue: the dataset stage from an ImageFolder (images of every target class, checked)."""

from headstart.core.logs import setup_logging
from headstart.data.sources import StageFiles, imagefolder_stage

setup_logging(snakemake.log[0])
files = StageFiles.beside(snakemake.output.inventory, snakemake.output.report)
imagefolder_stage(snakemake.params.dataset, snakemake.params.split, snakemake.params.seed, files)

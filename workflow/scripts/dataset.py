"""Snakemake glue: the dataset stage (images of every target class, checked)."""

from dataclasses import asdict
from pathlib import Path

from headstart.classes import dataset_classes
from headstart.data import build_inventory
from headstart.logs import setup_logging
from headstart.tables import write_parquet

setup_logging(snakemake.log[0])
dataset = snakemake.params.dataset
inventory = build_inventory(
    dataset,
    snakemake.params.split,
    snakemake.params.seed,
    Path(snakemake.output.inventory).parent / "images",
    Path(snakemake.output.inventory).parent / "downloads",
    Path(snakemake.output.report),
)
# the classes in config order, as the split stage and every table after it know them
classes = [asdict(target) for target in dataset_classes(dataset)]
write_parquet(inventory, snakemake.output.inventory, {"source": dataset["source"], "classes": classes})

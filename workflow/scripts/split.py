"""Snakemake glue: manifest.parquet (ranked splits) and classes.parquet (class types)."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_metadata, write_parquet
from headstart.data.classes import TargetClass
from headstart.data.split import imagenet1k_wnids, make_classes, make_manifest

log = setup_logging(snakemake.log[0])
split, seed = snakemake.params.split, snakemake.params.seed
inventory = pd.read_parquet(snakemake.input.inventory)
manifest = make_manifest(inventory, split["train_per_class"], split["val_per_class"], split["test_per_class"], seed)
targets = [TargetClass(**entry) for entry in read_metadata(snakemake.input.inventory)["classes"]]  # config order
classes = make_classes(targets, imagenet1k_wnids())
log.info("manifest: %s", manifest.groupby("split").size().to_dict())
log.info("class types: %s", classes["type"].value_counts().to_dict())
write_parquet(manifest, snakemake.output.manifest, {"seed": seed, **split})
write_parquet(classes, snakemake.output.classes, {"source_classes": "ILSVRC-2012 (timm imagenet_synsets.txt)"})

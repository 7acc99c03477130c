"""Snakemake glue: the dataset stage (images of every target class, checked)."""

from pathlib import Path

from headstart.data import (IngestLog, fashion_mnist_files, ingest_fashion_mnist, ingest_imagefolder,
                            ingest_imagenet21k, resolve_classes)
from headstart.logs import setup_logging
from headstart.tables import write_parquet

log = setup_logging(snakemake.log[0])
dataset, split, seed = snakemake.params.dataset, snakemake.params.split, snakemake.params.seed
out_dir = Path(snakemake.output.inventory).parent / "images"
classes = resolve_classes(dataset["classes"])
needed = {"train": split["train_per_class"], "test": split["test_per_class"]}
checks = IngestLog()
source = dataset["source"]
if source == "fashion_mnist":
    options = dataset.get("fashion_mnist", {})
    files = fashion_mnist_files(options.get("local_dir"), options.get("mirror"), out_dir.parent / "downloads")
    log.info("Fashion-MNIST files: %s", ", ".join(str(p) for p in files.values()))
    inventory = ingest_fashion_mnist(files, classes, needed, out_dir, seed, checks)
elif source == "imagenet21k":
    inventory = ingest_imagenet21k(dataset["imagenet21k"], classes, needed, out_dir, Path("."), checks)
else:
    inventory = ingest_imagefolder(Path(dataset["imagefolder"]["root"]), classes, needed, out_dir, seed, checks)
checks.write(snakemake.output.report)
log.info("%d images of %d classes; %d converted, %d skipped (listed in %s)", len(inventory), len(classes),
         len(checks.converted), len(checks.skipped), snakemake.output.report)
write_parquet(inventory, snakemake.output.inventory, {"source": source, "classes": [c.wnid for c in classes]})

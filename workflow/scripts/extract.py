"""Snakemake glue: source logits (Parquet), penultimate features and trunk activations (safetensors)."""

import pandas as pd
import torch

from headstart.extract import ImageFiles, extract
from headstart.logs import setup_logging
from headstart.models import eval_transform, load_source_model, normalization, pick_device, split_model
from headstart.tables import write_parquet, write_tensors

log = setup_logging(snakemake.log[0])
entry, preprocess, options = snakemake.params.entry, snakemake.params.preprocess, snakemake.params.extract
run_options = snakemake.config["extract"]  # where and how: not params, so changing them reruns nothing
torch.set_num_threads(snakemake.threads)
model = load_source_model(entry)
mean, std = normalization(model, entry)
parts = split_model(model, entry["trainable"], entry["head"])
transform = eval_transform(preprocess["resize"], preprocess["crop"], mean, std)
device = pick_device(run_options["device"])
source_wnids = pd.read_parquet(snakemake.input.source_classes)["wnid"].tolist()
manifest = pd.read_parquet(snakemake.input.manifest)
for split, logits_path, features_path in zip(["train", "val", "test"], snakemake.output.logits, snakemake.output.features):
    rows = manifest[manifest["split"] == split]
    if split == "train":  # only the images some shot level uses
        rows = rows[rows["rank"] < snakemake.params.largest_shot]
    result = extract(parts, ImageFiles(rows["path"].tolist(), transform), options["batch_size"],
                     run_options["num_workers"], device, options["trunk_activations"], desc=f"extract {split}")
    logits = pd.DataFrame(result.logits, index=pd.Index(rows["image_id"].tolist(), name="image_id"), columns=source_wnids)
    write_parquet(logits, logits_path, {"model": snakemake.params.model, "split": split, "preprocess": preprocess})
    tensors = {"features": result.features}
    if result.trunk is not None:
        tensors["trunk"] = result.trunk
    write_tensors(tensors, features_path, {"image_ids": rows["image_id"].tolist(), "model": snakemake.params.model})
    log.info("%s: %d images, features %s", split, len(rows), tuple(result.features.shape))

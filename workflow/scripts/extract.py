"""Snakemake glue: source logits (Parquet), penultimate features and trunk activations (safetensors)
of each split, from its decoded images."""

from pathlib import Path

import pandas as pd
import torch

from headstart.core.devices import pick_device
from headstart.core.logs import setup_logging
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split
from headstart.extract.models import load_parts

log = setup_logging(snakemake.log[0], keep_attempts=True)  # a retried job
entry, preprocess, options = snakemake.params.entry, snakemake.params.preprocess, snakemake.params.extract
torch.set_num_threads(snakemake.threads)
parts, mean, std = load_parts(entry, snakemake.input.weights)
device = pick_device(snakemake.config["extract"]["device"])  # a run option: changing it reruns nothing
source_wnids = pd.read_parquet(snakemake.input.source_classes)["wnid"].tolist()
crops = CentreCrops(preprocess["crop"], mean, std, options["batch_size"], device)
for split in ["train", "val", "test"]:
    result = extract_split(
        parts,
        Path(snakemake.input[f"pixels_{split}"]),
        crops,
        source_wnids,
        SplitOutputs(
            Path(snakemake.output[f"logits_{split}"]),
            Path(snakemake.output[f"features_{split}"]),
            split in options["trunk_activations"],
            {"model": snakemake.params.model, "split": split, "preprocess": preprocess},
        ),
    )
    log.info("%s: %d images, features %s", split, len(result.features), tuple(result.features.shape))

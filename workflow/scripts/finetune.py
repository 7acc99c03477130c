"""Snakemake glue: one lockstep fine-tuning job (every run of one shot level and one seed)."""

from pathlib import Path

import pandas as pd
import torch

from headstart.finetune import finetune_job
from headstart.logs import setup_logging
from headstart.models import pick_device

log = setup_logging(snakemake.log[0], keep_attempts=True)  # a retried job
params, run_options = snakemake.params, snakemake.config["finetune"]  # run options: not params, they rerun nothing
torch.set_num_threads(snakemake.threads)
finetune_job(
    heads=[Path(p) for p in snakemake.input.heads],
    features_train=Path(snakemake.input.features_train),
    features_test=Path(snakemake.input.features_test),
    features_val=Path(snakemake.input.features_val),
    pixels_train=Path(snakemake.input.pixels_train),
    manifest=pd.read_parquet(snakemake.input.manifest),
    classes=pd.read_parquet(snakemake.input.classes),
    shots=int(snakemake.wildcards.shots),
    seed=int(snakemake.wildcards.seed),
    options=params.finetune,
    entry=params.entry,
    weights=Path(snakemake.input.weights),
    preprocess=params.preprocess,
    device=pick_device(run_options["device"]),
    checkpoint_every=run_options["checkpoint_every"],
    curves_out=Path(snakemake.output.curves),
    checkpoint=Path(snakemake.output.curves).with_suffix(".checkpoint.pt"),
    selected_out=Path(snakemake.output.selected) if "selected" in snakemake.output.keys() else None,
    export_method=snakemake.params.export.get("method"),
    export_k=snakemake.params.export.get("k"),
)

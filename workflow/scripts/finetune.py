"""Snakemake glue: one lockstep fine-tuning job (every run of one shot level and one seed)."""

from pathlib import Path

import pandas as pd
import torch

from headstart.core.devices import pick_device
from headstart.core.logs import setup_logging
from headstart.finetune.job import JobFiles, finetune_job, job_key, job_settings

log = setup_logging(snakemake.log[0], keep_attempts=True)  # a retried job
params, run_options = snakemake.params, snakemake.config["finetune"]  # run options: not params, they rerun nothing
torch.set_num_threads(snakemake.threads)
finetune_job(
    JobFiles(
        heads=[Path(p) for p in snakemake.input.heads],
        features_train=Path(snakemake.input.features_train),
        features_test=Path(snakemake.input.features_test),
        features_val=Path(snakemake.input.features_val),
        pixels_train=Path(snakemake.input.pixels_train),
        weights=Path(snakemake.input.weights),
        curves=Path(snakemake.output.curves),
        selected=Path(snakemake.output.selected) if "selected" in snakemake.output.keys() else None,
    ),
    pd.read_parquet(snakemake.input.manifest),
    pd.read_parquet(snakemake.input.classes),
    int(snakemake.wildcards.shots),
    job_settings(
        params.finetune,
        int(snakemake.wildcards.seed),
        run_options["checkpoint_every"],
        params.entry,
        params.preprocess,
        pick_device(run_options["device"]),
        cache_key=job_key(dict(params.items())),
        export=params.get("export"),
    ),
)

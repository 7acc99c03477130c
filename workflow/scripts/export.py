"""Snakemake glue: the exported classifier (the best run on validation at the export's shot level)."""

from pathlib import Path

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.export.build import choose_candidate, export_classifier

log = setup_logging(snakemake.log[0])
params = snakemake.params
candidate = choose_candidate([Path(p) for p in snakemake.input.candidates], params.seed)
card = export_classifier(
    candidate,
    params.entry,
    params.model,
    Path(snakemake.input.weights),
    pd.read_parquet(snakemake.input.classes),
    params.preprocess,
    params.train,
    Path(snakemake.output.model).parent,
)
log.info(
    "exported %s/k%s, %d shots, seed %d, iteration %d: validation macro F %.3f, test macro F %.3f",
    card["method"],
    card["k"],
    card["shots"],
    card["seed"],
    card["iteration"],
    card["scores"]["val_macro_f1"],
    card["scores"]["test_macro_f1"],
)

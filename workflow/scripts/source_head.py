"""Snakemake glue: the source network's head (M x D weights, bias) and its class list."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import write_parquet, write_tensors
from headstart.data.split import imagenet1k_wnids
from headstart.extract.models import load_parts
from headstart.similarity.measures import source_lemmas

log = setup_logging(snakemake.log[0])
entry = snakemake.params.entry
parts, _, _ = load_parts(entry, snakemake.input.weights)
wnids = imagenet1k_wnids()
if parts.head.out_features != len(wnids):
    raise SystemExit(f"{entry['arch']}: head has {parts.head.out_features} outputs, ImageNet-1k has {len(wnids)}")
write_tensors(
    {"weight": parts.head.weight.detach(), "bias": parts.head.bias.detach()},
    snakemake.output.head,
    {"model": snakemake.wildcards.model, "source_wnids": wnids},
)
lemmas = source_lemmas(wnids)
write_parquet(
    pd.DataFrame(
        {"index": range(len(wnids)), "wnid": wnids, "name": [", ".join(names) for names in lemmas], "lemmas": lemmas}
    ),
    snakemake.output.classes,
)
log.info("source head %s: %d x %d", entry["arch"], parts.head.out_features, parts.head.in_features)

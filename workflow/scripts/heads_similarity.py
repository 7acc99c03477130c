"""Snakemake glue: one measure's top-K similarity heads at one shot level (a semantic measure's at every
level: 'all_shots', shots None), the K grid on validation (Fig. 3's data) and the best K per class type."""

import json

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays, write_parquet
from headstart.data.split import labelled
from headstart.heads.headfile import write_head
from headstart.heads.initial import similarity_heads

log = setup_logging(snakemake.log[0])
measure, level, params = snakemake.wildcards.measure, snakemake.wildcards.level, snakemake.params
shots = None if level == "all_shots" else int(level.removeprefix("shots"))
source, _ = read_arrays(snakemake.input.head)
features, meta = read_arrays(snakemake.input.features_val, ["features"])
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
val = labelled(meta["image_ids"], manifest, classes)
similarity = pd.read_parquet(snakemake.input.sim).loc[classes["class_id"]].to_numpy()
scores, best, heads = similarity_heads(
    similarity,
    source["weight"],
    source["bias"],
    params.k_grid,
    params.head_ks,
    features["features"],
    val["label"].to_numpy(),
    classes["type"].tolist(),
    params.seed,
)
log.info("%s, %s: best K per type %s", measure, level, best)
for k_label, head in heads.items():
    write_head(
        getattr(snakemake.output, f"k{k_label}"),
        {"weight": head["weight"], "bias": head["bias"]},
        method=measure,
        k=k_label,
        classes=classes["class_id"].tolist(),
        ks=head["ks"],
        shots=shots,
        random_rows=head["random_rows"],
    )
write_parquet(scores.assign(measure=measure, shots=shots), snakemake.output.kgrid, {"measure": measure, "split": "val"})
with open(snakemake.output.best_k, "w") as handle:
    json.dump({"measure": measure, "shots": shots, "picked_on": "val", "best_k": best}, handle, indent=2)

"""Snakemake glue: top-K similarity heads, the K grid on validation (Fig. 3) and the best K per type."""

import json

import numpy as np
import pandas as pd

from headstart.heads import best_k_per_type, kgrid_scores, similarity_head
from headstart.logs import setup_logging
from headstart.split import labelled
from headstart.tables import read_tensors, write_parquet, write_tensors

log = setup_logging(snakemake.log[0])
measure, params = snakemake.wildcards.measure, snakemake.params
source, _ = read_tensors(snakemake.input.head)
weight, bias = source["weight"].numpy(), source["bias"].numpy()
features, meta = read_tensors(snakemake.input.features_val, ["features"])
manifest, classes = pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.classes)
val = labelled(meta["image_ids"], manifest, classes)
types = classes["type"].to_numpy()
grid_rows, best_by_shots = [], {}
heads = iter(snakemake.output.heads)  # ordered as the rule lists them: K label, then shot level
per_shot = {}
for shots, sim_path in zip(params.shots, snakemake.input.sims):
    similarity = pd.read_parquet(sim_path).loc[classes["wnid"]].to_numpy()
    scores = kgrid_scores(similarity, weight, bias, params.k_grid, features["features"].numpy(), val["label"].to_numpy(),
                          types, params.seed)
    grid_rows.append(scores.assign(measure=measure, shots=shots))
    best = best_k_per_type(scores[scores["type"] != "all"])
    best_by_shots[str(shots)] = best
    per_shot[shots] = (similarity, np.array([best[t] for t in types]))
    log.info("%s, %d shots: best K per type %s", measure, shots, best)
for k_label in params.head_ks:
    for shots in params.shots:
        similarity, best_ks = per_shot[shots]
        k = best_ks if k_label == "best" else int(k_label)
        new_weight, new_bias, fallback = similarity_head(similarity, weight, bias, k, params.seed)
        write_tensors({"weight": new_weight, "bias": new_bias}, next(heads),
                      {"method": measure, "k": k_label, "ks": np.broadcast_to(k, (len(types),)).tolist(),
                       "shots": shots, "random_rows": fallback, "classes": classes["wnid"].tolist()})
write_parquet(pd.concat(grid_rows, ignore_index=True), snakemake.output.kgrid, {"measure": measure, "split": "val"})
with open(snakemake.output.best_k, "w") as handle:
    json.dump({"measure": measure, "picked_on": "val", "best_k": best_by_shots}, handle, indent=2)

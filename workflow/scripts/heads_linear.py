"""Snakemake glue: the linear probe, or a `<measure>_prior` head (the probe with its L2 penalty centred on
the measure's best-K head), at one shot level; the L2 strength is chosen on the validation split."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays, write_parquet
from headstart.data.split import labelled, shot_level_examples
from headstart.heads.headfile import read_head, write_head
from headstart.heads.initial import CGrid, linear_sweep

log = setup_logging(snakemake.log[0])
method, k, shots = snakemake.wildcards.linear, snakemake.wildcards.k, int(snakemake.wildcards.shots)
classes, manifest = pd.read_parquet(snakemake.input.classes), pd.read_parquet(snakemake.input.manifest)
train, train_meta = read_arrays(snakemake.input.features_train, ["features"])
val, val_meta = read_arrays(snakemake.input.features_val, ["features"])
examples, labels = shot_level_examples(train["features"], train_meta["image_ids"], manifest, classes, shots)
prior, prior_meta = read_head(snakemake.input.prior) if "prior" in snakemake.input.keys() else (None, {})
grid = CGrid(**snakemake.params.c_grid)
weight, bias, c, sweep = linear_sweep(
    (examples, labels),
    (val["features"], labelled(val_meta["image_ids"], manifest, classes)["label"].to_numpy()),
    len(classes),
    grid,
    prior=None if prior is None else (prior["weight"], prior["bias"]),
)
log.info("%s, %d shots: C = %.3g chosen on validation (macro F %.3f)", method, shots, c, sweep["val_macro_f1"].max())
for row in sweep.itertuples():
    log.info("  C = %.3g: validation macro F %.3f, accuracy %.3f", row.c, row.val_macro_f1, row.val_accuracy)
write_head(
    snakemake.output.head,
    {"weight": weight, "bias": bias},
    method=method,
    k=k,
    classes=classes["class_id"].tolist(),
    shots=shots,
    c=c,
    c_grid=snakemake.params.c_grid,
    picked_on="val",
    prior_ks=prior_meta.get("ks"),
)
write_parquet(sweep.assign(method=method, shots=shots), snakemake.output.sweep, {"method": method, "chosen_c": c})

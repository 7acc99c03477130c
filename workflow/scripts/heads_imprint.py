"""Snakemake glue: the imprinted head (Qi et al.: a cosine classifier) at one shot level."""

import numpy as np
import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays
from headstart.data.split import shot_level_examples
from headstart.heads.headfile import write_head
from headstart.heads.initial import imprint_head

log = setup_logging(snakemake.log[0])
shots = int(snakemake.wildcards.shots)
features, meta = read_arrays(snakemake.input.features_train, ["features"])
classes = pd.read_parquet(snakemake.input.classes)
examples, labels = shot_level_examples(
    features["features"], meta["image_ids"], pd.read_parquet(snakemake.input.manifest), classes, shots
)
weight, scale = imprint_head(examples, labels, len(classes))
write_head(
    snakemake.output.head,
    {"weight": weight, "bias": np.zeros(len(weight), np.float32), "scale": np.array([scale], np.float32)},
    method="imprint",
    k="0",
    classes=classes["class_id"].tolist(),
    classifier="cosine",
    shots=shots,
)
log.info("imprinted cosine head, %d shots (%d images), initial scale %g", shots, len(labels), scale)

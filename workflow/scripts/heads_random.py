"""Snakemake glue: the random (Xavier) head of one fine-tuning seed."""

import pandas as pd

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays
from headstart.heads.headfile import write_head
from headstart.heads.initial import xavier_head

setup_logging(snakemake.log[0])
seed = int(snakemake.wildcards.seed)
classes = pd.read_parquet(snakemake.input.classes)
source, _ = read_arrays(snakemake.input.head, ["weight"])
weight, bias = xavier_head(len(classes), source["weight"].shape[1], seed)
write_head(
    snakemake.output.head, {"weight": weight, "bias": bias}, "random", "0", classes["class_id"].tolist(), seed=seed
)

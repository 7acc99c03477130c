"""Snakemake glue: each fine-tuning run's initial head at the largest shot level, as it starts
(row norms, logit spread, softmax entropy, row cosines on the test images)."""

from headstart.core.logs import setup_logging
from headstart.core.tables import read_arrays
from headstart.heads.headfile import read_head
from headstart.heads.initial import init_table
from headstart.report.statistics import label, write_table

setup_logging(snakemake.log[0])
features, _ = read_arrays(snakemake.input.features_test, ["features"])
heads = []
for (method, k), path in zip(snakemake.params.runs, snakemake.input.heads, strict=True):
    heads.append((method, k, *read_head(path)))
table = init_table(heads, features["features"])
write_table(
    table.assign(method=table["method"].map(label)),
    snakemake.output.csv,
    snakemake.output.md,
    snakemake.output.tex,
    caption=f"Initial heads at {snakemake.params.shots} images per class (random: seed {snakemake.params.seed}) "
    "on the test images: mean row norm, mean logit range per image, mean softmax entropy (nats), "
    "largest and mean cosine between two rows.",
)

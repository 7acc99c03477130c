# headstart: similarity-based initialisation of classifier heads (Pascal, Bost, Huet).
# Usage: snakemake --cores all            (default config.yaml: offline, CPU, minutes)
#        snakemake --profile slurm all    (the same on a SLURM cluster)
#        snakemake --cores all --configfile workflow/presets/paper.yaml   (the paper's setup)

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),

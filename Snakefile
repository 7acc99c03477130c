# headstart: similarity-based initialisation of classifier heads (Pascal, Bost, Huet).
# Usage: snakemake --cores all            (default config.yaml: offline, CPU, minutes)
#        snakemake --profile slurm all    (the same on a SLURM cluster)
#        snakemake --cores all --configfile workflow/presets/paper.yaml   (the paper's setup)
#        snakemake --cores all --configfile workflow/presets/last_stage.yaml   (the paper's regime, default data)

import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The headstart library (workflow/headstart) is imported from this checkout by the Snakefile and by
# every job's script, whatever Python runs them: the .venv, a conda env of envs/*.yaml (which install
# only the pinned packages), or a cluster node. Snakemake hands each script this process's sys.path
# (after the script's own environment's packages); PYTHONPATH would not do, as Snakemake clears it
# for conda jobs.
sys.path.insert(0, os.path.join(workflow.basedir, "workflow"))
# A headstart installed into the job's environment (`pip install .`) would come before that path in a job:
# PYTHONPATH puts this checkout's library first wherever it is honoured (every job but conda ones, whose
# environments never hold headstart).
# (set, not required: the envvars directive, which --lint asks for of a variable read this way, is for inputs)
os.environ.update(
    PYTHONPATH=os.pathsep.join(
        [os.path.join(workflow.basedir, "workflow"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
)


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/similarity.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        PLAN.all_targets(),

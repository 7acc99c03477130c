"""The workflow's own Python: the config parsed once (config), what runs and where its files go (plan), and
which library code each job runs (provenance). workflow/rules/common.smk wires them to Snakemake."""

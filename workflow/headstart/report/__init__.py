"""The report stage (workflow/rules/report.smk): the paper's tables, statistics and figures, and the docs'
generated blocks."""

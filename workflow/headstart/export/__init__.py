"""The classifier to take home (export rules in workflow/rules/report.smk): its format, how it is written,
and ``headstart predict``."""

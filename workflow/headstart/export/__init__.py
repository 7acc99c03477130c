"""The classifier to take home (workflow/rules/export.smk): its format, how it is written,
and ``headstart predict``."""

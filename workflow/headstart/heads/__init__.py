"""The heads stage (workflow/rules/heads.smk): initial heads for the target classes, and their file."""

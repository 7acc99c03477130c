"""The similarity stage (workflow/rules/similarity.smk): target x source similarity matrices."""

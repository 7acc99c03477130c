"""The extraction stage (workflow/rules/extract.smk): source networks and their logits, features and
activations."""

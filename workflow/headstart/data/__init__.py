"""The dataset stage (workflow/rules/data.smk): target classes and their images, the split, decoded pixels."""

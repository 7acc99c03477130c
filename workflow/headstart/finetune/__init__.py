"""The fine-tuning stage (workflow/rules/finetune.smk): one job's runs trained in lockstep, their
classifiers and optimisers, and the weights kept for export."""

"""headstart: similarity-based initialisation of classifier heads (Pascal, Bost, Huet).

Pure library code: no Snakemake imports here; workflow/scripts/*.py are the glue.
"""

__version__ = "0.1.0"

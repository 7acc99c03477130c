"""headstart: similarity-based initialisation of classifier heads (Pascal, Bost, Huet).

Pure library code: no Snakemake imports here; workflow/scripts/*.py are the glue.
"""

import importlib

__version__ = "0.1.0"


def load_classifier(export_dir):
    """The exported classifier of ``export_dir``: a torch module, normalised images -> one logit per target
    class (see headstart.predict). Imported on first use, so ``import headstart`` stays light; by name, so
    that the jobs, which all run this file, do not count the predict path as code they run
    (headstart.provenance)."""
    return importlib.import_module("headstart.predict").load_classifier(export_dir)

"""headstart: similarity-based initialisation of classifier heads (Pascal, Bost, Huet).

Pure library code: no Snakemake imports here; workflow/scripts/*.py are the glue.
"""

__version__ = "0.1.0"


def load_classifier(export_dir):
    """The exported classifier of ``export_dir``: a torch module, normalised images -> one logit per target
    class (see headstart.export.card). Imported on first use, so that ``import headstart`` stays light."""
    from .export.card import load_classifier as load

    return load(export_dir)


def init_head(model, classes, out_dir, measure="sentence", k=None, weights=None, images=None, size=None):
    """A head for ``classes`` on the timm network ``model`` from the classes' names (and, with ``images``, a few
    images per class), written to ``out_dir`` as an export (see headstart.init.init_head); returns its card."""
    from .init import init_head as init

    return init(model, classes, out_dir, measure, k, weights, images, size)

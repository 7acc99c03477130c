"""The initial-head file (``results/…/heads/<method>/k<K>/….safetensors``): one writer for every head job and
one reader for what reads a head (fine-tuning, the init table, a calibrated or prior head, Co-Tuning's start,
export's untrained candidate).

A head file holds the tensors its classifier needs (:data:`CLASSIFIER_TENSORS`: a linear head's ``weight``
(classes x features) and ``bias``; a cosine head's ``scale`` too; Co-Tuning's source head and relationship
too) and, as metadata, the run it starts (``method``, ``k``), the target classes in row order
(``classes``), the classifier when it is not linear, and how the head was made (``shots``, ``seed``,
``ks``, ``c``, ``temperature``, …, as the job that wrote it says).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import HeadstartError
from ..core.tables import read_arrays, write_tensors

CLASSIFIER_TENSORS = {
    "linear": ("weight", "bias"),
    "cosine": ("weight", "bias", "scale"),
    "cotuning": ("weight", "bias", "source_weight", "source_bias", "relationship"),
}


class HeadFileError(HeadstartError, ValueError):
    """A head file that is not one: the message names the file and what is missing."""


def _checked(path: Path | str, tensors: dict[str, Any], classifier: str, classes: int) -> None:
    """The tensors ``classifier`` needs are there, and the head has one row per class."""
    if classifier not in CLASSIFIER_TENSORS:
        raise HeadFileError(f"{path}: classifier {classifier!r} is none of {', '.join(CLASSIFIER_TENSORS)}")
    missing = [name for name in CLASSIFIER_TENSORS[classifier] if name not in tensors]
    if missing:
        raise HeadFileError(f"{path}: a {classifier} head needs {', '.join(missing)}")
    weight, bias = np.shape(tensors["weight"]), np.shape(tensors["bias"])
    if len(weight) != 2 or bias != (weight[0],) or weight[0] != classes:
        raise HeadFileError(f"{path}: weight {weight} and bias {bias} are not a head of {classes} classes")


def write_head(
    path: Path | str,
    tensors: dict[str, np.ndarray],
    method: str,
    k: str | int,
    classes: Sequence[str],
    classifier: str = "linear",
    **made: Any,
) -> None:
    """Write the initial head of run (``method``, ``k``) for ``classes`` (ids, in row order); ``made``: how it
    was made (JSON values). Only the tensors its classifier needs are written."""
    _checked(path, tensors, classifier, len(classes))
    meta = {"method": method, "k": str(k), **made, "classes": list(classes)}
    if classifier != "linear":  # a head file without the key is linear
        meta["classifier"] = classifier
    write_tensors({name: tensors[name] for name in CLASSIFIER_TENSORS[classifier]}, path, meta)


def read_head(path: Path | str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(tensors, metadata) of a head file written by :func:`write_head`, checked as it checks them."""
    tensors, meta = read_arrays(path)
    missing = [key for key in ("method", "k", "classes") if key not in meta]
    if missing:
        raise HeadFileError(f"{path}: no {', '.join(missing)} in its metadata: not a head file")
    _checked(path, tensors, meta.get("classifier", "linear"), len(meta["classes"]))
    return tensors, meta

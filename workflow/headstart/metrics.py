"""Per-class precision / recall / F-score, macro F-score and accuracy (scikit-learn)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, precision_recall_fscore_support


@dataclass
class Scores:
    precision: np.ndarray  # (N,)
    recall: np.ndarray
    fscore: np.ndarray
    support: np.ndarray
    macro_f1: float
    accuracy: float


def classification_scores(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> Scores:
    """Scores over all ``n_classes`` (a class never predicted has precision 0, not NaN)."""
    precision, recall, fscore, support = precision_recall_fscore_support(
        labels, predictions, labels=np.arange(n_classes), zero_division=0)
    return Scores(precision, recall, fscore, support, float(np.mean(fscore)), float(accuracy_score(labels, predictions)))

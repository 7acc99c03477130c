"""Per-class precision / recall / F-score, macro F-score and accuracy.

Computed from the confusion counts with numpy: fine-tuning jobs evaluate often and scikit-learn's
import alone costs each job most of a second. tests/test_metrics.py checks the numbers against
scikit-learn's precision_recall_fscore_support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scores:
    precision: np.ndarray  # (N,)
    recall: np.ndarray
    fscore: np.ndarray
    support: np.ndarray
    macro_f1: float
    accuracy: float


def classification_scores(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> Scores:
    """Scores over all ``n_classes``; a class never predicted (or absent) scores 0, not NaN."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    true_positive = np.bincount(labels[labels == predictions], minlength=n_classes).astype(float)
    support = np.bincount(labels, minlength=n_classes)
    predicted = np.bincount(predictions, minlength=n_classes)
    precision = np.divide(true_positive, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(true_positive, support, out=np.zeros(n_classes), where=support > 0)
    denominator = precision + recall
    fscore = np.divide(2 * precision * recall, denominator, out=np.zeros(n_classes), where=denominator > 0)
    accuracy = float((labels == predictions).mean()) if len(labels) else 0.0
    return Scores(precision, recall, fscore, support, float(fscore.mean()), accuracy)

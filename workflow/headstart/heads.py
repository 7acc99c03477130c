"""Initial heads for the target classes: the paper's top-K similarity mix and the baselines."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .metrics import classification_scores

log = logging.getLogger(__name__)


def topk_indices(similarity: np.ndarray, k: int | Sequence[int]) -> list[np.ndarray]:
    """Per target row, the indices of its K most similar sources; ties go to the lower index."""
    n, m = similarity.shape
    ks = np.broadcast_to(np.asarray(k), (n,))
    if (ks < 1).any():
        raise ValueError(f"K must be at least 1 (got {int(ks.min())})")
    if (ks > m).any():
        raise ValueError(f"K={int(ks.max())} exceeds the {m} source classes")
    order = np.argsort(-similarity, axis=1, kind="stable")  # stable: equal values keep index order
    return [order[i, : ks[i]] for i in range(n)]


def topk_mix(
    similarity: np.ndarray, weight: np.ndarray, bias: np.ndarray, k: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """W'_i = sum_{j in topK(i)} sim(i,j) / sum_{j in topK(i)} sim(i,j) * W_j, and the bias alike.

    Negative similarities (word-vector cosines) weigh 0: a mix takes no negative share of a row.
    Rows whose top-K similarities sum to 0 are returned as zeros and listed, for the caller to
    fill with the random initialisation.
    """
    similarity = np.asarray(similarity, dtype=np.float64)
    n = similarity.shape[0]
    new_weight = np.zeros((n, weight.shape[1]), dtype=np.float64)
    new_bias = np.zeros(n, dtype=np.float64)
    empty = []
    for i, neighbours in enumerate(topk_indices(similarity, k)):
        coefficients = np.clip(similarity[i, neighbours], 0.0, None)
        total = coefficients.sum()
        if not np.isfinite(total) or total <= 0:
            empty.append(i)
            continue
        coefficients = coefficients / total
        new_weight[i] = coefficients @ np.asarray(weight, dtype=np.float64)[neighbours]
        new_bias[i] = coefficients @ np.asarray(bias, dtype=np.float64)[neighbours]
    return new_weight.astype(np.float32), new_bias.astype(np.float32), empty


def xavier_head(n_classes: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The paper's baseline: Xavier (Glorot) uniform weights, zero bias."""
    import torch  # here: the similarity-head jobs need no torch (1.2 s of their start)

    weight = torch.empty(n_classes, n_features)
    torch.nn.init.xavier_uniform_(weight, generator=torch.Generator().manual_seed(seed))
    return weight.numpy(), np.zeros(n_classes, dtype=np.float32)


def similarity_head(
    similarity: np.ndarray, weight: np.ndarray, bias: np.ndarray, k: int | Sequence[int], seed: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The top-K mix, with rows of zero similarity mass falling back to Xavier rows (logged)."""
    new_weight, new_bias, empty = topk_mix(similarity, weight, bias, k)
    if empty:
        random_weight, _ = xavier_head(len(new_weight), new_weight.shape[1], seed)
        new_weight[empty] = random_weight[empty]
        log.warning("rows %s have zero similarity to their top-K sources: random initialisation", empty)
    return new_weight, new_bias, empty


def imprint_head(
    features: np.ndarray, labels: np.ndarray, n_classes: int, source_weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weight imprinting: class means of L2-normalised features, scaled to the source rows' mean norm."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    means = np.stack([unit[labels == c].mean(axis=0) for c in range(n_classes)])
    means /= np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)
    scale = float(np.linalg.norm(source_weight, axis=1).mean())
    return (means * scale).astype(np.float32), np.zeros(n_classes, dtype=np.float32)


def baseline_head(
    method: str, features: np.ndarray, labels: np.ndarray, n_classes: int, source_weight: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A baseline fitted on one shot level's training features: 'imprint' or 'probe' (the random head,
    drawn per seed, is :func:`xavier_head`)."""
    if method == "imprint":
        return imprint_head(features, labels, n_classes, source_weight)
    if method == "probe":
        return probe_head(features, labels, n_classes, seed)
    raise ValueError(f"unknown feature baseline {method!r} (imprint or probe)")


def probe_head(features: np.ndarray, labels: np.ndarray, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A linear probe: multinomial logistic regression on the frozen features (LP-FT's first step)."""
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(max_iter=2000, random_state=seed)
    probe.fit(features, labels)
    weight = np.zeros((n_classes, features.shape[1]), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    weight[probe.classes_] = probe.coef_
    bias[probe.classes_] = probe.intercept_
    return weight, bias


def fit_temperature(logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (1e-2, 1e2)) -> float:
    """The temperature T minimising the mean cross-entropy of softmax(logits / T) on labelled images
    (Guo et al., 2017). The loss is convex in 1/T, so a bounded scalar search on log T finds it; a T
    at a bound (every image right with a wide margin, or none) is logged."""
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    logits = np.asarray(logits, dtype=np.float64)
    picked = np.arange(len(labels)), np.asarray(labels)

    def loss(log_t: float) -> float:
        return float(-log_softmax(logits / np.exp(log_t), axis=1)[picked].mean())

    low, high = np.log(bounds[0]), np.log(bounds[1])
    result = minimize_scalar(loss, bounds=(low, high), method="bounded", options={"xatol": 1e-9})
    temperature = float(np.exp(result.x))
    if np.isclose(result.x, low, atol=1e-3) or np.isclose(result.x, high, atol=1e-3):
        log.warning("the fitted temperature %.3g is at its bound %s", temperature, bounds)
    return temperature


def calibrated_head(
    weight: np.ndarray, bias: np.ndarray, features: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """A similarity head divided by the temperature fitted on labelled (training) features: the same
    rows up to one scale, so the same predictions, with the confidence the images support."""
    temperature = fit_temperature(features @ weight.T + bias, labels)
    return (weight / temperature).astype(np.float32), (bias / temperature).astype(np.float32), temperature


def head_diagnostics(weight: np.ndarray, bias: np.ndarray, features: np.ndarray) -> dict[str, float]:
    """What a head looks like at iteration 0 on some images: its rows' mean L2 norm, the mean per-image
    spread of its logits (max - min), the mean softmax entropy (nats), the largest cosine between two
    of its rows (1 = two classes start tied) and the mean cosine over all pairs of rows."""
    from scipy.special import softmax

    logits = np.asarray(features, dtype=np.float64) @ np.asarray(weight, dtype=np.float64).T + bias
    probabilities = softmax(logits, axis=1)
    entropy = -(probabilities * np.log(probabilities.clip(1e-300))).sum(axis=1)
    unit = weight / np.linalg.norm(weight, axis=1, keepdims=True).clip(1e-12)
    cosines = (unit @ unit.T)[np.triu_indices(len(weight), k=1)]
    return {
        "row_norm": float(np.linalg.norm(weight, axis=1).mean()),
        "logit_range": float((logits.max(axis=1) - logits.min(axis=1)).mean()),
        "entropy": float(entropy.mean()),
        "max_row_cosine": float(cosines.max()),
        "mean_row_cosine": float(cosines.mean()),
    }


def head_predictions(weight: np.ndarray, bias: np.ndarray, features: np.ndarray) -> np.ndarray:
    return np.argmax(features @ weight.T + bias, axis=1)


def kgrid_scores(
    similarity: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    k_grid: Sequence[int],
    features: np.ndarray,
    labels: np.ndarray,
    class_types: Sequence[str],
    seed: int,
) -> pd.DataFrame:
    """F-score right after initialisation for each K: per class type and 'all' (macro)."""
    types = np.asarray(class_types)
    rows = []
    for k in k_grid:
        if k > similarity.shape[1]:
            continue
        new_weight, new_bias, _ = similarity_head(similarity, weight, bias, k, seed)
        scores = classification_scores(labels, head_predictions(new_weight, new_bias, features), len(types))
        rows.append({"k": k, "type": "all", "fscore": scores.macro_f1, "n_classes": len(types)})
        for kind in sorted(set(types)):
            rows.append(
                {
                    "k": k,
                    "type": kind,
                    "fscore": float(scores.fscore[types == kind].mean()),
                    "n_classes": int((types == kind).sum()),
                }
            )
    return pd.DataFrame(rows)


def best_k_per_type(scores: pd.DataFrame) -> dict[str, int]:
    """The K of highest F-score per class type (the smallest K on ties)."""
    best = {}
    for kind, group in scores.groupby("type"):
        top = group["fscore"].max()
        best[kind] = int(group.loc[group["fscore"] == top, "k"].min())
    return best


def similarity_heads(
    similarity: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray,
    k_grid: Sequence[int],
    head_ks: Sequence[str],
    features: np.ndarray,
    labels: np.ndarray,
    class_types: Sequence[str],
    seed: int,
) -> tuple[pd.DataFrame, dict[str, int], dict[str, dict]]:
    """One measure at one shot level: the K grid's scores on the given (validation) features, the best
    K per class type, and per K label ('best' or a number) the head with its per-class K and the rows
    that fell back to random."""
    scores = kgrid_scores(similarity, weight, bias, k_grid, features, labels, class_types, seed)
    best = best_k_per_type(scores[scores["type"] != "all"])
    heads = {}
    for k_label in head_ks:
        ks = np.array([best[t] for t in class_types]) if k_label == "best" else np.full(len(class_types), int(k_label))
        new_weight, new_bias, fallback = similarity_head(similarity, weight, bias, ks, seed)
        heads[k_label] = {"weight": new_weight, "bias": new_bias, "ks": ks.tolist(), "random_rows": fallback}
    return scores, best, heads

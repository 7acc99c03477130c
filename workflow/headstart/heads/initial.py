"""Initial heads for the target classes: the paper's top-K similarity mix and the baselines."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.metrics import classification_scores

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


# Qi et al.'s initial scale of the cosine classifier (their PyTorch reference: nn.Parameter([10]))
IMPRINT_SCALE = 10.0


def imprint_head(features: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, float]:
    """Weight imprinting (Qi et al., CVPR 2018): each row is the normalised mean of the class's
    L2-normalised features, for a cosine classifier (no bias) with the learned scale's initial value."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
    means = np.stack([unit[labels == c].mean(axis=0) for c in range(n_classes)])
    means /= np.linalg.norm(means, axis=1, keepdims=True).clip(1e-12)
    return means.astype(np.float32), IMPRINT_SCALE


@dataclass(frozen=True)
class CGrid:
    """The inverse L2 strengths C swept for a linear fit: ``points`` values from 10**log10_min to
    10**log10_max, evenly spaced in log (LP-FT's log_reg_sk.py: np.logspace(-7, 2, 100))."""

    log10_min: float
    log10_max: float
    points: int

    def values(self) -> np.ndarray:
        return np.logspace(self.log10_min, self.log10_max, self.points)


def fit_logistic(
    features: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    c: float,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 200,
    tol: float = 1e-4,
) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression with an L2 penalty centred on ``prior`` (weight W0, bias b0;
    default zero): argmin_{W,b} C * sum_i CE(W x_i + b, y_i) + ||W - W0||^2 / 2, scikit-learn's scaling,
    the intercept not penalised. With W0 = 0 this is scikit-learn's LogisticRegression(C=c); with the
    similarity head as W0 it is the MAP head under a Gaussian prior centred there. L-BFGS from ``start``
    (warm start; default: the prior) on the objective divided by C * n, stopping where scikit-learn's
    lbfgs solver stops by default (LP-FT's settings: ``max_iter`` 200, gradient ``tol`` 1e-4)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    x = np.asarray(features, dtype=np.float32)  # the two matmuls in float32: half the time, the sums in float64
    n, d = x.shape
    prior_weight, prior_bias = prior if prior is not None else (np.zeros((n_classes, d)), np.zeros(n_classes))
    prior_weight = np.asarray(prior_weight, dtype=np.float64)
    begin = start if start is not None else (prior_weight, prior_bias)
    onehot = np.eye(n_classes)[np.asarray(labels)]
    penalty = 1.0 / (c * n)  # the objective divided by C * n: the same minimiser, a gradient of order 1

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        weight, bias = theta[: n_classes * d].reshape(n_classes, d), theta[n_classes * d :]
        log_p = log_softmax((x @ weight.T.astype(np.float32)).astype(np.float64) + bias, axis=1)
        residual = (np.exp(log_p) - onehot) / n
        delta = weight - prior_weight
        loss = -(log_p * onehot).sum() / n + 0.5 * penalty * (delta**2).sum()
        data_gradient = (residual.T.astype(np.float32) @ x).astype(np.float64)
        gradient = np.concatenate([(data_gradient + penalty * delta).ravel(), residual.sum(axis=0)])
        return float(loss), gradient

    theta = np.concatenate([np.asarray(begin[0], np.float64).ravel(), np.asarray(begin[1], np.float64)])
    result = minimize(objective, theta, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol})
    weight, bias = result.x[: n_classes * d].reshape(n_classes, d), result.x[n_classes * d :]
    return weight, bias


def _standardised(
    x_train: np.ndarray, prior: tuple[np.ndarray, np.ndarray] | None
) -> tuple[Callable[[np.ndarray], np.ndarray], tuple[np.ndarray, np.ndarray] | None, float, float]:
    """LP-FT's standardisation (one scalar mean and standard deviation of the training features, as in
    log_reg_sk.py): the map to standard units, the prior in those units, the mean and the deviation."""
    mean, std = float(np.mean(x_train)), float(np.std(x_train))
    standard = lambda x: (np.asarray(x, np.float64) - mean) / std  # noqa: E731
    if prior is not None:  # W x + b = (std W) x_std + (b + mean W 1): the prior in standardised units
        prior = (std * prior[0].astype(np.float64), prior[1] + mean * prior[0].astype(np.float64).sum(axis=1))
    return standard, prior, mean, std


def _in_raw_units(weight_std: np.ndarray, bias_std: np.ndarray, mean: float, std: float):
    """A head fitted on standardised features, mapped back to the raw features, in float32."""
    weight = weight_std / std
    bias = bias_std - (mean / std) * weight_std.sum(axis=1)
    return weight.astype(np.float32), bias.astype(np.float32)


def linear_sweep(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    grid: CGrid,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, float, pd.DataFrame]:
    """LP-FT's linear probe (AnanyaKumar/transfer_learning, log_reg_sk.py), optionally centred on a prior
    head: the features standardised by the training features' mean and standard deviation (one scalar
    each, as there), one fit per C of ``grid`` from the strongest penalty up, each warm-started from
    the last, and the C with the best validation macro F kept (the strongest on ties). Returns the
    weights mapped back to the raw features, the bias, the chosen C and each C's validation scores."""
    (x_train, y_train), (x_val, y_val) = train, val
    standard, prior, mean, std = _standardised(x_train, prior)
    z_train, z_val = standard(x_train), standard(x_val)
    rows, best, fit = [], None, None
    for c in grid.values():
        fit = fit_logistic(z_train, y_train, n_classes, float(c), prior=prior, start=fit)
        scores = classification_scores(y_val, head_predictions(*fit, z_val), n_classes)
        rows.append({"c": float(c), "val_macro_f1": scores.macro_f1, "val_accuracy": scores.accuracy})
        if best is None or scores.macro_f1 > best[2]:
            best = (fit[0], fit[1], scores.macro_f1, float(c))
    weight_std, bias_std, _, chosen = best
    weight, bias = _in_raw_units(weight_std, bias_std, mean, std)
    return weight, bias, chosen, pd.DataFrame(rows)


def linear_fit_at(
    train: tuple[np.ndarray, np.ndarray],
    n_classes: int,
    grid: CGrid,
    c: float,
    prior: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`linear_sweep`'s fit at ``c`` (a value of ``grid``) without a validation split: the same
    warm-started path through the grid's values up to ``c``, so that it is the sweep's head when the sweep
    picks ``c``."""
    x_train, y_train = train
    path = [float(value) for value in grid.values() if value <= c * (1 + 1e-9)]
    if not path or not np.isclose(path[-1], c, rtol=1e-9):
        raise ValueError(f"C = {c} is not a value of the grid {grid}")
    standard, prior, mean, std = _standardised(x_train, prior)
    z_train, fit = standard(x_train), None
    for value in path:
        fit = fit_logistic(z_train, y_train, n_classes, value, prior=prior, start=fit)
    return _in_raw_units(*fit, mean, std)


def cotuning_head(
    target: tuple[np.ndarray, np.ndarray],
    source: tuple[np.ndarray, np.ndarray],
    relationship: np.ndarray,
) -> dict[str, np.ndarray]:
    """The tensors of a Co-Tuning run: the target head (the seed's random head: Co-Tuning starts from a
    new head), the source head it keeps, and the relationship p(source | target), one row per target
    class, each row a distribution."""
    relationship = np.asarray(relationship, dtype=np.float64)
    if relationship.shape != (len(target[0]), len(source[0])) or not np.allclose(
        relationship.sum(axis=1), 1, atol=1e-4
    ):
        raise ValueError(f"the relationship must be {len(target[0])} x {len(source[0])} with rows summing to 1")
    return {
        "weight": np.asarray(target[0], np.float32),
        "bias": np.asarray(target[1], np.float32),
        "source_weight": np.asarray(source[0], np.float32),
        "source_bias": np.asarray(source[1], np.float32),
        "relationship": relationship.astype(np.float32),
    }


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


def head_logits(tensors: dict[str, np.ndarray], meta: dict, features: np.ndarray) -> np.ndarray:
    """The logits an initial head file gives ``features`` at iteration 0, as its classifier computes them
    (headstart.finetune.classifiers.classifier_from_head): linear, cosine (scale times cosines), or Co-Tuning's
    target head."""
    features = np.asarray(features, dtype=np.float64)
    weight = np.asarray(tensors["weight"], dtype=np.float64)
    if meta.get("classifier") == "cosine":
        unit = features / np.linalg.norm(features, axis=1, keepdims=True).clip(1e-12)
        rows = weight / np.linalg.norm(weight, axis=1, keepdims=True).clip(1e-12)
        return float(tensors["scale"][0]) * unit @ rows.T
    return features @ weight.T + np.asarray(tensors["bias"], dtype=np.float64)


def head_diagnostics(weight: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """What a head looks like at iteration 0 on some images (``logits``: its logits there): its rows'
    mean L2 norm, the mean per-image spread of its logits (max - min), the mean softmax entropy (nats),
    the largest cosine between two of its rows (1 = two classes start tied) and the mean cosine over all
    pairs of rows."""
    from scipy.special import softmax

    logits = np.asarray(logits, dtype=np.float64)
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


def init_table(heads: Sequence[tuple[str, str, dict, dict]], features: np.ndarray) -> pd.DataFrame:
    """Each initial head's iteration-0 statistics (headstart.heads.initial.head_diagnostics) on the given
    images, one row per (method, K, the head file's tensors and metadata): what the heads carry over."""
    rows = [
        {"method": method, "k": k, **head_diagnostics(tensors["weight"], head_logits(tensors, meta, features))}
        for method, k, tensors, meta in heads
    ]
    return pd.DataFrame(rows)

"""The classifiers a fine-tuning run trains: trainable part -> dropout -> new head, with the head and
loss of each method (linear, Qi et al.'s cosine head, Co-Tuning's two heads), built from an initial head
file. Training (headstart.finetune.lockstep) runs them; an export (headstart.export.build,
headstart.export.predict) rebuilds them."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class StepMasks:
    """The dropout masks of one training step: a function of (seed, iteration), the features' shape and
    p only, drawn from a generator of their own the first time a step asks for that shape, then shared by
    every run of the lockstep job (a run trained alone draws the same masks). Drawing one mask per step
    instead of one per run, and seeding no global generator, made a head-only job of 20 runs 1.6x faster."""

    def __init__(self):
        self.seed: int | None = None
        self.masks: dict[tuple, torch.Tensor] = {}

    def start(self, seed: int) -> None:
        self.seed, self.masks = seed, {}

    def mask(self, features: torch.Tensor, p: float) -> torch.Tensor:
        key = (tuple(features.shape), features.dtype, p)
        if key not in self.masks:
            generator = torch.Generator(device=features.device).manual_seed(self.seed)
            keep = torch.empty(features.shape, dtype=features.dtype, device=features.device)
            self.masks[key] = keep.bernoulli_(1 - p, generator=generator).div_(1 - p)
        return self.masks[key]


class StepDropout(nn.Module):
    """Inverted dropout with the masks of :class:`StepMasks` (set by the training loop); plain dropout
    outside it."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.masks: StepMasks | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return features
        if self.masks is None:
            return nn.functional.dropout(features, self.p)
        return features * self.masks.mask(features, self.p)


class Classifier(nn.Module):
    """trainable part -> dropout -> new head; the frozen trunk runs before it, once for all runs.

    The head is linear (``weight``, ``bias``); :class:`CosineClassifier` and :class:`CoTuningClassifier`
    change the head and the loss, not the training loop."""

    def __init__(self, trainable: nn.Module, weight: np.ndarray, bias: np.ndarray, dropout: float):
        super().__init__()
        self.trainable = trainable
        self.dropout = StepDropout(dropout)
        self.head = self._make_head(weight, bias)

    def _make_head(self, weight: np.ndarray, bias: np.ndarray) -> nn.Module:
        head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            head.weight.copy_(torch.as_tensor(weight))
            head.bias.copy_(torch.as_tensor(bias))
        return head

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.trainable(hidden)))

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch (the cross-entropy of the target head)."""
        return cross_entropy(self(hidden), targets)

    def after_step(self) -> None:
        """What follows each optimizer step (a cosine head re-normalises its rows)."""

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Evaluation logits in fp32, whatever autocast is active: they feed arg-max and F-scores,
        and bf16 would round logits near 10 in steps of 0.06 (ties go to the lowest index)."""
        return self.head_logits(self.features(hidden))

    def features(self, hidden: torch.Tensor) -> torch.Tensor:
        """The trainable part's output for evaluation, in fp32 (see :meth:`logits`)."""
        with torch.autocast(hidden.device.type, enabled=False):
            return self.trainable(hidden.float()).float()

    def head_logits(self, features: torch.Tensor) -> torch.Tensor:
        """The head's evaluation logits of :meth:`features`' output, in fp32 (see :meth:`logits`)."""
        with torch.autocast(features.device.type, enabled=False):
            return self.head(features)


class CosineHead(nn.Module):
    """Qi et al. (CVPR 2018), as their PyTorch reference: logits = s * <x / |x|, w_c> with unit rows
    w_c (re-normalised after every step), no bias, and a learned scale s."""

    def __init__(self, weight: np.ndarray, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32).clone())
        self.scale = nn.Parameter(torch.tensor([float(scale)]))
        self.renormalize()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * nn.functional.normalize(features, dim=1) @ self.weight.t()

    @torch.no_grad()
    def renormalize(self) -> None:
        self.weight.div_(self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12))


class CosineClassifier(Classifier):
    """A :class:`Classifier` whose head is a :class:`CosineHead` (weight imprinting's classifier)."""

    def __init__(self, trainable: nn.Module, weight: np.ndarray, scale: float, dropout: float):
        self._scale = scale
        super().__init__(trainable, weight, np.zeros(len(weight), np.float32), dropout)

    def _make_head(self, weight: np.ndarray, bias: np.ndarray) -> nn.Module:
        return CosineHead(weight, self._scale)

    def after_step(self) -> None:
        self.head.renormalize()


class CoTuningClassifier(Classifier):
    """Co-Tuning (You et al., NeurIPS 2020), as thuml's Transfer-Learning-Library trains it: the source
    head is kept on the same features and trained too; the loss adds, times ``trade_off``, the
    cross-entropy between the source head's softmax on each image and the relationship row
    p(source | target) of the image's target label. Evaluation uses the target head only.

    Dropout (this project's protocol for every method) sits before the target head only: the library's
    source head sees the features as they are."""

    def __init__(
        self,
        trainable: nn.Module,
        weight: np.ndarray,
        bias: np.ndarray,
        dropout: float,
        source_weight: np.ndarray,
        source_bias: np.ndarray,
        relationship: np.ndarray,
        trade_off: float,
    ):
        super().__init__(trainable, weight, bias, dropout)
        self.source_head = self._make_head(source_weight, source_bias)
        self.register_buffer("relationship", torch.as_tensor(relationship, dtype=torch.float32).clone())
        self.trade_off = float(trade_off)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        features = self.trainable(hidden)
        target_loss = cross_entropy(self.head(self.dropout(features)), targets)
        return target_loss + self.trade_off * cotuning_loss(self.source_head(features), self.relationship[targets])


def cotuning_loss(source_logits: torch.Tensor, relationship_rows: torch.Tensor) -> torch.Tensor:
    """TLlib's CoTuningLoss: mean over the batch of -sum_j p(j | y_t) log softmax(source logits)_j."""
    return -(relationship_rows * source_logits.float().log_softmax(dim=1)).sum(dim=1).mean()


def classifier_from_head(
    trainable: nn.Module, tensors: dict[str, np.ndarray], meta: dict, dropout: float
) -> Classifier:
    """The classifier an initial head file asks for (its metadata's ``classifier``): 'linear' (default),
    'cosine' (``weight`` rows and a ``scale``) or 'cotuning' (the target head, the source head and the
    relationship, with the ``trade_off`` weight)."""
    kind = meta.get("classifier", "linear")
    if kind == "linear":
        return Classifier(trainable, tensors["weight"], tensors["bias"], dropout)
    if kind == "cosine":
        return CosineClassifier(trainable, tensors["weight"], float(tensors["scale"][0]), dropout)
    if kind == "cotuning":
        return CoTuningClassifier(
            trainable,
            tensors["weight"],
            tensors["bias"],
            dropout,
            tensors["source_weight"],
            tensors["source_bias"],
            tensors["relationship"],
            meta["trade_off"],
        )
    raise ValueError(f"unknown classifier {kind!r} in a head file (linear, cosine or cotuning)")


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy by gather: NLLLoss has no deterministic CUDA implementation, gather's
    backward has one."""
    return -logits.float().log_softmax(dim=1).gather(1, targets[:, None]).mean()


def classifier_kind(model: Classifier) -> str:
    """The ``classifier`` name of a head file or an export card for ``model``: 'cosine' or 'linear' (a
    Co-Tuning classifier evaluates with its linear target head alone)."""
    return "cosine" if isinstance(model, CosineClassifier) else "linear"

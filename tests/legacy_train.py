"""Fine-tuning as it was before the decode-once / cached-evaluation / lockstep rewrite (commit 083080b),
kept verbatim as the reference that tests and tests/bench/bench_paper.py compare the new path against:
PIL decoding of every batch, evaluation through the whole network, one run per process, whole-model
checkpoints. Not used by the workflow.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from headstart.core.devices import autocast_for, to_device
from headstart.core.metrics import classification_scores

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    iterations: int
    eval_every: int
    checkpoint_every: int  # in evaluations
    batch_size: int
    dropout: float
    lr: float
    betas: tuple[float, float]
    eps: float
    seed: int


class Classifier(nn.Module):
    """frozen prefix -> trainable part -> dropout -> new head."""

    def __init__(self, frozen: nn.Module, trainable: nn.Module, weight: np.ndarray, bias: np.ndarray, dropout: float):
        super().__init__()
        self.frozen = frozen.eval()
        for parameter in self.frozen.parameters():
            parameter.requires_grad_(False)
        self.trainable = trainable
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(weight))
            self.head.bias.copy_(torch.as_tensor(bias))

    def train(self, mode: bool = True) -> "Classifier":
        super().train(mode)
        self.frozen.eval()  # frozen BatchNorm keeps its running statistics
        return self

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            hidden = self.frozen(inputs)
        return self.head(self.dropout(self.trainable(hidden)))


# ---------------------------------------------------------------------------------------------
# Batches


def iteration_seed(seed: int, iteration: int) -> int:
    return (seed * 1_000_003 + iteration) % (2**63 - 1)


def batch_indices(n: int, batch_size: int, seed: int, iteration: int) -> np.ndarray:
    """The examples of iteration ``iteration`` (0-based): epochs of seeded permutations."""
    batch_size = min(batch_size, n)
    per_epoch = math.ceil(n / batch_size)
    epoch, position = divmod(iteration, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[position * batch_size: (position + 1) * batch_size]


class TensorInputs:
    """Cached inputs (features or trunk activations) indexed directly."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    def batches(self, keys: Iterator[list[tuple[int, int]]]) -> Iterator[torch.Tensor]:
        for batch in keys:
            yield self.tensor[[index for index, _ in batch]].float()

    def all(self, batch_size: int) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.tensor), batch_size):
            yield self.tensor[start:start + batch_size].float()


class _SeededImages(Dataset):
    """Image by (index, crop seed): resize, then a crop whose offset is drawn from the seed."""

    def __init__(self, paths: Sequence[str], resize: int, crop: int, mean, std, augment: bool):
        from torchvision import transforms  # imported here: head-only jobs never need it

        self.paths, self.crop, self.augment = list(paths), crop, augment
        self.resize = transforms.Resize(resize)
        self.finish = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        index, crop_seed = key
        with Image.open(self.paths[index]) as image:
            image = self.resize(image.convert("RGB"))
        width, height = image.size
        if self.augment:
            rng = random.Random(crop_seed)
            left, top = rng.randint(0, width - self.crop), rng.randint(0, height - self.crop)
        else:
            left, top = int(round((width - self.crop) / 2.0)), int(round((height - self.crop) / 2.0))
        return self.finish(image.crop((left, top, left + self.crop, top + self.crop)))


class ImageInputs:
    """Images decoded in DataLoader workers; crops seeded per (iteration, example)."""

    def __init__(self, paths: Sequence[str], resize: int, crop: int, mean, std, augment: bool, num_workers: int = 0,
                 pin_memory: bool = False):
        self.dataset = _SeededImages(paths, resize, crop, mean, std, augment)
        self.num_workers, self.pin_memory = num_workers, pin_memory

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, keys: Iterator[list[tuple[int, int]]]) -> Iterator[torch.Tensor]:
        loader = DataLoader(self.dataset, batch_sampler=list(keys), num_workers=self.num_workers,
                            pin_memory=self.pin_memory)
        yield from loader

    def all(self, batch_size: int) -> Iterator[torch.Tensor]:
        keys = [[(i, 0) for i in range(s, min(s + batch_size, len(self)))] for s in range(0, len(self), batch_size)]
        yield from self.batches(iter(keys))


# ---------------------------------------------------------------------------------------------
# Evaluation and the training loop


def evaluate(model: Classifier, inputs, labels: np.ndarray, n_classes: int, device: torch.device,
             batch_size: int = 256):
    model.eval()
    predictions = []
    with torch.inference_mode(), autocast_for(device):
        for batch in inputs.all(batch_size):
            predictions.append(model(to_device(batch, device)).argmax(dim=1).cpu())
    return classification_scores(labels, torch.cat(predictions).numpy(), n_classes)


def curve_rows(iteration: int, scores, wnids: Sequence[str], train_loss: float) -> list[dict]:
    return [{"iteration": iteration, "wnid": wnid, "precision": float(scores.precision[c]),
             "recall": float(scores.recall[c]), "fscore": float(scores.fscore[c]), "support": int(scores.support[c]),
             "macro_f1": scores.macro_f1, "accuracy": scores.accuracy, "train_loss": train_loss}
            for c, wnid in enumerate(wnids)]


def _save_checkpoint(path: Path, state: dict) -> None:
    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    os.replace(partial, path)


def finetune(model: Classifier, train_inputs, train_labels: np.ndarray, test_inputs, test_labels: np.ndarray,
             wnids: Sequence[str], settings: TrainSettings, device: torch.device,
             checkpoint: Path | None = None, signature: dict | None = None,
             stop_at: int | None = None, progress: str = "finetune") -> pd.DataFrame:
    """Train; evaluate on the test split at iteration 0 and every ``eval_every`` iterations.

    With ``checkpoint``, the state is saved every ``checkpoint_every`` evaluations and a run
    finding a checkpoint of the same ``signature`` resumes from it. ``stop_at`` ends the run early
    (after that iteration's checkpoint), as a kill would; tests use it.
    """
    model = model.to(device).to(memory_format=torch.channels_last)  # as extraction; no-op for linear layers
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=settings.lr, betas=settings.betas, eps=settings.eps)
    # checkpoint spacing does not change the result: a run resumed under another spacing is the same run
    signature = {**(signature or {}), **{k: v for k, v in asdict(settings).items() if k != "checkpoint_every"}}
    labels_tensor = torch.as_tensor(train_labels, dtype=torch.long)
    n_classes = len(wnids)
    rows: list[dict] = []
    start, loss_sum, loss_count = 0, 0.0, 0
    if checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        if state.get("signature") == signature:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            rows, start = state["rows"], state["iteration"]
            log.info("resuming %s from iteration %d", checkpoint, start)
        else:
            log.warning("ignoring checkpoint %s: it belongs to other settings", checkpoint)
    if start == 0:
        rows = curve_rows(0, evaluate(model, test_inputs, test_labels, n_classes, device), wnids, float("nan"))
    evaluations = len({row["iteration"] for row in rows})

    # (example, crop seed) pairs of every remaining iteration: the batches depend on (seed, t) only
    schedule = [[(int(i), iteration_seed(settings.seed, t) + int(i))
                 for i in batch_indices(len(train_inputs), settings.batch_size, settings.seed, t)]
                for t in range(start, settings.iterations)]
    bar = tqdm(total=settings.iterations, initial=start, desc=progress, unit="it", leave=False)
    for t, keys, batch in zip(range(start, settings.iterations), schedule, train_inputs.batches(iter(schedule))):
        iteration = t + 1
        model.train()
        torch.manual_seed(iteration_seed(settings.seed, t))  # dropout masks depend on (seed, t) only
        targets = labels_tensor[[index for index, _ in keys]].to(device)
        with autocast_for(device):
            loss = nn.functional.cross_entropy(model(to_device(batch, device)).float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
        bar.update(1)
        if iteration % settings.eval_every == 0 or iteration == settings.iterations:
            scores = evaluate(model, test_inputs, test_labels, n_classes, device)
            rows += curve_rows(iteration, scores, wnids, loss_sum / loss_count)
            loss_sum, loss_count = 0.0, 0
            evaluations += 1
            bar.set_postfix(macro_f1=f"{scores.macro_f1:.3f}")
            if checkpoint is not None and evaluations % settings.checkpoint_every == 0:
                _save_checkpoint(checkpoint, {"signature": signature, "iteration": iteration,
                                              "model": copy.deepcopy(model.state_dict()),
                                              "optimizer": optimizer.state_dict(), "rows": rows})
        if stop_at is not None and iteration >= stop_at:
            break
    bar.close()
    return pd.DataFrame(rows)

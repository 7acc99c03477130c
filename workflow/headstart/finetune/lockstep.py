"""Fine-tuning in lockstep: several runs (one per initial head) share each step's batch and one
forward of the frozen trunk; each has its own trainable part, head and optimizer.

Every random choice is a function of (seed, iteration): the batch of iteration t comes from the
permutation of its epoch, crops are seeded per (iteration, example), and the dropout masks of step t
are drawn from a generator seeded with (seed, t) (:class:`StepMasks`). A run trained alongside others
therefore equals the same run trained alone, and a run restored from a checkpoint continues exactly as
an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.devices import autocast_for, to_device
from ..core.metrics import classification_scores
from ..core.vocabulary import RunId
from .classifiers import Classifier, StepMasks
from .optimizers import SGD, Adam
from .selection import SelectedState, select

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SGDSettings:
    """A method's own SGD, as TLlib trains Co-Tuning (co_tuning.py): Nesterov momentum, weight decay on
    every parameter, the new head at ``lr`` and the pretrained parts (the trainable stage, Co-Tuning's
    source head) at ``pretrained_lr_scale`` times it (TLlib's --finetune), every rate times ``lr_gamma`` at
    each milestone, a fraction of the iterations (TLlib: epoch 12 of 20, 0.6)."""

    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    pretrained_lr_scale: float
    lr_milestones: tuple[float, ...]
    lr_gamma: float

    def factor(self, step: int, iterations: int) -> float:
        """The learning rate's multiplier at ``step`` (0-based) of ``iterations``."""
        return self.lr_gamma ** sum(step >= milestone * iterations for milestone in self.lr_milestones)


@dataclass(frozen=True)
class TrainSettings:
    iterations: int
    eval_every: int
    checkpoint_every: int  # in evaluations
    batch_size: int
    dropout: float
    lr: float  # the paper's Adam, for every method without its own optimiser
    betas: tuple[float, float]
    eps: float
    seed: int
    method_optimizers: dict[str, SGDSettings] = field(default_factory=dict)  # method -> its own optimiser


@dataclass
class Run:
    """One run of a lockstep job: which run it is and its model."""

    id: RunId
    model: Classifier

    @property
    def name(self) -> str:
        """The run's name in a checkpoint (e.g. 'inference/k1')."""
        return str(self.id)


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
    return order[position * batch_size : (position + 1) * batch_size]


def crop_seeds(seed: int, iteration: int, indices: np.ndarray) -> list[int]:
    """The crop seed of each example of iteration ``iteration``."""
    return [iteration_seed(seed, iteration) + int(i) for i in indices]


class TensorBatches:
    """Model inputs cached as a tensor (features or trunk activations), indexed per batch."""

    def __init__(self, tensor: torch.Tensor, device: torch.device):
        self.tensor, self.device = tensor, device

    def __len__(self) -> int:
        return len(self.tensor)

    def batch(self, indices: np.ndarray, crop_seeds: Sequence[int] | None = None) -> torch.Tensor:
        rows = torch.as_tensor(indices, device=self.tensor.device)
        return self._on_device(self.tensor[rows])

    def chunks(self, batch_size: int):
        for start in range(0, len(self.tensor), batch_size):
            yield self._on_device(self.tensor[start : start + batch_size])

    def _on_device(self, rows: torch.Tensor) -> torch.Tensor:
        rows = to_device(rows, self.device)
        # bf16 activations (extracted on a GPU) for a CPU job: its fp32 layers need fp32 inputs
        return rows.float() if self.device.type == "cpu" else rows


# ---------------------------------------------------------------------------------------------
# Evaluation, checkpoints and the training loop


@dataclass
class EvalSet:
    """A split evaluated while training: cached inputs of fixed crops and their labels."""

    inputs: TensorBatches
    labels: np.ndarray


def evaluate(model: Classifier, inputs: TensorBatches, labels: np.ndarray, n_classes: int, batch_size: int = 256):
    """Scores on cached inputs (the frozen trunk's output for the fixed test crops): only the
    trainable part and the head run, in fp32."""
    return evaluate_heads([model], inputs, labels, n_classes, batch_size)[0]


def evaluate_heads(
    models: Sequence[Classifier], inputs: TensorBatches, labels: np.ndarray, n_classes: int, batch_size: int = 256
) -> list:
    """:func:`evaluate` of each of ``models``, whose trainable parts hold the same weights (every run of a
    job before its first step): the first one's trainable part runs once per batch for all, then each
    head. The same numbers as evaluating each alone (the same operations on the same tensors); a
    last-stage job of 14 runs spent 20 of its 280 s on its runs' first evaluations."""
    for model in models:
        model.eval()
    predictions = [[] for _ in models]
    with torch.inference_mode():
        for batch in inputs.chunks(batch_size):
            features = models[0].features(batch)
            for kept, model in zip(predictions, models, strict=True):
                kept.append(model.head_logits(features).argmax(dim=1).cpu())
    return [
        classification_scores(labels, torch.cat(chunks).numpy() if chunks else np.zeros(0, np.int64), n_classes)
        for chunks in predictions
    ]


def same_trainable_weights(models: Sequence[Classifier]) -> bool:
    """Whether every one of ``models`` holds the first one's trainable weights and buffers (its state dict).
    It compares values only: the models must be copies of one part in one memory format, as a job's runs
    are (each a deep copy of the source network's part, all moved to channels_last by the training loop)."""
    first = models[0].trainable.state_dict()
    for model in models[1:]:
        other = model.trainable.state_dict()
        if other.keys() != first.keys() or not all(torch.equal(first[k], other[k]) for k in first):
            return False
    return True


def curve_rows(iteration: int, scores, class_ids: Sequence[str], train_loss: float, val_scores=None) -> list[dict]:
    """One row per target class: the test split's per-class scores, its macro F and accuracy, and the
    validation split's macro F and accuracy (NaN without a validation split), which select the iteration."""
    val_macro = val_scores.macro_f1 if val_scores is not None else float("nan")
    val_accuracy = val_scores.accuracy if val_scores is not None else float("nan")
    return [
        {
            "iteration": iteration,
            "class_id": class_id,
            "precision": float(scores.precision[c]),
            "recall": float(scores.recall[c]),
            "fscore": float(scores.fscore[c]),
            "support": int(scores.support[c]),
            "macro_f1": scores.macro_f1,
            "accuracy": scores.accuracy,
            "val_macro_f1": val_macro,
            "val_accuracy": val_accuracy,
            "train_loss": train_loss,
        }
        for c, class_id in enumerate(class_ids)
    ]


def evaluation_rows(
    model: Classifier, iteration: int, test: EvalSet, val: EvalSet | None, class_ids: Sequence[str], train_loss: float
) -> list[dict]:
    """The curve rows of one evaluation of ``model``: test and (if given) validation split."""
    return heads_evaluation_rows([model], iteration, test, val, class_ids, train_loss)[0]


def heads_evaluation_rows(
    models: Sequence[Classifier],
    iteration: int,
    test: EvalSet,
    val: EvalSet | None,
    class_ids: Sequence[str],
    train_loss: float,
) -> list[list[dict]]:
    """:func:`evaluation_rows` of each of ``models``, whose trainable parts hold the same weights (see
    :func:`evaluate_heads`)."""
    n_classes = len(class_ids)
    test_scores = evaluate_heads(models, test.inputs, test.labels, n_classes)
    val_scores = evaluate_heads(models, val.inputs, val.labels, n_classes) if val is not None else [None] * len(models)
    return [
        curve_rows(iteration, scores, class_ids, train_loss, val)
        for scores, val in zip(test_scores, val_scores, strict=True)
    ]


def deterministic(device: torch.device) -> None:
    """Deterministic kernels on CUDA (cuBLAS needs its workspace setting before its first use), and
    no TF32: evaluations are meant to be fp32 (training steps run under bf16 autocast anyway)."""
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.use_deterministic_algorithms(True)


def _save_checkpoint(path: Path, state: dict) -> None:
    partial = path.with_name(path.name + ".part")
    torch.save(state, partial)
    os.replace(partial, path)


def _optimizer(run: Run, settings: TrainSettings) -> Adam | SGD:
    """The run's method's own optimiser (TrainSettings.method_optimizers), else the paper's Adam."""
    own = settings.method_optimizers.get(run.id.method)
    if own is None:
        parameters = [p for p in run.model.parameters() if p.requires_grad]
        # fused: one kernel for all parameters (4x faster than the default on 2 CPU cores, measured)
        return Adam(parameters, lr=settings.lr, betas=settings.betas, eps=settings.eps)
    new = {id(p) for p in run.model.head.parameters()}
    head = [p for p in run.model.head.parameters() if p.requires_grad]
    pretrained = [p for p in run.model.parameters() if p.requires_grad and id(p) not in new]
    groups = [
        {"params": pretrained, "lr": own.lr * own.pretrained_lr_scale, "base_lr": own.lr * own.pretrained_lr_scale},
        {"params": head, "lr": own.lr, "base_lr": own.lr},
    ]
    return SGD(
        [group for group in groups if group["params"]],
        momentum=own.momentum,
        nesterov=own.nesterov,
        weight_decay=own.weight_decay,
    )


def _schedule(runs: Sequence[Run], optimizers: dict, settings: TrainSettings, step: int) -> None:
    """Each run's learning rates at ``step``: a function of the step alone (so a resumed run continues on
    the same schedule); the paper's Adam keeps its rate."""
    for run in runs:
        own = settings.method_optimizers.get(run.id.method)
        if own is not None:
            for group in optimizers[run.name].param_groups:
                group["lr"] = group["base_lr"] * own.factor(step, settings.iterations)


def _plain(kept: dict[RunId, SelectedState]) -> dict[str, dict]:
    """``kept`` as plain types and tensors, which a checkpoint loads with ``weights_only=True`` (the tensors
    themselves, not copies: they are already the run's own CPU copies)."""
    return {
        str(run): {"iteration": state.iteration, "val_macro_f1": state.val_macro_f1, "state": state.state}
        for run, state in kept.items()
    }


def _resume(
    checkpoint: Path | None,
    signature: dict,
    runs: Sequence[Run],
    optimizers: dict,
    kept: dict[RunId, SelectedState] | None = None,
    keep: Sequence[RunId] = (),
) -> tuple[dict, int] | None:
    """The curves so far and the step of a checkpoint of this ``signature``, its state loaded into the
    runs and optimizers (and, for a job that keeps the runs ``keep`` for export, the same runs' selected
    states into ``kept``); None without one. A job that keeps nothing resumes whatever runs the
    checkpoint's job kept: the runs and their curves are the same."""
    if checkpoint is None or not checkpoint.exists():
        return None
    try:  # tensors and plain types only: a checkpoint planted in results/ must not run code
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - corrupt, truncated or foreign: start over, never fail the job
        log.warning("ignoring checkpoint %s: it is not a readable checkpoint (%s); starting over", checkpoint, error)
        return None
    if not isinstance(state, dict) or state.get("signature") != signature:
        log.warning("ignoring checkpoint %s: it was made by other code, settings or inputs; starting over", checkpoint)
        return None
    if keep and state.get("keep") != [str(run) for run in keep]:
        log.warning(
            "ignoring checkpoint %s: it kept other runs for export (%s); starting over", checkpoint, state.get("keep")
        )
        return None
    if keep and kept is not None:
        named = {run.name: run.id for run in runs}
        kept.update({named[name]: SelectedState(**selected) for name, selected in state.get("kept", {}).items()})
    if not state["runs"]:  # the finished curves (see train_lockstep): nothing left to train
        log.info("%s holds the finished curves (iteration %d): nothing to train", checkpoint, state["iteration"])
        return state["rows"], state["iteration"]
    for run in runs:
        run.model.load_state_dict(state["runs"][run.name]["model"])
        optimizers[run.name].load_state_dict(state["runs"][run.name]["optimizer"])
    log.info("resuming %s from iteration %d", checkpoint, state["iteration"])
    return state["rows"], state["iteration"]


class _LogStream:
    """A file for tqdm that hands each refresh of the bar to the log (the job's log file and stderr):
    a cluster job's log shows its progress, one line per refresh."""

    def write(self, text: str) -> None:
        if text := text.strip("\r\n \x1b[A"):
            log.info("%s", text)

    def flush(self) -> None:
        pass


def progress_bar(total: int, initial: int, desc: str, log_every_s: float) -> tqdm:
    """The training loop's bar: iteration, it/s, time left and the latest validation macro F, in the log
    every ``log_every_s`` seconds."""
    return tqdm(
        total=total, initial=initial, desc=desc, unit="it", file=_LogStream(), mininterval=log_every_s, ascii=True
    )


@dataclass
class LockstepData:
    """What every run of a lockstep job trains and is scored on: ``frozen`` maps a training batch to the
    runs' input (the frozen trunk; ``nn.Identity()`` for cached inputs) and runs once per step for all runs;
    ``val`` is the split that selects the iteration."""

    frozen: nn.Module
    train_inputs: Any  # TensorBatches (cached inputs) or headstart.data.pixels.CropBatches (random crops)
    train_labels: np.ndarray
    test: EvalSet
    class_ids: Sequence[str]
    val: EvalSet | None = None


@dataclass(frozen=True)
class LockstepOptions:
    """How a lockstep job runs, not what it computes: ``stop_at`` ends it early, as a kill would (tests);
    ``mixed_precision`` is the training steps' autocast (default: bf16 on CUDA, none on the CPU); the
    progress bar's name and how often the log shows it."""

    stop_at: int | None = None
    mixed_precision: Callable[[], AbstractContextManager] | None = None
    progress: str = "finetune"
    log_every_s: float = 10.0


def first_evaluation_rows(runs: Sequence[Run], data: LockstepData) -> dict[str, list[dict]]:
    """Each run's curve rows at iteration 0: its trainable part evaluated once for every run that starts
    from the same weights (all of a job's runs: each starts from the source network's)."""
    models = [run.model for run in runs]
    groups = [models] if models and same_trainable_weights(models) else [[model] for model in models]
    rows = [
        r
        for group in groups
        for r in heads_evaluation_rows(group, 0, data.test, data.val, data.class_ids, float("nan"))
    ]
    return {run.name: run_rows for run, run_rows in zip(runs, rows, strict=True)}


def _start(
    runs: Sequence[Run],
    data: LockstepData,
    optimizers: dict,
    checkpoint: Path | None,
    signature: dict,
    keep: Sequence[RunId],
    kept: dict[RunId, SelectedState],
) -> tuple[dict[str, list[dict]], int]:
    """The curves so far and the step to start from: a checkpoint's of this ``signature``, else each run's
    evaluation at iteration 0 (its weights kept for export when named in ``keep``)."""
    resumed = _resume(checkpoint, signature, runs, optimizers, kept, keep)
    if resumed is not None:
        return resumed
    rows = first_evaluation_rows(runs, data)
    for run in runs:
        if run.id in keep:
            select(kept, run.id, run.model, rows[run.name])
    return rows, 0


def _step(runs: Sequence[Run], optimizers: dict, hidden: torch.Tensor, targets: torch.Tensor, mixed_precision) -> list:
    """One optimizer step of every run on the same frozen output; each run's loss, on the device."""
    losses = []
    for run in runs:
        run.model.train()
        with mixed_precision():
            loss = run.model.loss(hidden, targets)
        optimizer = optimizers[run.name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        run.model.after_step()
        losses.append(loss.detach())
    return losses


def _checkpoint_state(
    signature: dict,
    iteration: int,
    rows: dict,
    runs: Sequence[Run],
    optimizers: dict | None,
    keep: Sequence[RunId],
    kept: dict[RunId, SelectedState],
) -> dict:
    """What a checkpoint holds: the curves so far, the kept export weights and, unless the job is finished
    (``optimizers`` None), each run's trainable part, head and optimizer state."""
    states = (
        {}
        if optimizers is None
        else {
            run.name: {"model": run.model.state_dict(), "optimizer": optimizers[run.name].state_dict()} for run in runs
        }
    )
    return {
        "signature": signature,
        "iteration": iteration,
        "rows": rows,
        "runs": states,
        "keep": [str(run) for run in keep],
        "kept": _plain(kept),
    }


def train_lockstep(
    runs: Sequence[Run],
    data: LockstepData,
    settings: TrainSettings,
    device: torch.device,
    checkpoint: Path | None = None,
    signature: dict | None = None,
    keep: Sequence[RunId] = (),
    kept: dict[RunId, SelectedState] | None = None,
    options: LockstepOptions = LockstepOptions(),
) -> dict[RunId, pd.DataFrame]:
    """Train every run on the same batches; evaluate each on the test split (and the validation split,
    which selects the iteration) at iteration 0 and every ``eval_every`` iterations. Returns each run's
    curve by name.

    With ``checkpoint``, what training changes (each run's trainable part, head and optimizer state, the
    step, the curves so far) is saved every ``checkpoint_every`` evaluations, and a job finding a checkpoint
    of the same ``signature`` resumes from it; once finished, the checkpoint holds the curves alone. For
    each run named in ``keep``, ``kept`` receives its weights at its selected evaluation (best on
    validation; they travel in the checkpoint, so a resumed job keeps the same ones).
    """
    kept = {} if kept is None else kept
    mixed_precision = options.mixed_precision or (lambda: autocast_for(device))
    deterministic(device)
    frozen = data.frozen.to(device).eval().to(memory_format=torch.channels_last)
    masks = StepMasks()  # dropout masks depend on (seed, t) only: drawn once per step for all runs
    for run in runs:
        run.model.to(device).to(memory_format=torch.channels_last)
        run.model.dropout.masks = masks
    optimizers = {run.name: _optimizer(run, settings) for run in runs}
    # checkpoint spacing does not change the result: a run resumed under another spacing is the same run
    signature = {
        **(signature or {}),
        "runs": [run.name for run in runs],
        "val": data.val is not None,
        **{k: v for k, v in asdict(settings).items() if k != "checkpoint_every"},
    }
    labels = torch.as_tensor(data.train_labels, dtype=torch.long)
    rows, start = _start(runs, data, optimizers, checkpoint, signature, keep, kept)
    evaluations = len({row["iteration"] for row in rows[runs[0].name]}) if runs else 0
    loss_sums = {run.name: torch.zeros((), device=device) for run in runs}  # on the device: no sync per step
    loss_count = 0
    bar = progress_bar(settings.iterations, start, options.progress, options.log_every_s)
    for t in range(start, settings.iterations):
        iteration = t + 1
        indices = batch_indices(len(data.train_inputs), settings.batch_size, settings.seed, t)
        batch = data.train_inputs.batch(indices, crop_seeds(settings.seed, t, indices))
        targets = labels[indices].to(device, non_blocking=True)
        with torch.no_grad(), mixed_precision():
            hidden = frozen(batch)  # once for every run
        masks.start(iteration_seed(settings.seed, t))
        _schedule(runs, optimizers, settings, t)
        for run, loss in zip(runs, _step(runs, optimizers, hidden, targets, mixed_precision), strict=True):
            loss_sums[run.name] += loss
        loss_count += 1
        bar.update(1)
        if iteration % settings.eval_every == 0 or iteration == settings.iterations:
            for run in runs:
                train_loss = loss_sums[run.name].item() / loss_count
                rows[run.name] += evaluation_rows(run.model, iteration, data.test, data.val, data.class_ids, train_loss)
                loss_sums[run.name].zero_()
                if run.id in keep:
                    select(kept, run.id, run.model, rows[run.name])
            loss_count = 0
            evaluations += 1
            bar.set_postfix({f"val F {run.name}": f"{rows[run.name][-1]['val_macro_f1']:.3f}" for run in runs[:3]})
            last = iteration == settings.iterations
            if checkpoint is not None and (last or evaluations % settings.checkpoint_every == 0):
                # finished: the curves alone (no weights), so that a job killed after this, before its output
                # is accepted (a time limit just passed), writes them again on its retry without training
                state = _checkpoint_state(signature, iteration, rows, runs, None if last else optimizers, keep, kept)
                _save_checkpoint(checkpoint, state)
        if options.stop_at is not None and iteration >= options.stop_at:
            break
    bar.close()
    return {run.id: pd.DataFrame(rows[run.name]) for run in runs}

"""One fine-tuning job: every run (method, K) of one shot level and one seed, trained in lockstep.

The four training modes differ only in what is frozen, what the runs train and where the inputs
come from; evaluation always runs on cached activations of the fixed test crops:

| train        | augment | frozen, once per step  | each run trains       | training inputs          | test inputs     |
|--------------|---------|------------------------|-----------------------|--------------------------|-----------------|
| `head`       | no      | nothing                | head                  | cached features          | cached features |
| `head`       | yes     | trunk + trainable part | head                  | random crops (of pixels) | cached features |
| `last_stage` | no      | nothing                | trainable part + head | cached trunk activations | cached trunk    |
| `last_stage` | yes     | trunk                  | trainable part + head | random crops (of pixels) | cached trunk    |
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.errors import HeadstartError
from ..core.tables import read_rows, read_tensor_metadata, write_parquet
from ..core.vocabulary import RunId, runs_to_keep
from ..data.split import in_shot_level, labelled
from ..heads.headfile import read_head
from .classifiers import classifier_from_head
from .lockstep import (
    EvalSet,
    LockstepData,
    LockstepOptions,
    Run,
    SGDSettings,
    TensorBatches,
    TrainSettings,
    train_lockstep,
)
from .selection import SelectedState, best_selected, write_selected

log = logging.getLogger(__name__)


class FinetuneError(HeadstartError, RuntimeError):
    """Inputs that do not fit the training mode; the message says what to change."""


@dataclass(frozen=True)
class Mode:
    train: str  # head | last_stage
    augment: bool

    @property
    def cached_key(self) -> str:
        """The cached tensor the runs read: penultimate features, or the frozen trunk's output."""
        return "features" if self.train == "head" else "trunk"


@dataclass(frozen=True)
class JobFiles:
    """What one fine-tuning job reads and writes."""

    heads: Sequence[Path]  # one initial head per run
    features_train: Path
    features_test: Path
    features_val: Path
    pixels_train: Path
    weights: Path  # the source network (headstart.extract.models.load_parts)
    curves: Path  # every run's curve (output)
    selected: Path | None = None  # the job's candidate for export (output of the export's shot level)

    @property
    def checkpoint(self) -> Path:
        return self.curves.with_suffix(".checkpoint.pt")

    @property
    def lock(self) -> Path:
        return self.curves.with_suffix(".lock")


@dataclass(frozen=True)
class JobSettings:
    """How one fine-tuning job trains, parsed once from the config (:func:`job_settings`)."""

    mode: Mode
    train: TrainSettings
    entry: dict[str, Any]  # the source model's config entry
    preprocess: dict[str, Any]
    device: torch.device
    # everything else that decides the result (the job's params, its code's hash included): a checkpoint or
    # export candidate made under another key is ignored
    cache_key: str = ""
    export_method: str | None = None  # with JobFiles.selected: the runs export may choose among
    export_k: str | None = None


def method_optimizers(options: dict[str, Any]) -> dict[str, SGDSettings]:
    """finetune.method_optimizers, parsed: method -> its own SGD."""
    return {
        method: SGDSettings(
            lr=sgd["lr"],
            momentum=sgd["momentum"],
            nesterov=sgd["nesterov"],
            weight_decay=sgd["weight_decay"],
            pretrained_lr_scale=sgd["pretrained_lr_scale"],
            lr_milestones=tuple(sgd["lr_milestones"]),
            lr_gamma=sgd["lr_gamma"],
        )
        for method, sgd in options.items()
    }


def job_settings(
    options: dict[str, Any],
    seed: int,
    checkpoint_every: int,
    entry: dict[str, Any],
    preprocess: dict[str, Any],
    device: torch.device,
    cache_key: str = "",
    export: dict[str, Any] | None = None,
) -> JobSettings:
    """The settings of the job of ``seed`` from ``finetune`` config ``options`` and the export's choice."""
    optimizer, export = options["optimizer"], export or {}
    train = TrainSettings(
        iterations=options["iterations"],
        eval_every=options["eval_every"],
        checkpoint_every=checkpoint_every,
        batch_size=options["batch_size"],
        dropout=options["dropout"],
        lr=optimizer["lr"],
        betas=tuple(optimizer["betas"]),
        eps=optimizer["eps"],
        seed=seed,
        method_optimizers=method_optimizers(options.get("method_optimizers") or {}),
    )
    k = export.get("k")
    return JobSettings(
        Mode(options["train"], bool(options["augment"])),
        train,
        entry,
        preprocess,
        device,
        cache_key,
        export.get("method"),
        None if k is None else str(k),
    )


def _image_ids(path: Path, key: str, what: str) -> list[str]:
    """The image ids of an extract file that holds ``key``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        if key not in handle.keys():
            raise FinetuneError(
                f"{path} has no {key!r} tensor: {what} needs the frozen trunk's activations "
                f"of this split (extract.trunk_activations)"
            )
    return read_tensor_metadata(path)["image_ids"]


def _identity(path: Path) -> list:
    """What identifies an input for a checkpoint: a head by its content, a cache by size and mtime."""
    import hashlib

    path = Path(path)
    if path.stat().st_size < 64 * 2**20:
        return [path.name, hashlib.sha256(path.read_bytes()).hexdigest()]
    return [path.name, path.stat().st_size, path.stat().st_mtime_ns]


def curves_table(curves: dict[RunId, pd.DataFrame], shots: int, seed: int) -> pd.DataFrame:
    """Every run's curve in one table (columns method, k, shots, seed + the curve's), each run's first,
    selected and best test macro F logged."""
    frames = []
    for run, curve in curves.items():
        frames.append(curve.assign(method=run.method, k=run.k, shots=shots, seed=seed))
        scores = curve.groupby("iteration")[["macro_f1", "val_macro_f1"]].first()
        chosen = scores["val_macro_f1"].idxmax()  # the first maximum: the earliest on ties
        log.info(
            "%s %d shots seed %d: test macro F first %.3f, selected %.3f (iteration %d, best on validation), "
            "test maximum %.3f",
            run,
            shots,
            seed,
            scores["macro_f1"].iloc[0],
            scores.at[chosen, "macro_f1"],
            chosen,
            scores["macro_f1"].max(),
        )
    return pd.concat(frames, ignore_index=True)


@contextmanager
def attempt_lock(path: Path) -> Iterator[None]:
    """Held while one attempt of a job trains and writes its files: a second live attempt (an orphan of a
    killed Snakemake still running under SLURM, and its resubmission) waits for the first to finish,
    then finds its finished curves in the checkpoint. The kernel releases the lock when its holder dies."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            log.warning("another attempt of this job holds %s (%s): waiting for it", path, handle.read().strip())
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _eval_set(path: Path, mode: Mode, manifest: pd.DataFrame, classes: pd.DataFrame, device) -> EvalSet:
    """A split evaluated while training (test or validation): its cached inputs for ``mode`` and labels."""
    ids = _image_ids(path, mode.cached_key, f"train: {mode.train}")
    labels = labelled(ids, manifest, classes)["label"].to_numpy()
    return EvalSet(TensorBatches(read_rows(path, mode.cached_key, device), device), labels)


def build_runs(heads: Sequence[Path], trainable: nn.Module | None, dropout: float) -> list[Run]:
    """One run per head file, which run it is from the head's own metadata; each gets its own
    copy of the trainable part (None: the head alone trains)."""
    runs = []
    for path in heads:
        tensors, meta = read_head(path)
        part = nn.Identity()
        if trainable is not None:
            part = copy.deepcopy(trainable).train()
            for parameter in part.parameters():
                parameter.requires_grad_(True)
        model = classifier_from_head(part, tensors, meta, dropout)
        runs.append(Run(RunId.of(meta), model))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise FinetuneError(f"two heads of the same run among {names}")
    return runs


def _train_inputs(files: JobFiles, settings: JobSettings, manifest, classes, shots: int):
    """(the frozen part each step runs once for all runs, the training batches, their labels, the source
    network's parts or None) for the job's training mode."""
    mode, device = settings.mode, settings.device
    parts = None
    if mode != Mode("head", False):  # every other mode needs the network itself
        from ..extract.models import load_parts

        parts, mean, std = load_parts(settings.entry, files.weights)
    if mode.augment:
        from ..data.pixels import CropBatches, PixelCache

        cache = PixelCache(files.pixels_train)
        rows = labelled(cache.image_ids, manifest, classes)
        subset = np.flatnonzero(in_shot_level(rows, shots))
        crop = settings.preprocess["crop"]
        batches = CropBatches(cache, subset, crop, mean, std, device, augment=True, max_batch=settings.train.batch_size)
        frozen = parts.trunk if mode.train == "last_stage" else nn.Sequential(parts.trunk, parts.trainable)
    else:
        ids = _image_ids(files.features_train, mode.cached_key, f"train: {mode.train}")
        rows = labelled(ids, manifest, classes)
        subset = np.flatnonzero(in_shot_level(rows, shots))
        batches = TensorBatches(read_rows(files.features_train, mode.cached_key, device, rows=subset), device)
        frozen = nn.Identity()
    labels = rows["label"].to_numpy()[subset]
    if len(labels) == 0:
        raise FinetuneError(f"no training images at {shots} images per class")
    return frozen, batches, labels, parts


def _inputs(files: JobFiles, mode: Mode) -> list[Path]:
    """The files the job's result depends on: heads, evaluation caches, training inputs, and the network's
    weights where it runs the network."""
    inputs = [*files.heads, files.features_test, files.features_val]
    inputs.append(files.pixels_train if mode.augment else files.features_train)
    return inputs + ([files.weights] if mode != Mode("head", False) else [])


def job_key(params: dict) -> str:
    """A hash of a job's params (its code's hash among them) without the export's choice, which decides
    which runs' weights are kept, not any curve (the checkpoint records the kept runs apart): the key a
    checkpoint is made under, so that one of other code or settings is never resumed."""
    import hashlib
    import json

    text = json.dumps({k: v for k, v in params.items() if k != "export"}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _signature(files: JobFiles, settings: JobSettings, shots: int) -> dict:
    """What a checkpoint must have been made from to be resumed: the same job key (params and code), the
    same inputs, settings and device type (bf16 on CUDA); the runs kept for export are checked apart
    (headstart.finetune.lockstep)."""
    mode = settings.mode
    return {
        "key": settings.cache_key,
        "shots": shots,
        "train": mode.train,
        "augment": mode.augment,
        "preprocess": settings.preprocess,
        "device": settings.device.type,
        "inputs": [_identity(path) for path in _inputs(files, mode)],
    }


def finetune_job(
    files: JobFiles, manifest: pd.DataFrame, classes: pd.DataFrame, shots: int, settings: JobSettings
) -> pd.DataFrame:
    """Train every head of ``files.heads`` at ``shots`` images per class; write all curves (columns method,
    k, shots, seed + the curve's) to ``files.curves`` and return them.

    A killed job resumes from ``files.checkpoint`` when it was made under the same signature (job key
    included); once the curves are written it holds only them. Another live attempt of the same job (an
    orphan of a killed Snakemake, still running under SLURM) holds ``files.lock``: this one waits for it
    instead of writing the same files. With ``files.selected``, the job also writes its candidate for
    export (headstart.finetune.selection): of the runs of ``settings.export_method`` and ``export_k`` (every run
    when unset), the best on validation, at its selected evaluation.
    """
    mode, device, seed = settings.mode, settings.device, settings.train.seed
    class_ids = classes["class_id"].tolist()
    test = _eval_set(files.features_test, mode, manifest, classes, device)
    val = _eval_set(files.features_val, mode, manifest, classes, device)
    frozen, train_inputs, train_labels, parts = _train_inputs(files, settings, manifest, classes, shots)
    runs = build_runs(files.heads, parts.trainable if mode.train == "last_stage" else None, settings.train.dropout)
    log.info(
        "%d runs in lockstep (%s), %d training images, %s mode, augment=%s",
        len(runs),
        ", ".join(run.name for run in runs),
        len(train_labels),
        mode.train,
        mode.augment,
    )
    keep = []
    if files.selected is not None:
        keep = runs_to_keep([run.id for run in runs], settings.export_method, settings.export_k)
    if files.selected is not None and not keep:
        raise FinetuneError(f"export: no run of this job is method {settings.export_method} with K {settings.export_k}")
    signature = _signature(files, settings, shots)
    kept: dict[RunId, SelectedState] = {}
    with attempt_lock(files.lock):
        files.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        curves = train_lockstep(
            runs,
            LockstepData(frozen, train_inputs, train_labels, test, class_ids, val),
            settings.train,
            device,
            checkpoint=files.checkpoint,
            signature=signature,
            keep=keep,
            kept=kept,
            options=LockstepOptions(progress=f"{shots}-shot seed {seed}"),
        )
        if files.selected is not None:
            best = best_selected(kept, keep)
            model = next(run.model for run in runs if run.id == best)
            write_selected(files.selected, best, kept[best], model, curves[best], shots, seed)
            log.info(
                "export candidate: %s at iteration %d (validation macro F %.3f)",
                best,
                kept[best].iteration,
                kept[best].val_macro_f1,
            )
        table = curves_table(curves, shots, seed)
        write_parquet(
            table,
            files.curves,
            {
                **signature,
                "seed": seed,
                "runs": [str(run) for run in curves],
                "settings": asdict(settings.train),
                "inputs": [str(path) for path in _inputs(files, mode)],
            },
        )
    # the checkpoint now holds only the finished curves (a few kB): kept, so that a job killed before its
    # output is accepted rewrites them instead of training again; a later run of another key ignores it
    return table

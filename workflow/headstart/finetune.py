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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import HeadstartError
from .export import best_selected, runs_to_keep, write_selected
from .split import in_shot_level, labelled
from .tables import read_arrays, read_rows, read_tensor_metadata, write_parquet
from .train import EvalSet, Run, SelectedState, TensorBatches, TrainSettings, classifier_from_head, train_lockstep

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


def settings_from(options: dict[str, Any], seed: int, checkpoint_every: int) -> TrainSettings:
    optimizer = options["optimizer"]
    return TrainSettings(
        iterations=options["iterations"],
        eval_every=options["eval_every"],
        checkpoint_every=checkpoint_every,
        batch_size=options["batch_size"],
        dropout=options["dropout"],
        lr=optimizer["lr"],
        betas=tuple(optimizer["betas"]),
        eps=optimizer["eps"],
        seed=seed,
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


def curves_table(curves: dict[str, pd.DataFrame], shots: int, seed: int) -> pd.DataFrame:
    """Every run's curve in one table (columns method, k, shots, seed + the curve's), each run's first,
    selected and best test macro F logged."""
    frames = []
    for name, curve in curves.items():
        method, k = name.split("/k")
        frames.append(curve.assign(method=method, k=k, shots=shots, seed=seed))
        scores = curve.groupby("iteration")[["macro_f1", "val_macro_f1"]].first()
        chosen = scores["val_macro_f1"].idxmax()  # the first maximum: the earliest on ties
        log.info(
            "%s %d shots seed %d: test macro F first %.3f, selected %.3f (iteration %d, best on validation), "
            "test maximum %.3f",
            name,
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
    """One run per head file, named '<method>/k<K>' from the head's own metadata; each gets its own
    copy of the trainable part (None: the head alone trains)."""
    runs = []
    for path in heads:
        tensors, meta = read_arrays(path)
        part = nn.Identity()
        if trainable is not None:
            part = copy.deepcopy(trainable).train()
            for parameter in part.parameters():
                parameter.requires_grad_(True)
        model = classifier_from_head(part, tensors, meta, dropout)
        runs.append(Run(f"{meta['method']}/k{meta['k']}", model))
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise FinetuneError(f"two heads of the same run among {names}")
    return runs


def finetune_job(
    heads: Sequence[Path],
    features_train: Path,
    features_test: Path,
    features_val: Path,
    pixels_train: Path,
    manifest: pd.DataFrame,
    classes: pd.DataFrame,
    shots: int,
    seed: int,
    options: dict[str, Any],
    entry: dict[str, Any],
    weights: Path,
    preprocess: dict[str, Any],
    device: torch.device,
    checkpoint_every: int,
    curves_out: Path,
    checkpoint: Path,
    selected_out: Path | None = None,
    export_method: str | None = None,
    export_k: str | int | None = None,
) -> pd.DataFrame:
    """Train every head of ``heads`` at ``shots`` images per class with ``seed``; write all curves
    (columns method, k, shots, seed + the curve's) to ``curves_out`` and return them.

    A killed job resumes from ``checkpoint``; once the curves are written it holds only them.
    Another live attempt of the same job (an orphan of a killed Snakemake, still running under SLURM)
    holds ``<curves>.lock``: this one waits for it instead of writing the same files.
    With ``selected_out``, the job also writes its candidate for export (headstart.export): of the runs of
    ``export_method`` and ``export_k`` (every run when unset), the best on validation, at its selected
    evaluation.
    """
    mode = Mode(options["train"], bool(options["augment"]))
    settings = settings_from(options, seed, checkpoint_every)
    class_ids = classes["class_id"].tolist()
    test = _eval_set(features_test, mode, manifest, classes, device)
    val = _eval_set(features_val, mode, manifest, classes, device)
    parts = None
    if mode != Mode("head", False):  # every other mode needs the network itself
        from .models import load_parts

        parts, mean, std = load_parts(entry, weights)
    if mode.augment:
        from .pixels import CropBatches, PixelCache

        cache = PixelCache(pixels_train)
        rows = labelled(cache.image_ids, manifest, classes)
        subset = np.flatnonzero(in_shot_level(rows, shots))
        train_inputs = CropBatches(
            cache, subset, preprocess["crop"], mean, std, device, augment=True, max_batch=options["batch_size"]
        )
        frozen = parts.trunk if mode.train == "last_stage" else nn.Sequential(parts.trunk, parts.trainable)
    else:
        rows = labelled(_image_ids(features_train, mode.cached_key, f"train: {mode.train}"), manifest, classes)
        subset = np.flatnonzero(in_shot_level(rows, shots))
        train_inputs = TensorBatches(read_rows(features_train, mode.cached_key, device, rows=subset), device)
        frozen = nn.Identity()
    train_labels = rows["label"].to_numpy()[subset]
    if len(train_labels) == 0:
        raise FinetuneError(f"no training images at {shots} images per class")
    runs = build_runs(heads, parts.trainable if mode.train == "last_stage" else None, options["dropout"])
    log.info(
        "%d runs in lockstep (%s), %d training images, %s mode, augment=%s",
        len(runs),
        ", ".join(run.name for run in runs),
        len(train_labels),
        mode.train,
        mode.augment,
    )
    # a checkpoint resumes only the same computation: same inputs, settings, device type (bf16 on CUDA)
    inputs = [*heads, features_test, features_val, pixels_train if mode.augment else features_train]
    signature = {
        "shots": shots,
        "train": mode.train,
        "augment": mode.augment,
        "preprocess": preprocess,
        "device": device.type,
        "inputs": [_identity(path) for path in inputs],
    }
    keep = runs_to_keep([run.name for run in runs], export_method, export_k) if selected_out is not None else []
    if selected_out is not None and not keep:
        raise FinetuneError(f"export: no run of this job is method {export_method} with K {export_k}")
    kept: dict[str, SelectedState] = {}
    with attempt_lock(curves_out.with_suffix(".lock")):
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        curves = train_lockstep(
            runs,
            frozen,
            train_inputs,
            train_labels,
            test.inputs,
            test.labels,
            class_ids,
            settings,
            device,
            checkpoint=checkpoint,
            signature=signature,
            progress=f"{shots}-shot seed {seed}",
            val=val,
            keep=keep,
            kept=kept,
        )
        if selected_out is not None:
            name = best_selected(kept, [run.name for run in runs])
            model = next(run.model for run in runs if run.name == name)
            write_selected(selected_out, name, kept[name], model, curves[name], shots, seed)
            log.info(
                "export candidate: %s at iteration %d (validation macro F %.3f)",
                name,
                kept[name].iteration,
                kept[name].val_macro_f1,
            )
        table = curves_table(curves, shots, seed)
        write_parquet(
            table,
            curves_out,
            {
                **signature,
                "seed": seed,
                "runs": list(curves),
                "settings": options,
                "inputs": [str(path) for path in inputs],
            },
        )
    # the checkpoint now holds only the finished curves (a few kB): kept, so that a job killed before its
    # output is accepted rewrites them instead of training again; a later run of other settings ignores it
    return table

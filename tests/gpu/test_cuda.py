"""The CUDA path: what only a GPU exercises (bf16 autocast for training steps, pinned staging buffers,
deterministic kernels, lockstep runs and the pixel cache cropped on the device, tensors moved back to
the host). Marked `gpu`: on CUDA where there is one, else on the CPU (how the suite checks they work);
tests/gpu/check.sh runs them on a GPU machine with HEADSTART_CHECK_DEVICE=cuda."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

from headstart.core.devices import autocast_for
from headstart.core.tables import read_tensors
from headstart.core.vocabulary import RunId
from headstart.data.pixels import CropBatches, PixelCache, decode_images
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split
from headstart.extract.models import split_model
from headstart.finetune.classifiers import Classifier
from headstart.finetune.lockstep import (
    EvalSet,
    LockstepData,
    LockstepOptions,
    Run,
    TensorBatches,
    TrainSettings,
    evaluate,
    train_lockstep,
)
from headstart.heads.initial import xavier_head

pytestmark = pytest.mark.gpu

# the GPU check names its device; the suite runs them on CUDA where there is one, else on the CPU (the same code)
DEVICE = torch.device(os.environ.get("HEADSTART_CHECK_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu"))
CPU = torch.device("cpu")
if DEVICE.type == "cuda" and not torch.cuda.is_available():
    pytestmark = [pytest.mark.gpu, pytest.mark.skip(reason="HEADSTART_CHECK_DEVICE=cuda and no CUDA device here")]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def blobs(n_per_class: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    centres = np.random.default_rng(99).normal(size=(3, 16)) * 2
    return torch.tensor(centres[labels] + rng.normal(size=(len(labels), 16)), dtype=torch.float32), labels


def make_run(name: str, seed: int) -> Run:
    torch.manual_seed(seed)
    part = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16), nn.ReLU())
    weight, bias = xavier_head(3, 16, seed=seed)
    return Run(RunId(*name.split("/k")), Classifier(part, weight, bias, 0.5))


def train(runs, checkpoint=None, stop_at=None, device=DEVICE) -> dict[str, pd.DataFrame]:
    """Runs trained on DEVICE under the default mixed precision (bf16 autocast on CUDA)."""
    x, y = blobs(10, 0)
    x_test, y_test = blobs(5, 1)
    settings = TrainSettings(40, 5, 2, 8, 0.5, 1e-2, (0.9, 0.999), 1e-8, 7)
    test = EvalSet(TensorBatches(x_test.to(device), device), y_test)
    data = LockstepData(nn.Identity(), TensorBatches(x.to(device), device), y, test, ["a", "b", "c"])
    options = LockstepOptions(stop_at=stop_at)
    curves = train_lockstep(runs, data, settings, device, checkpoint=checkpoint, options=options)
    return {str(run): curve for run, curve in curves.items()}


def test_a_resumed_run_equals_an_uninterrupted_one_on_the_device(tmp_path):
    """Bit for bit: deterministic kernels (headstart.finetune.lockstep.deterministic) and step-seeded dropout masks."""
    uninterrupted = train([make_run("random/k0", 0)])["random/k0"]
    partial = train([make_run("random/k0", 0)], tmp_path / "ckpt.pt", stop_at=23)["random/k0"]
    assert partial["iteration"].max() == 20
    resumed = train([make_run("random/k0", 0)], tmp_path / "ckpt.pt")["random/k0"]
    pd.testing.assert_frame_equal(resumed, uninterrupted)
    assert uninterrupted["macro_f1"].iloc[-1] > 0.9  # separable blobs are learnt under bf16 steps too


def test_lockstep_runs_equal_separate_runs_on_the_device():
    names = [("random/k0", 0), ("inference/k1", 1)]
    together = train([make_run(name, seed) for name, seed in names])
    for name, seed in names:
        pd.testing.assert_frame_equal(together[name], train([make_run(name, seed)])[name])


def test_iteration_zero_predictions_under_bf16_autocast_equal_fp32():
    """Evaluation logits are computed in fp32 even inside the training steps' bf16 autocast."""
    rng = np.random.default_rng(0)
    features = torch.tensor(rng.normal(size=(300, 16)), dtype=torch.float32, device=DEVICE)
    weight = (rng.normal(size=(100, 16)) * 0.01).astype(np.float32)
    bias = np.full(100, 10.0, dtype=np.float32)  # logits near 10, 0.01 apart: bf16 steps are 0.0625
    model = Classifier(nn.Linear(16, 16), weight, bias, 0.5).to(DEVICE).eval()
    with torch.inference_mode():
        fp32 = model.logits(features).argmax(1).cpu().numpy()
        with torch.autocast(DEVICE.type, dtype=torch.bfloat16):
            inside = model.logits(features).argmax(1).cpu().numpy()
            rounded = model(features).argmax(1).cpu().numpy()
    np.testing.assert_array_equal(inside, fp32)
    assert (rounded != fp32).mean() > 0.3  # what bf16 logits would have done


def write_images(directory, n: int) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        shape = (30 + 3 * i, 41 - 2 * i, 3) if i % 3 else (33, 33)
        path = directory / f"{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_a_pixel_cache_batch_cropped_on_the_device_equals_the_cpus(tmp_path):
    """Random and centre crops through the pinned staging ring equal the CPU's: the same pixels, normalised
    by the same elementwise float32 operations (equal within 1e-6: a GPU may fuse multiply-add)."""
    paths = write_images(tmp_path, 6)
    decode_images(paths, [str(i) for i in range(6)], tmp_path / "train.safetensors", 40, 32, centre_crop=False)
    cache = PixelCache(tmp_path / "train.safetensors")
    for augment in (True, False):
        on_device = CropBatches(cache, range(6), 32, MEAN, STD, DEVICE, augment=augment, max_batch=4)
        on_cpu = CropBatches(cache, range(6), 32, MEAN, STD, CPU, augment=augment, max_batch=4)
        for step in range(5):  # more steps than staging buffers: the ring turns
            indices = np.array([step % 6, (step + 2) % 6, (step + 5) % 6])
            seeds = [1000 * step + int(i) for i in indices] if augment else None
            ours, theirs = on_device.batch(indices, seeds), on_cpu.batch(indices, seeds)
            assert ours.device.type == DEVICE.type and ours.dtype == torch.float32
            torch.testing.assert_close(ours.cpu(), theirs, rtol=0, atol=1e-6)


def test_extraction_and_evaluation_move_device_tensors_to_the_host(tmp_path):
    """The paths that hand tensors to numpy (extraction's outputs, evaluation's scores) take CUDA and bf16
    tensors: extraction under bf16 autocast on CUDA, evaluation of bf16 cached activations."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    parts = split_model(model, ["layer4"], "fc")
    paths = write_images(tmp_path, 6)
    decode_images(paths, [str(i) for i in range(6)], tmp_path / "test.safetensors", 40, 32, centre_crop=True)
    result = extract_split(
        parts,
        tmp_path / "test.safetensors",
        CentreCrops(32, MEAN, STD, 4, DEVICE),
        [f"n{i:08d}" for i in range(1000)],
        SplitOutputs(tmp_path / "logits.parquet", tmp_path / "features.safetensors"),
    )
    assert len(result.features) == 6
    tensors, _ = read_tensors(tmp_path / "features.safetensors")
    assert tensors["features"].shape == (6, 512) and torch.isfinite(tensors["features"].float()).all()
    assert pd.read_parquet(tmp_path / "logits.parquet").shape == (6, 1000)
    trunk = tensors["trunk"].to(DEVICE)
    if DEVICE.type == "cuda":
        trunk = trunk.bfloat16()  # as a GPU extraction may store them
    weight, bias = xavier_head(3, 512, seed=0)
    classifier = Classifier(parts.trainable, weight, bias, 0.5).to(DEVICE)
    with autocast_for(DEVICE):
        scores = evaluate(classifier, TensorBatches(trunk, DEVICE), np.arange(6) % 3, 3)
    assert 0 <= scores.macro_f1 <= 1 and scores.support.sum() == 6

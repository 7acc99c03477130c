"""Benchmark (not a test): the paper preset's cost, from one real fine-tuning job timed end to end,
and the before/after ratio of each lever of the decode-once / cached-evaluation / lockstep design.

    .venv/bin/python tests/bench/bench_paper.py [--devices 8] [--iterations N] [--test-images N]

Everything runs the workflow's own code on the device at hand (CUDA if present), with ResNet-101 (the
preset's network; random weights: speed does not depend on them) on generated JPEGs of ImageNet size
(500 x 375; real photos decode somewhat slower):

1. the preset's job, end to end: the decode stage, the extract stage (test trunk activations), then
   `finetune_job` with the preset's shape (batch 64, 256 -> 224 random crops, 7 runs in lockstep,
   evaluations on cached activations, lean checkpoints) for --iterations steps and 2 evaluations on
   --test-images images; projected to the preset (3 000 iterations, 31 evaluations on 9 000 test
   images, 24 jobs of 7-11 runs, 63 000 images decoded and extracted);
2. the levers, old path (tests/legacy_train.py, the code before this design) against new, one after
   the other in this run: building a batch, one evaluation, one step of 7 runs, and a whole
   paper-shaped job on a small config.

On a CPU the sizes shrink (--iterations 2, --test-images 64, small-config job at 112 px) and the
projection is marked as such: it is not what a GPU will see. tests/gpu/check.sh's CPU mode (a smoke run of
the same code) shrinks them further: --job-batch, --small-job-classes and --small-job-test.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torchvision
import yaml
from PIL import Image
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "workflow"), str(ROOT / "tests")]  # this checkout's library

from headstart.core.devices import autocast_for, pick_device, to_device  # noqa: E402
from headstart.core.tables import read_rows  # noqa: E402
from headstart.data.pixels import CropBatches, PixelCache, decode_images  # noqa: E402
from headstart.extract.features import CentreCrops, SplitOutputs, extract_split  # noqa: E402
from headstart.extract.models import save_source_weights, split_model  # noqa: E402
from headstart.finetune.classifiers import Classifier  # noqa: E402
from headstart.finetune.job import JobFiles, finetune_job, job_settings  # noqa: E402
from headstart.finetune.lockstep import (
    TensorBatches,
    batch_indices,
    crop_seeds,
    evaluate,
)  # noqa: E402
from headstart.heads.headfile import write_head  # noqa: E402
from headstart.heads.initial import xavier_head  # noqa: E402

import legacy_train  # noqa: E402

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RUNS = 7  # runs per job below the largest shot level: random, imprint, probe + 4 similarity inits at best K


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(function, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    function()
    sync(device)
    return time.perf_counter() - start


def jpegs(folder: Path, n: int) -> list[str]:
    """n photo-like JPEGs of ImageNet size: smooth colour fields with texture, quality 90."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:375, 0:500]
    paths = []
    for i in range(n):
        a, b, c = rng.uniform(0.005, 0.05, 3)
        base = np.stack([np.sin(a * x + i), np.cos(b * y + i), np.sin(c * (x + y))], axis=-1) * 90 + 128
        image = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(image).save(path, quality=90)
        paths.append(str(path))
    return paths


def resnet101_parts():
    model = torchvision.models.resnet101().eval()
    return split_model(model, ["layer4"], "fc")


def make_job_inputs(
    work: Path,
    paths: list[str],
    classes: int,
    shots: int,
    test_per_class: int,
    resize: int,
    crop: int,
    device: torch.device,
    parts,
    batch: int,
) -> dict:
    """Manifest, decoded caches, extracted test activations and RUNS heads for one job; times the
    decode and extract stages."""
    rows = []
    for c in range(classes):
        for r in range(shots):
            rows.append({"image_id": f"tr{c}_{r}", "class_id": f"n{c:08d}", "split": "train", "rank": r})
        for r in range(test_per_class):
            rows.append({"image_id": f"te{c}_{r}", "class_id": f"n{c:08d}", "split": "test", "rank": r})
    manifest = pd.DataFrame(rows)
    manifest["path"] = [paths[i % len(paths)] for i in range(len(manifest))]
    timing = {}
    for split in ["train", "test"]:
        chosen = manifest[manifest["split"] == split]
        timing[f"decode_{split}"] = timed(
            lambda: decode_images(
                chosen["path"].tolist(),
                chosen["image_id"].tolist(),
                work / f"pixels_{split}.safetensors",
                resize,
                crop,
                centre_crop=split == "test",
                num_workers=min(8, torch.get_num_threads()),
            ),
            device,
        )
        timing[f"decode_{split}_images"] = len(chosen)
    timing["extract"] = timed(
        lambda: extract_split(
            parts,
            work / "pixels_test.safetensors",
            CentreCrops(crop, MEAN, STD, batch, device),
            [str(i) for i in range(parts.head.out_features)],
            SplitOutputs(work / "logits_test.parquet", work / "features_test.safetensors"),
        ),
        device,
    )
    classes_frame = pd.DataFrame({"class_id": [f"n{c:08d}" for c in range(classes)]})
    heads = []
    for r in range(RUNS):
        weight, bias = xavier_head(classes, parts.head.in_features, r)
        heads.append(work / f"head{r}.safetensors")
        write_head(heads[-1], {"weight": weight, "bias": bias}, f"m{r}", "0", classes_frame["class_id"].tolist())
    return {"manifest": manifest, "classes": classes_frame, "heads": heads, "timing": timing}


def run_job(
    work: Path,
    inputs: dict,
    shots: int,
    iterations: int,
    eval_every: int,
    batch: int,
    resize: int,
    crop: int,
    device: torch.device,
    tag: str,
) -> float:
    entry = {
        "library": "torchvision",
        "arch": "resnet101",
        "weights": {"path": str(work / "resnet101.pth")},
        "trainable": ["layer4"],
        "head": "fc",
    }
    weights = work / "resnet101.safetensors"  # the model_weights rule's file, which every job reads
    if not weights.exists():
        save_source_weights(entry, weights, "resnet101")
    options = {
        "train": "last_stage",
        "augment": True,
        "iterations": iterations,
        "eval_every": eval_every,
        "batch_size": batch,
        "dropout": 0.75,
        "optimizer": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8},
    }
    return timed(
        lambda: finetune_job(
            JobFiles(
                heads=inputs["heads"],
                features_train=work / "features_test.safetensors",
                features_test=work / "features_test.safetensors",
                # as validation split too: the preset evaluates both, same size
                features_val=work / "features_test.safetensors",
                pixels_train=work / "pixels_train.safetensors",
                weights=weights,
                curves=work / f"{tag}.parquet",
            ),
            inputs["manifest"],
            inputs["classes"],
            shots,
            job_settings(options, 0, 1, entry, {"resize": resize, "crop": crop}, device),
        ),
        device,
    )


def legacy_job(paths, labels, test_paths, test_labels, parts, runs: int, settings, resize, crop, device, work) -> float:
    """The old way: one process per run, PIL decoding per batch, whole-network evaluation, whole-model checkpoints."""
    import copy

    def all_runs():
        for r in range(runs):
            weight, bias = xavier_head(int(labels.max()) + 1, parts.head.in_features, r)
            trainable = copy.deepcopy(parts.trainable)
            for p in trainable.parameters():
                p.requires_grad_(True)
            model = legacy_train.Classifier(parts.trunk, trainable, weight, bias, 0.75)
            train = legacy_train.ImageInputs(paths, resize, crop, MEAN, STD, augment=True)
            test = legacy_train.ImageInputs(test_paths, resize, crop, MEAN, STD, augment=False)
            legacy_train.finetune(
                model,
                train,
                labels,
                test,
                test_labels,
                [str(c) for c in range(int(labels.max()) + 1)],
                settings,
                device,
                checkpoint=work / f"legacy{r}.pt",
            )
            (work / f"legacy{r}.pt").unlink(missing_ok=True)

    return timed(all_runs, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=8, help="GPUs of the cluster, for the wall-time projection")
    parser.add_argument("--iterations", type=int, default=None, help="steps of the timed job (default: 200 GPU, 2 CPU)")
    parser.add_argument(
        "--test-images", type=int, default=None, help="test images of the timed job (default: 9000 GPU, 64 CPU)"
    )
    parser.add_argument(
        "--lever-batch", type=int, default=None, help="batch of the step lever (default: 64 GPU, 16 CPU)"
    )
    parser.add_argument(
        "--small-job-iterations",
        type=int,
        default=None,
        help="steps of the levers' whole small job (default: 100 GPU, 20 CPU; evaluations every half of them)",
    )
    parser.add_argument(
        "--job-batch",
        type=int,
        default=None,
        help="batch of the timed job (default: the preset's); its steps are projected to the preset's batch",
    )
    parser.add_argument(
        "--small-job-classes", type=int, default=10, help="classes of the levers' whole small job (default 10)"
    )
    parser.add_argument(
        "--small-job-test", type=int, default=8, help="test images per class of the levers' whole small job (default 8)"
    )
    args = parser.parse_args()
    device = pick_device("auto")
    gpu = device.type == "cuda"
    iterations = args.iterations or (200 if gpu else 2)
    test_images = args.test_images or (9000 if gpu else 64)
    lever_batch = args.lever_batch or (64 if gpu else 16)
    preset = yaml.safe_load((ROOT / "workflow/presets/paper.yaml").read_text())
    finetune, split = preset["finetune"], preset["split"]
    resize, crop, batch = preset["preprocess"]["resize"], preset["preprocess"]["crop"], finetune["batch_size"]
    job_batch = args.job_batch or batch
    n_classes = len((ROOT / preset["dataset"]["classes"]).read_text().split())
    name = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    mark = "" if gpu else "   [CPU projection: not what a GPU will see]"
    print(f"device: {name}; torch {torch.__version__}")
    work = Path(tempfile.mkdtemp())
    parts = resnet101_parts()
    torch.save(torchvision.models.resnet101().state_dict(), work / "resnet101.pth")
    paths = jpegs(work / "jpegs", 256)

    # ---- 1. one real job of the preset's shape, end to end -----------------------------------
    test_per_class = max(1, test_images // n_classes)
    shots = 5  # the training set's size does not change a step's cost: every step is one batch of 64
    inputs = make_job_inputs(
        work, paths, n_classes, shots, test_per_class, resize, crop, device, parts, 64 if gpu else 16
    )
    job = run_job(work, inputs, shots, iterations, iterations, job_batch, resize, crop, device, "job")
    test_cache = read_rows(work / "features_test.safetensors", "trunk", device)
    labels = np.arange(len(test_cache)) % n_classes
    classifiers = [Classifier(parts.trainable, *xavier_head(n_classes, 2048, r), 0.75).to(device) for r in range(RUNS)]
    one_eval = timed(
        lambda: [evaluate(c, TensorBatches(test_cache, device), labels, n_classes) for c in classifiers], device
    )
    timing = inputs["timing"]
    evaluations = finetune["iterations"] // finetune["eval_every"] + 1
    step = max(job - 2 * one_eval, 0) / iterations  # start-up and checkpoints counted as steps: an overestimate
    step_preset = step * batch / job_batch  # a smaller batch than the preset's: its step scaled (an estimate)
    eval_9000 = one_eval * (n_classes * split["test_per_class"]) / len(test_cache)
    print(
        f"\n1. one fine-tuning job, the preset's runs and crops ({RUNS} runs in lockstep, batch {job_batch}, {resize}->{crop} random "
        f"crops), {iterations} steps + 2 evaluations on {len(test_cache)} cached test activations: {job:.1f} s"
    )
    scaled = (
        ""
        if job_batch == batch
        else f"   (measured at batch {job_batch}, scaled to the preset's {batch}, start-up too: an overestimate)"
    )
    print(f"   per step (7 runs, one trunk pass)   {step_preset:8.3f} s{scaled}")
    print(f"   one evaluation of 7 runs / 9000 img {eval_9000:8.2f} s   (measured on {len(test_cache)})")
    decode_rate = (timing["decode_train_images"] + timing["decode_test_images"]) / (
        timing["decode_train"] + timing["decode_test"]
    )
    extract_rate = len(test_cache) / timing["extract"]
    print(
        f"   decode stage                        {decode_rate:8.1f} images/s (CPU, {min(8, torch.get_num_threads())} processes)"
    )
    print(f"   extract stage (ResNet-101, to disk) {extract_rate:8.1f} images/s")
    images_total = n_classes * (max(finetune["shots"]) + split["val_per_class"] + split["test_per_class"])
    jobs = len(finetune["shots"]) * len(finetune["seeds"])
    per_level_runs = {s: 3 + 4 * (2 if s == max(finetune["shots"]) else 1) for s in finetune["shots"]}
    job_hours = {
        s: (finetune["iterations"] * step_preset * r / RUNS + evaluations * eval_9000 * r / RUNS) / 3600
        for s, r in per_level_runs.items()
    }  # a step's runs part scales with the runs; the trunk pass does not: an overestimate
    gpu_hours = images_total / extract_rate / 3600 + sum(job_hours[s] for s in finetune["shots"]) * len(
        finetune["seeds"]
    )
    wall = images_total / extract_rate / 3600 + math.ceil(jobs / args.devices) * max(job_hours.values())
    print(
        f"   paper preset: decode {images_total} images: {images_total / decode_rate / 3600:.2f} CPU-h on the cores above; "
        f"extract: {images_total / extract_rate / 3600:.2f} h{mark}"
    )
    print(
        f"   paper preset: {jobs} jobs (shot level x seed), {job_hours[max(finetune['shots'])]:.2f} h per job at "
        f"{max(finetune['shots'])} shots ({per_level_runs[max(finetune['shots'])]} runs), "
        f"{job_hours[min(finetune['shots'])]:.2f} h below ({RUNS} runs){mark}"
    )
    print(
        f"   paper preset: {gpu_hours:.1f} device-hours in all (goal on one H100: <= 3); "
        f"{wall:.1f} h wall on {args.devices} devices{mark}"
    )

    # ---- 2. the levers, old against new ---------------------------------------------------------
    print("\n2. levers, old path (tests/legacy_train.py) vs new, measured one after the other in this run:")
    cache = PixelCache(work / "pixels_train.safetensors")
    legacy_images = legacy_train._SeededImages(
        inputs["manifest"].query("split == 'train'")["path"].tolist(), resize, crop, MEAN, STD, augment=True
    )
    batches = CropBatches(cache, range(len(cache)), crop, MEAN, STD, device, True, batch)
    n = len(cache)

    def old_batch(t):
        indices = batch_indices(n, batch, 0, t)
        return to_device(
            torch.stack([legacy_images[(int(i), s)] for i, s in zip(indices, crop_seeds(0, t, indices), strict=True)]),
            device,
        )

    def new_batch(t):
        indices = batch_indices(n, batch, 0, t)
        return batches.batch(indices, crop_seeds(0, t, indices))

    old = min(timed(lambda: old_batch(t), device) for t in range(3))
    new = min(timed(lambda: new_batch(t), device) for t in range(3))
    print(
        f"   building a batch of {batch} ({resize}->{crop}): PIL decode {old * 1000:7.1f} ms, "
        f"pixel cache {new * 1000:6.1f} ms: {old / new:6.1f}x (goal >= 10x; the old path had loader workers, one core each)"
    )

    test_paths = inputs["manifest"].query("split == 'test'")["path"].tolist()
    whole = legacy_train.Classifier(parts.trunk, parts.trainable, *xavier_head(n_classes, 2048, 0), 0.75).to(device)
    test_images_old = legacy_train.ImageInputs(test_paths, resize, crop, MEAN, STD, augment=False)
    old = timed(lambda: legacy_train.evaluate(whole, test_images_old, labels, n_classes, device), device)
    new = timed(lambda: evaluate(classifiers[0], TensorBatches(test_cache, device), labels, n_classes), device)
    print(
        f"   one evaluation ({len(test_cache)} test images): whole network {old:7.2f} s, cached activations "
        f"{new:6.3f} s: {old / new:6.1f}x (goal >= 5x)"
    )

    images = new_batch(0)[:lever_batch]
    targets = torch.as_tensor(np.arange(lever_batch) % n_classes, device=device)
    settings = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    import copy

    models = [
        Classifier(copy.deepcopy(parts.trainable).train(), *xavier_head(n_classes, 2048, r), 0.75)
        .to(device)
        .to(memory_format=torch.channels_last)
        for r in range(RUNS)
    ]
    optimizers = [torch.optim.Adam(m.parameters(), **settings) for m in models]
    trunk = parts.trunk.to(device).to(memory_format=torch.channels_last)

    def run_step(model, optimizer, hidden):
        with autocast_for(device):
            loss = nn.functional.cross_entropy(model(hidden).float(), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def separate():
        for model, optimizer in zip(models, optimizers, strict=True):
            with torch.no_grad(), autocast_for(device):
                hidden = trunk(images)
            run_step(model, optimizer, hidden)

    def shared():
        with torch.no_grad(), autocast_for(device):
            hidden = trunk(images)
        for model, optimizer in zip(models, optimizers, strict=True):
            run_step(model, optimizer, hidden)

    shared()  # warm-up (Adam's state, kernels)
    rounds = [(timed(separate, device), timed(shared, device)) for _ in range(2)]
    old, new = min(r[0] for r in rounds), min(r[1] for r in rounds)
    print(
        f"   one step of {RUNS} runs (batch {lever_batch}, {crop} px): {RUNS} separate {old:7.2f} s, one shared trunk "
        f"pass {new:6.2f} s: {old / new:6.2f}x (goal >= 2.5x on the CPU)"
    )

    # a whole paper-shaped job on a small config: --small-job-classes x 5 images, 128 -> 112 px; on a GPU the preset's size
    small = dict(
        classes=args.small_job_classes,
        shots=5,
        test=args.small_job_test,
        resize=128 if not gpu else resize,
        crop=112 if not gpu else crop,
        batch=16 if not gpu else batch,
        iterations=args.small_job_iterations or (20 if not gpu else 100),
        eval_every=max(1, (args.small_job_iterations or (20 if not gpu else 100)) // 2),
    )
    small_work = work / "small"
    small_work.mkdir()
    torch.save(torchvision.models.resnet101().state_dict(), small_work / "resnet101.pth")
    start = time.perf_counter()
    small_inputs = make_job_inputs(
        small_work,
        paths,
        small["classes"],
        small["shots"],
        small["test"],
        small["resize"],
        small["crop"],
        device,
        resnet101_parts(),
        small["batch"],
    )
    new_job = run_job(
        small_work,
        small_inputs,
        small["shots"],
        small["iterations"],
        small["eval_every"],
        small["batch"],
        small["resize"],
        small["crop"],
        device,
        "small",
    )
    new_total = time.perf_counter() - start
    manifest = small_inputs["manifest"]
    train_rows, test_rows = manifest.query("split == 'train'"), manifest.query("split == 'test'")
    class_label = {c: i for i, c in enumerate(small_inputs["classes"]["class_id"])}
    old_settings = legacy_train.TrainSettings(
        iterations=small["iterations"],
        eval_every=small["eval_every"],
        checkpoint_every=1,
        batch_size=small["batch"],
        dropout=0.75,
        seed=0,
        **settings,
    )
    old_job = legacy_job(
        train_rows["path"].tolist(),
        train_rows["class_id"].map(class_label).to_numpy(),
        test_rows["path"].tolist(),
        test_rows["class_id"].map(class_label).to_numpy(),
        resnet101_parts(),
        RUNS,
        old_settings,
        small["resize"],
        small["crop"],
        device,
        small_work,
    )
    print(
        f"   a whole paper-shaped job ({RUNS} runs, {small['classes']} classes x {small['shots']} images, "
        f"{small['resize']}->{small['crop']} px, batch {small['batch']}, {small['iterations']} steps, evaluations "
        f"every {small['eval_every']} on {len(test_rows)} images): old {old_job:.1f} s, new {new_job:.1f} s "
        f"({new_total:.1f} s with its decode and extract stages): {old_job / new_job:.1f}x "
        f"({old_job / new_total:.1f}x) (goal >= 3x on the CPU)"
    )


if __name__ == "__main__":
    main()

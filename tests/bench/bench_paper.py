"""Benchmark (not a test): the paper preset's cost, measured on this machine and projected.

    .venv/bin/python tests/bench/bench_paper.py [--batch 16] [--iterations 2]

Times ResNet-101 (the preset's network; random weights: speed does not depend on them) on the
device at hand: extraction images/s (channels_last, bf16 autocast on CUDA) and one fine-tuning
iteration of layer4 + fc through the frozen trunk (batch 64, 224 px). Then projects the preset's
whole cost from the preset's own numbers (classes, shots, seeds, iterations, eval_every). On a CPU
the projection is printed, but marked as such: it is not what a GPU cluster will see.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torchvision
import yaml
from torch import nn

from headstart.extract import autocast_for, to_device
from headstart.heads import xavier_head
from headstart.models import pick_device, split_model
from headstart.train import Classifier

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=None, help="extraction batch (default: 16 on CPU, 256 on GPU)")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--devices", type=int, default=8, help="GPUs of the cluster, for the wall-time projection")
    args = parser.parse_args()
    preset = yaml.safe_load((ROOT / "workflow/presets/paper.yaml").read_text())
    device = pick_device("auto")
    batch = args.batch or (256 if device.type == "cuda" else 16)
    model = torchvision.models.resnet101().eval()
    parts = split_model(model, ["layer4"], "fc")
    net = nn.Sequential(parts.trunk, parts.trainable, parts.head).to(device).to(memory_format=torch.channels_last)
    x = to_device(torch.randn(batch, 3, 224, 224), device)
    with torch.inference_mode(), autocast_for(device):
        net(x)
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sync()
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < 5 or done < 2 * batch:
            net(x)
            done += batch
        sync()
        extraction = done / (time.perf_counter() - start)

    weight, bias = xavier_head(90, 2048, 0)
    classifier = Classifier(parts.trunk, parts.trainable, weight, bias, 0.75).to(device)
    for p in classifier.trainable.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam([p for p in classifier.parameters() if p.requires_grad], lr=1e-3)
    images = to_device(torch.randn(64, 3, 224, 224), device)
    labels = torch.randint(0, 90, (64,), device=device)
    classifier.train()
    timings = []
    for _ in range(args.iterations + 1):
        start = time.perf_counter()
        with autocast_for(device):
            loss = nn.functional.cross_entropy(classifier(images).float(), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sync()
        timings.append(time.perf_counter() - start)
    iteration = sum(timings[1:]) / len(timings[1:])  # the first one warms up

    finetune, split = preset["finetune"], preset["split"]
    n_classes = len((ROOT / preset["dataset"]["classes"]).read_text().split())
    images_extracted = n_classes * (max(finetune["shots"]) + split["val_per_class"] + split["test_per_class"])
    similarity_methods = [m for m in finetune["methods"] if m not in ("random", "imprint", "probe")]
    jobs = 3 * len(finetune["shots"]) + len(similarity_methods) * (len(finetune["shots"]) + 1)
    runs = jobs * len(finetune["seeds"])
    evaluations = finetune["iterations"] // finetune["eval_every"] + 1
    eval_images = n_classes * split["test_per_class"]
    run_seconds = finetune["iterations"] * iteration + evaluations * eval_images / extraction
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    mark = "" if device.type == "cuda" else "   [CPU projection: not what a GPU cluster will see]"
    print(f"device: {name}")
    print(f"ResNet-101 extraction          {extraction:8.1f} images/s (batch {batch}, 224 px)")
    print(f"ResNet-101 layer4+fc training  {1 / iteration:8.3f} iterations/s (batch 64, through the frozen trunk)")
    print(f"paper preset: extraction of {images_extracted} images: {images_extracted / extraction / 3600:.2f} h{mark}")
    # Every shot level trains the same number of batches of 64 and evaluates on the same test split,
    # so a run costs the same at 500 and at 1 image per class; only the train set differs.
    seeds = len(finetune["seeds"])
    print(f"paper preset, one fine-tuning job per (method, K, shot level), {seeds} seeds in sequence{mark}:")
    print("  shots  train images  iterations  evaluations  per run (h)  per job (h)")
    for shots in finetune["shots"]:
        print(f"  {shots:5d}  {n_classes * shots:12d}  {finetune['iterations']:10d}  {evaluations:11d}  "
              f"{run_seconds / 3600:11.2f}  {seeds * run_seconds / 3600:11.2f}")
    job_seconds = seeds * run_seconds
    wall = images_extracted / extraction + math.ceil(jobs / args.devices) * job_seconds
    print(f"paper preset: {jobs} fine-tuning jobs x {seeds} seeds = {runs} runs: "
          f"{runs * run_seconds / 3600:.0f} device-hours; on {args.devices} devices "
          f"{wall / 3600:.0f} h wall (extraction, then ceil({jobs}/{args.devices}) rounds of jobs){mark}")

if __name__ == "__main__":
    main()

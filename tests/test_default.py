"""The README's first command on the default config, run as typed in a fresh copy of the repository (the
second set: `pytest -m slow`): the answer it prints is the README's, within the seeds' intervals, and it
exports a classifier."""

from __future__ import annotations

import json
import shlex

import pytest

from conftest import EXP, ROOT, assert_answer_as_in_readme, copy_repository, planned_jobs, readme_block, snakemake

pytestmark = pytest.mark.slow


def readme_snakemake_command() -> list[str]:
    """The Snakemake part of the README's first command (`bash envs/install.sh && .venv/bin/snakemake ...`)."""
    line = next(line for line in (ROOT / "README.md").read_text().splitlines() if "&& .venv/bin/snakemake" in line)
    return shlex.split(line.split("&&")[1])


def test_the_readmes_command_gives_the_readmes_answer(tmp_path):
    repo = copy_repository(tmp_path / "repo")
    command = readme_snakemake_command()
    assert command[0] == ".venv/bin/snakemake"
    snakemake(repo, *command[1:])
    assert_answer_as_in_readme(repo / EXP, readme_block("answer:head"))
    card = json.loads((repo / EXP / "export/card.json").read_text())
    assert card["shots"] == 500 and len(card["classes"]) == 10
    assert planned_jobs(snakemake(repo, *command[1:], "-n")) == {}

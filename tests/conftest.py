"""Shared fixtures: the repository root, a loopback HTTP server, a tiny-workflow copy of the repo."""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "workflow" / "data" / "paper"


@pytest.fixture
def http_root(tmp_path):
    """(directory, base URL) of an http.server on 127.0.0.1 serving that directory."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests_seen: list[dict] = []  # each GET's headers, and its path under the key ':path'

    def do_GET(self):  # noqa: N802 - http.server's name
        QuietHandler.requests_seen.append({**self.headers, ":path": self.path})
        super().do_GET()

    def log_message(self, *args):
        pass


def copy_repository(dest: Path) -> Path:
    """A fresh copy of the tracked files (as a clone would have), sharing this checkout's .venv."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TINY = ["--configfile", "tests/data/tiny.yaml"]
RUN = "results/fashion_mnist/efficientnet_lite0"
EXP = f"{RUN}/head"  # config.yaml's experiment: its runs, curves, figures and tables


def snakemake(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [SNAKEMAKE, *args], cwd=repo, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts per rule from a run's 'Job stats' table ({} when nothing is to be done).

    The action-less target rule `all` is left out: Snakemake lists it whenever any of its inputs
    is rebuilt, even for a run asked for one file.
    """
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not match or match.group(1) == "total":
            if counts:
                break
            continue
        counts[match.group(1)] = int(match.group(2))
    counts.pop("all", None)
    return counts


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    repo = copy_repository(tmp_path_factory.mktemp("repo"))
    snakemake(repo, "--cores", "2", *TINY)
    return repo


def readme_block(name: str) -> str:
    """The README's generated block ``name`` (see headstart.report.docs)."""
    readme = (ROOT / "README.md").read_text()
    return readme.split(f"<!-- generated: {name} -->")[1].split("<!-- /generated -->")[0]


def markdown_table(text: str) -> pd.DataFrame:
    """The first Markdown table in ``text``, its cells as strings, indexed by its first column."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]
    return pd.DataFrame(rows, columns=header).set_index(header[0])


def mean_and_interval(cell: str) -> tuple[float, float]:
    """'0.87 ± 0.01' or '+0.04 ± 0.01' -> (0.87, 0.01); a cell without an interval -> (value, 0)."""
    mean, _, half = cell.partition("±")
    return float(mean), float(half) if half.strip() else 0.0


def assert_answer_as_in_readme(experiment: Path, block: str) -> None:
    """A fresh run's answer (``experiment``'s curves) against the README's table ``block``, within the seeds'
    intervals the table prints. The README's numbers come from one CPU; another rounds float sums otherwise
    and moves every score a little, less than the spread over seeds. So, per shot level:
    - the README's best method on validation (either of a tie) is this run's best, or level with it: the
      95% Student-t interval of its paired per-seed validation margin behind this run's best includes 0;
    - its test macro F, and its margin over random, lie within the README's interval of them, widened by
      0.01 for the printed rounding (two decimals each of the mean and the half-width; a fixed head's
      '± 0.00' is then 0.01).
    A difference beyond that is not float rounding: the answer changed."""
    from headstart.report.statistics import answer_runs, label, mean_ci

    expected = markdown_table(block)
    summary = answer_runs(pd.read_parquet(experiment / "curves.parquet"))
    names = {label(method): method for method in summary["method"].unique()}
    shot_levels = [int(row.split()[0]) for row in expected.index]  # '0 (class names only)' is level 0
    assert sorted(shot_levels) == sorted(summary["shots"].unique().tolist())
    for row, shots in zip(expected.index, shot_levels, strict=True):
        level = summary[summary["shots"] == shots]
        validation = level.pivot_table(index="seed", columns="method", values="val_selected")
        test = level.pivot_table(index="seed", columns="method", values="selected")
        best = validation.mean().idxmax()
        cell = expected.at[row, "best init (on validation)"]
        readme_best = [names[name] for name in cell.removeprefix("tie: ").split(" / ")]
        behind = {m: mean_ci((validation[best] - validation[m]).to_numpy()) for m in readme_best}
        assert any(m == best or margin == 0 or margin <= half for m, (margin, half) in behind.items()), (
            f"{row}: the README's best on validation {readme_best} is behind this run's {best} by {behind}"
        )
        method = readme_best[0]  # the method whose test scores the row prints
        for column, values in [
            ("test macro F", test[method]),
            ("test margin over random", test[method] - test["random"]),
        ]:
            printed, half = mean_and_interval(expected.at[row, column])
            measured = float(values.mean())
            assert abs(measured - printed) <= half + 0.01, f"{row}, {column}: {measured:.4f}, README {printed} ± {half}"

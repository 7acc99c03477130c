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

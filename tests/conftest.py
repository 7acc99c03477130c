"""Shared fixtures: the repository root, a loopback HTTP server, a tiny-workflow copy of the repo."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
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
    requests_seen: list[dict] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        QuietHandler.requests_seen.append(dict(self.headers))
        super().do_GET()

    def log_message(self, *args):
        pass


def copy_repository(dest: Path) -> Path:
    """A fresh copy of the tracked files (as a clone would have), sharing this checkout's .venv."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    for name in files:
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest

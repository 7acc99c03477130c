"""Logging for workflow scripts: to the rule's log file and to stderr, warnings included."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from .errors import HeadstartError


def attempts_log(log_path: str | Path) -> Path:
    """Where every attempt of a retried job is logged, one after the other: ``<log>.attempts.log`` beside the
    rule's log, which Snakemake removes before it runs a job again (a retry, or a rerun after a kill)."""
    path = Path(log_path)
    return path.with_name(path.stem + ".attempts.log")


def setup_logging(
    log_path: str | Path | None, level: int = logging.INFO, keep_attempts: bool = False
) -> logging.Logger:
    """Log to stderr and to the rule's log file, appended to, each attempt under a line naming its process
    and host. With ``keep_attempts`` (the jobs Snakemake retries), also to :func:`attempts_log`, which
    keeps every attempt's log."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a"))
        if keep_attempts:
            handlers.append(logging.FileHandler(attempts_log(log_path), mode="a"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)
    logger = logging.getLogger("headstart")
    logger.info("--- attempt: pid %d on %s ---", os.getpid(), socket.gethostname())

    def log_uncaught(kind, error, traceback):  # the rule's log must say why the job failed
        if isinstance(error, HeadstartError):  # says what to do: one line, no traceback
            logger.critical("%s", error)  # the logger's name is the line's "headstart:" already
        else:
            logger.critical("%s: %s", kind.__name__, error, exc_info=(kind, error, traceback))

    sys.excepthook = log_uncaught
    return logger

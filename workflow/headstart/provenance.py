"""Which library code a job runs, so that a change to it reruns the job.

Snakemake reruns a job when its ``script:`` file changes, but the decisions live in the library the script
imports. :func:`code_hash` hashes the script together with every ``headstart`` module it imports, directly or
through other modules (imports inside functions included); a rule passes it as a param, and Snakemake reruns
the job when it changes — and only then.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "headstart"


def imported_modules(source: str, package: str = PACKAGE, current: str | None = None) -> set[str]:
    """The ``package`` modules (dotted names) that ``source`` imports anywhere in its body; ``current`` is
    the module's own name, for relative imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == package}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y, inside the package
                base = (current or package).split(".")[: -node.level] or [package]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.split(".")[0] != package:
                continue
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}  # from headstart import heads
    return found


def library_closure(script: Path, library: Path) -> list[Path]:
    """The files of the library (the ``headstart`` folder ``library``) that ``script`` runs, sorted."""
    seen: dict[str, Path] = {}
    pending = list(imported_modules(Path(script).read_text()))
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        path = library.joinpath(*name.split(".")[1:]).with_suffix(".py")
        if name == PACKAGE:
            path = library / "__init__.py"
        if not path.is_file():  # a name imported from a module (a function or class), not a module
            continue
        seen[name] = path
        pending += imported_modules(path.read_text(), current=name)
    return sorted(seen.values())


def code_hash(script: Path, library: Path) -> str:
    """A hash of ``script`` and the library files it runs (names and contents)."""
    digest = hashlib.sha256()
    for path in [Path(script), *library_closure(script, library)]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]

"""Which library code a job runs, so that a change to it reruns the job.

Snakemake reruns a job when its ``script:`` file changes, but the decisions live in the library the script
imports. :func:`code_hash` hashes the script together with every ``headstart`` module it imports, directly or
through other modules (imports inside functions included), and the package's ``__init__.py``, which every
import of the package runs; a rule passes it as a param, and Snakemake reruns the job when it changes — and
only then. Imports that never run in a job are not counted: those under ``if TYPE_CHECKING:`` (type
checkers only) and under ``if __name__ == "__main__":`` (a module run as a command).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "headstart"


def _never_run(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:`` or ``if __name__ == "__main__":``: a block no job runs."""
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test).replace("'", '"')
    return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING", '__name__ == "__main__"')


# imports are statements: the walk enters statements (and the except and case clauses that hold them), never
# expressions, a tenth of a module's nodes
_HOLDS_STATEMENTS = (ast.stmt, ast.excepthandler, ast.match_case)


def _run_nodes(tree: ast.AST):
    """Every statement of ``tree`` except those inside (the body of) a block no job runs."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, _HOLDS_STATEMENTS):
                continue
            if _never_run(child):
                pending += [*child.orelse]  # the else branch runs
                continue
            pending.append(child)


def imported_modules(source: str, package: str = PACKAGE, current: str | None = None) -> set[str]:
    """The ``package`` modules (dotted names) that ``source`` imports anywhere in its body, except in blocks
    that never run in a job (``if TYPE_CHECKING:``, ``if __name__ == "__main__":``); ``current`` is the
    module's own name, for relative imports."""
    return set(_imported_modules(source, package, current))


# keyed by the source text itself, so never stale: each module is parsed once per Snakefile parse, not once
# per rule that runs it (the parse was half of a no-op run's time)
@functools.cache
def _imported_modules(source: str, package: str, current: str | None) -> frozenset[str]:
    found = set()
    for node in _run_nodes(ast.parse(source)):
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
    return frozenset(found)


def library_closure(script: Path, library: Path) -> list[Path]:
    """The files of the library (the ``headstart`` folder ``library``) that ``script`` runs, sorted."""
    seen: dict[str, Path] = {}
    pending = list(imported_modules(Path(script).read_text()))
    if pending:  # importing any module of the package runs its __init__.py first
        pending.append(PACKAGE)
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


def rule_scripts(rules_dir: Path) -> dict[str, str]:
    """Each rule of the workflow's ``*.smk`` files -> the script it runs (its name without ``.py``); a rule
    made by ``use rule A as B`` runs A's script."""
    import re

    scripts: dict[str, str] = {}
    derived: dict[str, str] = {}
    for smk in sorted(Path(rules_dir).glob("*.smk")):
        rule = None
        for line in smk.read_text().splitlines():
            if match := re.match(r"rule (\w+):", line):
                rule = match.group(1)
            elif match := re.match(r"use rule (\w+) as (\w+)", line):
                derived[match.group(2)] = match.group(1)
            elif rule and (match := re.match(r"""\s+["']\.\./scripts/(\w+)\.py["']""", line)):
                scripts[rule] = match.group(1)
    return scripts | {new: scripts[base] for new, base in derived.items() if base in scripts}


def rerun_table(workflow_dir: Path) -> str:
    """A Markdown table: each library module -> the rules whose jobs rerun when it changes."""
    workflow_dir = Path(workflow_dir)
    library = workflow_dir / "headstart"
    rules: dict[str, list[str]] = {path.name: [] for path in sorted(library.glob("*.py"))}
    for rule, script in sorted(rule_scripts(workflow_dir / "rules").items()):
        for path in library_closure(workflow_dir / "scripts" / f"{script}.py", library):
            rules[path.name].append(rule)
    lines = ["| edit `workflow/headstart/…` | reruns the jobs of |", "|:--|:--|"]
    for name, names in rules.items():
        lines.append(f"| `{name}` | {', '.join(f'`{rule}`' for rule in names) or 'no job (not run by the workflow)'} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m headstart.provenance PAGE: regenerate PAGE's "reruns" block
    import sys

    from .docs import splice

    page = Path(sys.argv[1])
    page.write_text(splice(page.read_text(), "reruns", rerun_table(Path(__file__).resolve().parents[1])))

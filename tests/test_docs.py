"""Every command the README and the docs pages show works as typed: its program exists where the line says
(a fresh install puts nothing on PATH but .venv/bin), its files and modules exist, and Snakemake commands
dry-run. A command that cannot work fails here, not in a user's shell."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from conftest import ROOT, copy_repository, snakemake

PAGES = [ROOT / "README.md", *sorted((ROOT / "workflow/docs").glob("*.md"))]
# files a command names that the user writes first (the docs show how), or that a run makes
USERS_FILES = {"mine.yaml", "myoverrides.yaml", "new_photos", "FOLDER", "IMAGES", "predictions.csv", "report.html"}
PROGRAMS = {"bash", "printf", "scontrol", "sbatch", "srun", "git", "apt-get", "export"}  # on PATH wherever the docs say


def commands(page) -> list[str]:
    """The shell lines of ``page``: each line of a bash block, and each inline code span that starts with a
    program (a path, an environment assignment, or one of PROGRAMS)."""
    text = page.read_text()
    found = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, re.S):
        found += [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
    for span in re.findall(r"`([^`\n]+)`", text):
        first = span.split()[0] if span.split() else ""
        if re.match(r"^(\.venv/bin/|[A-Z_]+=|python|pytest|snakemake$)", first) or first in PROGRAMS:
            found.append(span)
    return found


def simple_commands(line: str) -> list[list[str]]:
    """The commands of a line (split at &&, ||, ; and |), each without its environment assignments."""
    parts = re.split(r"\s*(?:&&|\|\||;|\|)\s*", line)
    words = [shlex.split(part) for part in parts if part.strip()]
    return [
        [w for i, w in enumerate(cmd) if not (re.match(r"^[A-Z_]+=", w) and all("=" in x for x in cmd[:i]))]
        for cmd in words
    ]


ALL = [(page.relative_to(ROOT).as_posix(), line) for page in PAGES for line in commands(page)]


def test_the_docs_show_commands():
    assert len(ALL) > 15 and any(line.startswith(".venv/bin/snakemake") for _, line in ALL)


@pytest.mark.parametrize("page,line", ALL, ids=[f"{page}: {line[:60]}" for page, line in ALL])
def test_each_documented_command_can_run_as_typed(page, line):
    for command in simple_commands(line):
        program, args = command[0], command[1:]
        if program in PROGRAMS:
            if program == "bash":  # a script of this repository
                assert (ROOT / args[0]).is_file(), f"{page}: {line}: no {args[0]}"
            continue
        assert program.startswith(".venv/bin/"), f"{page}: {line}: {program} is on no PATH after envs/install.sh"
        assert program.removeprefix(".venv/bin/") in {"snakemake", "pytest", "python", "pip"}, line
        if program.endswith("python") and args[:1] == ["-m"]:
            module = ROOT / "workflow" / (args[1].replace(".", "/") + ".py")
            assert module.is_file() or args[1] in {"pytest"}, f"{page}: {line}: no module {args[1]}"
            assert "PYTHONPATH=workflow" in line or args[1] == "pytest", (
                f"{page}: {line}: the library is not on the path"
            )
        for word in args:
            if "/" in word and not word.startswith(("results/", "-")) and "=" not in word and "{" not in word:
                assert (ROOT / word).exists() or word.split("/")[0] in USERS_FILES, f"{page}: {line}: no {word}"


# A page may date a line only where it cites the paper (the line naming its title); generated blocks say
# where and when their run was measured, so they are left out of both checks below.
PAPER_TITLE = "Semantic and visual similarities for efficient knowledge transfer in CNN training"
DIARY = re.compile(r"\b20\d\d-\d\d-\d\d\b|\bVMs?\b")  # a date, or the machine a figure was measured on
MAX_CELL = 200


def prose_lines(page) -> list[tuple[int, str]]:
    """The lines of ``page`` (numbered from 1) outside its generated blocks (``<!-- generated: NAME -->`` to
    ``<!-- /generated -->``, written by headstart.report.docs from a run's files; markers left out)."""
    lines, generated = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if line.startswith("<!-- generated:"):
            assert not generated, f"{page.name}:{number}: a generated block inside another"
            generated = True
        elif line.startswith("<!-- /generated"):
            generated = False
        elif not generated:
            lines.append((number, line))
    assert not generated, f"{page.name}: a generated block without its end marker"
    return lines


def diary_lines(page) -> list[str]:
    """Lines of ``page`` outside generated blocks that name a date or a VM, other than the paper's citation."""
    return [
        f"{page.name}:{number}: {line.strip()[:120]}"
        for number, line in prose_lines(page)
        if DIARY.search(line) and PAPER_TITLE not in line
    ]


def long_cells(page) -> list[str]:
    """Markdown table cells of ``page`` over MAX_CELL characters, outside generated blocks and fenced code.
    A row is a line that starts with ``|``; its cells split where GitHub splits them, at each unescaped ``|``."""
    found, fenced = [], False
    for number, line in prose_lines(page):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith("|"):
            cells = (cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|")))
            found += [f"{page.name}:{number}: {len(c)} characters: {c[:80]}" for c in cells if len(c) > MAX_CELL]
    return found


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_pages_say_what_is_true_not_when_or_where_it_was_measured(page):
    """A reference page states what the code does: no date and no VM outside generated blocks."""
    found = diary_lines(page)
    assert not found, "dated or machine-named lines:\n" + "\n".join(found)


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_table_cells_read_as_tables(page):
    """A cell over MAX_CELL characters is a paragraph in a table: split the table, or make it a list."""
    found = long_cells(page)
    assert not found, f"cells over {MAX_CELL} characters:\n" + "\n".join(found)


def test_the_page_checks_see_what_they_must_and_only_that(tmp_path):
    page = tmp_path / "page.md"
    long, half, rest = "x" * (MAX_CELL + 1), "y" * 150, "z" * 100
    page.write_text(
        f"Pascal, Bost & Huet, *{PAPER_TITLE}*, 2019-06-01.\n"  # 1: the citation
        "<!-- generated: bench:default -->\n"
        f"Measured 2026-12-01 on a VM.\n| {long} |\n"  # 3, 4: generated
        "<!-- /generated -->\n"
        f"```\n| {long} |\n```\n"  # 7: code, not a table
        "A VMware guest, vm, VMS and 20261201 name no VM.\n"  # 9: 'name no VM'
        "Measured on 2026-11-29.\n"  # 10
        f"| short | {long} |\n"  # 11
        f"| {half} \\| {rest} |\n"  # 12: one cell, its pipe escaped
        f"| {half} | {rest} |\n"  # 13: two cells
    )
    assert [line.split(":")[1] for line in diary_lines(page)] == ["9", "10"]
    assert [line.split(":")[1] for line in long_cells(page)] == ["11", "12"]


SNAKEMAKE_LINES = sorted(
    {
        line
        for _, line in ALL
        if line.startswith(".venv/bin/snakemake")
        and not any(name in line for name in USERS_FILES)
        and "--unlock" not in line
        and "--report" not in line
    }
)


def test_every_documented_snakemake_command_dry_runs(tmp_path):
    """Dry-run in a fresh copy of the repository (the cluster's and conda's commands plan, they submit
    nothing); the paper preset needs its ImageNet-21k copy, so its plan is the paper test's."""
    repo = copy_repository(tmp_path / "repo")
    checked = 0
    for line in SNAKEMAKE_LINES:
        if "presets/paper.yaml" in line or ("conda" in line and not shutil.which("conda")):
            continue  # (conda's: for a user who has conda, as the page says)
        args = shlex.split(line)[1:]
        result = snakemake(repo, *args, "--dry-run", check=False)
        assert result.returncode == 0, f"{line}\n{(result.stdout + result.stderr)[-3000:]}"
        checked += 1
    assert checked >= 5

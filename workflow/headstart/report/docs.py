"""The README's and the docs pages' numbers come from a run's generated tables, never typed by hand:
each generated block sits between two markers and is replaced whole from the table file.

    PYTHONPATH=workflow .venv/bin/python -m headstart.report.docs README.md \
        answer:head=results/fashion_mnist/efficientnet_lite0/head/tables/answer.md

replaces what lies between ``<!-- generated: answer:head -->`` and ``<!-- /generated -->`` with the
file's Markdown table (its caption line left out: the page says what the table is).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


class DocsError(ValueError):
    """A page without the named block, or a table file without a table."""


def markdown_table(text: str) -> str:
    """The Markdown tables of a generated ``.md`` file: the lines from its first ``|``-line to its last (a
    caption before and notes after left out; what stands between two tables kept, so that they stay two)."""
    lines = text.splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    if not rows:
        raise DocsError("no Markdown table in the file")
    return "\n".join(lines[rows[0] : rows[-1] + 1])


def splice(page: str, name: str, content: str) -> str:
    """``page`` with the block ``name`` replaced by ``content``."""
    pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n)(.*?)(<!-- /generated -->)", re.S)
    if not pattern.search(page):
        raise DocsError(f"no block '<!-- generated: {name} -->' ... '<!-- /generated -->' in the page")
    return pattern.sub(lambda m: m.group(1) + content.rstrip("\n") + "\n" + m.group(3), page, count=1)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or any("=" not in arg for arg in argv[1:]):
        print(__doc__, file=sys.stderr)
        return 2
    page_path = Path(argv[0])
    page = page_path.read_text()
    for arg in argv[1:]:
        name, table_path = arg.split("=", 1)
        page = splice(page, name, markdown_table(Path(table_path).read_text()))
    page_path.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

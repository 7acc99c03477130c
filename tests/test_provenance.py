"""Which library code a job runs: the import closure of a script, by hand on a small package."""

import re
from pathlib import Path

from headstart.provenance import code_hash, imported_modules, library_closure, rerun_table

from conftest import ROOT


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_imports_absolute_relative_and_inside_functions():
    source = "import os\nfrom headstart.heads import x\nfrom . import tables\ndef f():\n    from .metrics import y\n"
    assert imported_modules(source, current="headstart.report") == {
        "headstart.heads",
        "headstart.heads.x",
        "headstart",
        "headstart.tables",
        "headstart.metrics",
        "headstart.metrics.y",
    }


def test_the_closure_follows_the_library_and_the_hash_changes_only_with_its_files(tmp_path):
    library = tmp_path / "headstart"
    write(library / "__init__.py", "")
    write(library / "a.py", "from .b import g\n")
    write(library / "b.py", "def g():\n    from . import c\n")
    write(library / "c.py", "X = 1\n")
    write(library / "unrelated.py", "Y = 2\n")
    script = write(tmp_path / "job.py", "import numpy\nfrom headstart.a import g\n")
    # (`from . import c` runs the package's __init__ too)
    assert [p.name for p in library_closure(script, library)] == ["__init__.py", "a.py", "b.py", "c.py"]
    before = code_hash(script, library)
    write(library / "unrelated.py", "Y = 3\n")
    assert code_hash(script, library) == before  # a module the job does not run
    write(library / "c.py", "X = 2\n")
    assert code_hash(script, library) != before  # one it runs, two imports away


def test_the_workflows_heads_jobs_run_heads_and_extraction_does_not():
    scripts, library = ROOT / "workflow/scripts", ROOT / "workflow/headstart"
    names = lambda script: {p.name for p in library_closure(scripts / f"{script}.py", library)}  # noqa: E731
    assert "heads.py" in names("heads_similarity") and "heads.py" not in names("extract")
    assert "report.py" in names("fig3") and "report.py" not in names("finetune")


def test_blocks_no_job_runs_are_not_counted_and_the_package_init_is(tmp_path):
    library = tmp_path / "headstart"
    write(library / "__init__.py", "")
    guarded = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\nelse:\n    from .c import C\n"
    write(library / "a.py", guarded)
    write(library / "b.py", "B = 1\n")
    write(library / "c.py", "C = 1\n")
    write(library / "d.py", "if __name__ == '__main__':\n    from .b import B\n")
    script = write(tmp_path / "job.py", "from headstart.a import x\nfrom headstart.d import y\n")
    assert [p.name for p in library_closure(script, library)] == ["__init__.py", "a.py", "c.py", "d.py"]


def test_module_boundaries_follow_what_each_job_runs():
    """Issue 26.3: an edit reruns the jobs that run the edited code, and only those."""
    rules = {}
    for line in rerun_table(ROOT / "workflow").splitlines()[2:]:
        module, jobs = line.strip("| ").split(" | ")
        rules[module.strip("`")] = set(re.findall(r"`(\w+)`", jobs))
    assert rules["data.py"] == {"dataset", "download_archive", "download_fashion_mnist"}  # ingestion only
    assert not {"extract", "finetune", "split", "decode"} & rules["data.py"]
    assert rules["predict.py"] == set() and rules["config.py"] == set()  # the command, the config check
    assert rules["export.py"] == {
        "export",
        "export_untrained",
    }  # fine-tuning writes candidates without the export's code
    assert rules["selection.py"] == {"finetune", "finetune_export"}
    assert not {"fig1", "fig2", "fig3", "fig_answer", "table2", "table_answer"} & rules["heads.py"]
    assert rules["figures.py"] == {"fig1", "fig2", "fig3", "fig_answer"}  # no plotting library in table jobs


def test_the_docs_table_of_reruns_is_current():
    """workflow/docs/workflow.md's table is generated: PYTHONPATH=workflow .venv/bin/python -m
    headstart.provenance workflow/docs/workflow.md"""
    page = (ROOT / "workflow/docs/workflow.md").read_text()
    block = page.split("<!-- generated: reruns -->\n")[1].split("<!-- /generated -->")[0]
    assert block.strip() == rerun_table(ROOT / "workflow")

"""Which library code a job runs: the import closure of a script, by hand on a small package."""

from pathlib import Path

from headstart.provenance import code_hash, imported_modules, library_closure

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

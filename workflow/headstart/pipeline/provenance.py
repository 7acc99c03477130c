"""Which library code a job runs, so that a change to it reruns the job, and a change elsewhere does not.

Snakemake reruns a job when its ``script:`` file changes, but the decisions live in the library the script
calls. :func:`code_hash` hashes what the script reaches, as syntax trees: the script, the top-level
definitions (functions, classes, module constants) it refers to, those they refer to in turn, in any
``headstart`` module, and the statements that run when a module it reaches is imported. A rule passes the
hash as a param; Snakemake reruns the job when it changes, and then every job downstream of it.

What counts as a reference, so that no edit to code a job runs goes unseen (a missed one is a stale result):
a name (a call, a default argument, a decorator, a base class, an annotation, a value in a dict of
functions), an attribute of an imported module (``tables.write_parquet``), ``getattr`` on a module with a
constant name, a name a module re-exports; a class brings all its methods; a definition whose import runs
code of the library or registers it (a decorator other than the standard library's wrappers, a base class
or metaclass of the library's, a call in a default value or a class body) counts for every job that imports
its module. Where the target cannot be known the analysis includes more: ``getattr`` on a module with a
computed name, a module used as a value, and ``globals()``, ``vars()``, ``eval`` or ``exec`` include the
whole module (with all it imports); ``importlib.import_module`` with a computed or relative name, and
``sys.modules``, the whole library.

What changes nothing: comments, docstrings, blank lines and formatting (the trees are compared without
them), and definitions no job reaches. Code under ``if TYPE_CHECKING:``, and a library module's
``if __name__ == "__main__":`` block, never run in a job and are left out (a script's own such block runs:
Snakemake runs a script as ``__main__``).

What it cannot see: code that reads a docstring (``__doc__``) or a string annotation at run time, and files
other than Python that the library reads; keep decisions out of those.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "headstart"
WHOLE = "*"  # a reference to every definition of a module
DYNAMIC_CALLS = {"globals", "vars", "eval", "exec", "locals"}


@dataclass(frozen=True)
class Binding:
    """What an import binds a local name to: a module (``symbol`` None) or a name inside one."""

    module: str
    symbol: str | None = None


@dataclass
class References:
    """What one piece of code refers to: bare names, attribute chains from a name (``('tables', 'read')``),
    the imports inside it, and whether it reaches beyond what can be followed."""

    names: set[str] = field(default_factory=set)
    chains: set[tuple[str, ...]] = field(default_factory=set)
    bindings: dict[str, Binding] = field(default_factory=dict)
    whole_module: bool = False
    whole_library: bool = False


@dataclass(frozen=True)
class Code:
    """One top-level definition or statement: its syntax tree and what it refers to."""

    node: ast.AST
    references: References

    @functools.cached_property
    def tree(self) -> str:
        """The normalised syntax tree (:func:`normalised`): made only for the code a job reaches."""
        return normalised(self.node)


@dataclass(frozen=True)
class Module:
    """A parsed library module: its top-level definitions by name, the import bindings of its top level,
    and the statements that run when it is imported (other than definitions and imports)."""

    name: str
    definitions: dict[str, list[Code]]
    bindings: dict[str, Binding]
    on_import: list[Code]


# ---------------------------------------------------------------------------------------------
# Syntax trees


def _never_run(node: ast.AST, script: bool = False) -> bool:
    """``if TYPE_CHECKING:``, or in a library module ``if __name__ == "__main__":``: a block no job runs (a
    script's own ``__main__`` block does run: Snakemake runs a script as ``__main__``)."""
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test).replace("'", '"')
    return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or not script and test == '__name__ == "__main__"'


def _without_docstrings(node: ast.AST) -> ast.AST:
    """``node`` with the docstring of every module, class and function in it removed (in place)."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = inner.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    inner.body = body[1:]
    return node


def normalised(node: ast.AST) -> str:
    """The syntax tree of ``node`` as text, without positions, comments, docstrings or formatting."""
    return ast.dump(_without_docstrings(node), annotate_fields=False, include_attributes=False)


def _import_bindings(node: ast.Import | ast.ImportFrom, current: str) -> dict[str, Binding]:
    """The local names an import statement binds to ``headstart`` modules or names in them; a module it
    imports without binding a name to it is kept under ``<import NAME>``. ``current``: the importing module's
    package (its own name for a package's ``__init__.py``), against which relative imports resolve."""
    bound = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] != PACKAGE:
                continue
            if alias.asname:
                bound[alias.asname] = Binding(alias.name)
            else:  # `import headstart.x` binds `headstart`; the chain headstart.x.f is followed from it
                bound[PACKAGE] = Binding(PACKAGE)
                bound[f"<import {alias.name}>"] = Binding(alias.name)
        return bound
    if node.level:  # from .x import y, inside the package
        package = current.split(".")[: len(current.split(".")) - node.level + 1] or [PACKAGE]
        module = ".".join([*package, node.module] if node.module else package)
    else:
        module = node.module or ""
    if module.split(".")[0] != PACKAGE:
        return bound
    for alias in node.names:
        if alias.name == "*":
            bound[f"*{module}"] = Binding(module, WHOLE)
        else:
            bound[alias.asname or alias.name] = Binding(module, alias.name)
    return bound


def _chain(node: ast.Attribute) -> tuple[str, ...] | None:
    """``a.b.c`` -> ('a', 'b', 'c'); None unless the chain starts at a name."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return (node.id, *reversed(parts))


def references(node: ast.AST, current: str, script: bool = False) -> References:
    """What ``node`` (a definition or statement of a module of package ``current``, or a whole ``script``)
    refers to."""
    found = References()
    pending = [node]
    while pending:
        item = pending.pop()
        if _never_run(item, script):
            pending += item.orelse
            continue
        if isinstance(item, ast.Import | ast.ImportFrom):
            found.bindings.update(_import_bindings(item, current))
            continue
        if isinstance(item, ast.Attribute):
            chain = _chain(item)
            if chain is not None:
                if chain[:2] == ("sys", "modules"):  # any module, by a key that may be computed
                    found.whole_library = True
                found.chains.add(chain)
                continue
        elif isinstance(item, ast.Name):
            found.names.add(item.id)
        elif isinstance(item, ast.Call) and _dynamic_call(item, found):
            pending += [item.func, *item.args[1:], *item.keywords]  # getattr(module, name): not the module itself
            continue
        pending += ast.iter_child_nodes(item)
    return found


def _dynamic_call(call: ast.Call, found: References) -> bool:
    """getattr on a name, globals(), eval, import_module: references a plain walk cannot follow. True for
    ``getattr(name, ...)``, whose first argument is then no bare use of ``name``."""
    function = call.func
    name = (
        function.id if isinstance(function, ast.Name) else function.attr if isinstance(function, ast.Attribute) else ""
    )
    if name == "getattr" and call.args and isinstance(call.args[0], ast.Name):
        attribute = call.args[1] if len(call.args) > 1 else None
        constant = isinstance(attribute, ast.Constant) and isinstance(attribute.value, str)
        found.chains.add((call.args[0].id, attribute.value if constant else WHOLE))
        return True
    if name in DYNAMIC_CALLS:
        found.whole_module = True
    elif name in ("import_module", "__import__"):
        target = call.args[0] if call.args else None
        relative = isinstance(target, ast.Constant) and str(target.value).startswith(".")
        if isinstance(target, ast.Constant) and isinstance(target.value, str) and not relative:
            if target.value.split(".")[0] == PACKAGE:
                found.bindings[f"*{target.value}"] = Binding(target.value, WHOLE)
        else:
            found.whole_library = True
    return False


def _defined_names(node: ast.stmt) -> list[str]:
    """The names a top-level definition binds: a function, a class, or the plain names an assignment sets."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    targets = (
        node.targets
        if isinstance(node, ast.Assign)
        else [node.target]
        if isinstance(node, ast.AnnAssign | ast.AugAssign)
        else []
    )
    if targets and all(isinstance(t, ast.Name) for t in targets):
        return [t.id for t in targets]
    return []


# decorators that only wrap or describe what they decorate (the standard library's): anything else may
# register it somewhere at import (a registry, atexit), where no name leads to it
PURE_DECORATORS = {
    "dataclass",
    "cache",
    "lru_cache",
    "cached_property",
    "contextmanager",
    "property",
    "setter",
    "getter",
    "deleter",
    "staticmethod",
    "classmethod",
    "abstractmethod",
    "total_ordering",
    "wraps",
    "overload",
    "unique",
}


def _import_time_parts(node: ast.stmt) -> list[ast.AST]:
    """What a top-level definition runs when its module is imported: a function's decorators and default
    values; a class's decorators, bases, keywords (a metaclass) and body, with the same of its methods; an
    assignment's value."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return [*node.decorator_list, *node.args.defaults, *[d for d in node.args.kw_defaults if d is not None]]
    if isinstance(node, ast.ClassDef):
        parts = [*node.decorator_list, *node.bases, *node.keywords]
        for statement in node.body:
            parts += (
                _import_time_parts(statement)
                if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
                else [statement]
            )
        return parts
    return [node.value] if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign) and node.value else []


def _runs_at_import(node: ast.stmt, library_names: set[str]) -> bool:
    """A definition whose import runs the library's code, or may register it where no name leads to it: a
    decorator that is not a plain wrapper of the standard library's, a class with a base or metaclass of the
    library's (``__init_subclass__``, a metaclass registry), a call to the library's code in a default value,
    a class body or an assignment's value (``_done = fill()``)."""
    for decorator in getattr(node, "decorator_list", []):
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
        if name not in PURE_DECORATORS:
            return True
    if isinstance(node, ast.ClassDef):
        for method in node.body:
            if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and _runs_at_import(
                method, library_names
            ):
                return True
        bases = {n.id for base in [*node.bases, *node.keywords] for n in ast.walk(base) if isinstance(n, ast.Name)}
        if bases & library_names:
            return True
    for part in _import_time_parts(node):
        for call in (n for n in ast.walk(part) if isinstance(n, ast.Call)):
            if {n.id for n in ast.walk(call) if isinstance(n, ast.Name)} & library_names:
                return True
    return False


@functools.cache
def parse_module(source: str, name: str, is_package: bool = False) -> Module:
    """``source`` (module ``name``; ``is_package``: a package's ``__init__.py``) split into its definitions,
    import bindings and import-time statements. Keyed by the source text itself, so never stale: each
    module is parsed once per Snakefile parse."""
    package = name if is_package else name.rpartition(".")[0] or PACKAGE
    definitions: dict[str, list[Code]] = {}
    bindings: dict[str, Binding] = {}
    on_import: list[Code] = []
    statements = list(ast.parse(source).body)
    pending: list[tuple[ast.stmt, list[str]]] = []
    while statements:
        node = statements.pop(0)
        if _never_run(node):
            statements[:0] = node.orelse
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            bindings.update(_import_bindings(node, package))
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):  # a bare string runs nothing
            pending.append((node, _defined_names(node)))
    library_names = set(bindings) | {defined for _, names in pending for defined in names}
    for node, names in pending:
        code = Code(node, references(node, package))
        for defined in names:  # reached by name
            definitions.setdefault(defined, []).append(code)
        if not names or _runs_at_import(node, library_names):
            on_import.append(code)
            # an import inside a top-level block (try/except ImportError, if, with) binds its names for the module
            bindings.update({k: b for k, b in code.references.bindings.items() if not k.startswith(("*", "<"))})
    return Module(name, definitions, bindings, on_import)


# ---------------------------------------------------------------------------------------------
# Reach


class Library:
    """The ``headstart`` package under ``root`` (its folder), read and parsed on demand."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._modules: dict[str, Module] = {}
        self._paths: dict[str, Path | None] = {}

    def path(self, module: str) -> Path | None:
        """The file of module ``module`` (a package's ``__init__.py``), or None if it is no module."""
        if module not in self._paths:
            self._paths[module] = self._find(module)
        return self._paths[module]

    def _find(self, module: str) -> Path | None:
        parts = module.split(".")[1:]
        folder = self.root.joinpath(*parts)
        if (folder / "__init__.py").is_file():
            return folder / "__init__.py"
        file = folder.with_suffix(".py") if parts else None
        return file if file is not None and file.is_file() else None

    def module(self, name: str) -> Module:
        if name not in self._modules:
            path = self.path(name)
            self._modules[name] = parse_module(path.read_text(), name, path.name == "__init__.py")
        return self._modules[name]

    def modules(self) -> list[str]:
        """Every module of the library, by dotted name."""
        names = []
        for file in sorted(self.root.rglob("*.py")):
            parts = file.relative_to(self.root).with_suffix("").parts
            names.append(".".join([PACKAGE, *(parts[:-1] if parts[-1] == "__init__" else parts)]))
        return names


class Reach:
    """What a script reaches in the library: the definitions (module, name) and the modules it imports."""

    def __init__(self, library: Library):
        self.library = library
        self.definitions: set[tuple[str, str]] = set()
        self.imported: set[str] = set()
        self.whole: set[str] = set()
        self._pending: list[tuple[str, References, dict[str, Binding]]] = []

    def add_script(self, tree: ast.Module) -> None:
        found = references(tree, PACKAGE, script=True)
        self._pending.append(("", found, found.bindings))
        self._drain()

    def _drain(self) -> None:
        while self._pending:
            module, found, scope = self._pending.pop()
            self._follow(module, found, scope)

    def _follow(self, module: str, found: References, scope: dict[str, Binding]) -> None:
        """Reach what ``found`` (code of ``module``; "" for the script) refers to; ``scope``: the bindings
        visible to it (its module's top-level imports, then its own)."""
        if found.whole_library:
            for name in self.library.modules():
                self._whole_module(name)
        if found.whole_module and module:
            self._whole_module(module)
        elif found.whole_module:  # eval or globals() in the script: anything it imported
            for name in scope:
                self._name(module, name, scope)
        for binding in found.bindings.values():
            self._import(binding.module)
            if binding.symbol == WHOLE:
                self._whole_module(binding.module)
        for name in found.names:
            self._name(module, name, scope)
        for root, *attributes in found.chains:
            binding = scope.get(root)
            if binding is None or binding.symbol is not None and not self._is_module(binding):
                self._name(module, root, scope)  # an attribute of a class or object: the name itself
                continue
            target = binding.module if binding.symbol is None else f"{binding.module}.{binding.symbol}"
            while attributes and self.library.path(f"{target}.{attributes[0]}") is not None:
                target = f"{target}.{attributes.pop(0)}"
            self._import(target)
            if attributes:
                self._symbol(target, attributes[0])
            else:
                self._whole_module(target)  # the module itself used as a value

    def _is_module(self, binding: Binding) -> bool:
        return binding.symbol is None or self.library.path(f"{binding.module}.{binding.symbol}") is not None

    def _name(self, module: str, name: str, scope: dict[str, Binding]) -> None:
        """Reach ``name`` as used in ``module``: its definition there and what an import binds it to (both,
        as a function's own import may shadow a definition of the module)."""
        if module and name in self.library.module(module).definitions:
            self._symbol(module, name)
        if name in scope:
            binding = scope[name]
            self._import(binding.module)
            if self._is_module(binding):
                self._whole_module(binding.module if binding.symbol is None else f"{binding.module}.{binding.symbol}")
            else:
                self._symbol(binding.module, binding.symbol)
        # else: a builtin, a local variable or a parameter

    def _symbol(self, module: str, name: str) -> None:
        """Reach ``name`` of ``module``: its definition, or what the module's import of it binds."""
        self._import(module)
        if name == WHOLE:
            self._whole_module(module)
            return
        parsed = self.library.module(module)
        if name in parsed.definitions:
            if (module, name) not in self.definitions:
                self.definitions.add((module, name))
                for code in parsed.definitions[name]:
                    self._queue(module, code)
        elif name in parsed.bindings:  # re-exported: `from ..core.tables import read` in the module
            binding = parsed.bindings[name]
            self._name(module, name, {name: binding})
        elif self.library.path(f"{module}.{name}") is not None:
            self._whole_module(f"{module}.{name}")
        else:  # not defined where it can be seen (set in a loop, by a star import): all of the module
            self._whole_module(module)

    def _whole_module(self, module: str) -> None:
        """Reach every name of ``module``: its definitions, and what its imports bind (a name it re-exports,
        a module it imports is an attribute of it too)."""
        if module in self.whole:
            return
        self.whole.add(module)
        self._import(module)
        parsed = self.library.module(module)
        for name in parsed.definitions:
            self._symbol(module, name)
        for key, binding in parsed.bindings.items():
            if key.startswith("*"):
                self._whole_module(binding.module)
            elif not key.startswith("<"):
                self._name(module, key, parsed.bindings)

    def _import(self, module: str) -> None:
        """Importing ``module`` runs each package's ``__init__.py`` above it, then its own top-level
        statements, which import the modules they name."""
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name in self.imported or self.library.path(name) is None:
                continue
            self.imported.add(name)
            parsed = self.library.module(name)
            for binding in parsed.bindings.values():
                self._import(binding.module)
                if binding.symbol is not None and self.library.path(f"{binding.module}.{binding.symbol}"):
                    self._import(f"{binding.module}.{binding.symbol}")
            for code in parsed.on_import:
                self._queue(name, code)

    def _queue(self, module: str, code: Code) -> None:
        scope = {**self.library.module(module).bindings, **code.references.bindings}
        self._pending.append((module, code.references, scope))


def reached_code(script: Path, library: Path) -> list[tuple[str, str, str]]:
    """What ``script`` runs of the library in folder ``library``, sorted: (module, name, normalised tree)
    for each definition it reaches, and (module, '<import>', tree) for each statement its imports run."""
    tree = ast.parse(Path(script).read_text())
    reach = Reach(Library(library))
    reach.add_script(tree)
    parts = []
    for module, name in reach.definitions:
        parts += [(module, name, code.tree) for code in reach.library.module(module).definitions[name]]
    for module in reach.imported:
        parts += [(module, "<import>", code.tree) for code in reach.library.module(module).on_import]
    return sorted(parts)


def reached_definitions(script: Path, library: Path) -> set[tuple[str, str]]:
    """The (module, name) of each library definition ``script`` reaches."""
    return {(module, name) for module, name, _ in reached_code(script, library) if name != "<import>"}


def code_hash(script: Path, library: Path) -> str:
    """A hash of ``script`` and the library code it runs, as normalised syntax trees (:func:`reached_code`)."""
    digest = hashlib.sha256(normalised(ast.parse(Path(script).read_text())).encode())
    for part in reached_code(script, library):
        digest.update("\0".join(part).encode() + b"\0")
    return digest.hexdigest()[:16]


class CodeHashes:
    """:func:`code_hash` for the scripts of one workflow, remembered between Snakefile parses in ``cache`` (a
    JSON file): an entry is used only while the bytes of the script, of every library module and of this
    module are those it was computed from, so it is never stale; an edit anywhere recomputes (a no-op run
    parses the Snakefile once, and a cluster job once more; the trees take about half a second)."""

    def __init__(self, scripts: Path, library: Path, cache: Path):
        self.scripts, self.library, self.cache = Path(scripts), Path(library), Path(cache)
        digest = hashlib.sha256(Path(__file__).read_bytes())
        for path in sorted(self.library.rglob("*.py")):
            digest.update(path.relative_to(self.library).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        self.library_digest = digest.hexdigest()
        try:
            stored = json.loads(self.cache.read_text())
        except (OSError, ValueError):
            stored = {}
        hashes = stored.get(self.library_digest) if isinstance(stored, dict) else None
        self.hashes: dict[str, str] = hashes if isinstance(hashes, dict) else {}

    def __call__(self, script: str) -> str:
        path = self.scripts / f"{script}.py"
        key = f"{script}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
        if not isinstance(self.hashes.get(key), str):
            self.hashes[key] = code_hash(path, self.library)
            self._store()
        return self.hashes[key]

    def _store(self) -> None:
        """Write the cache whole, for this library alone, by rename: a parse beside this one reads either
        file, never half of one."""
        try:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.cache.with_name(f"{self.cache.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps({self.library_digest: self.hashes}))
            os.replace(temporary, self.cache)
        except OSError:  # a read-only checkout: every parse computes the hashes
            pass


def rule_scripts(rules_dir: Path) -> dict[str, list[str]]:
    """Each rule of the workflow's ``*.smk`` files -> the scripts it may run (names without ``.py``): a
    script named with a config value (``f"../scripts/dataset_{DATASET_SOURCE}.py"``) is each script of
    that pattern; a rule made by ``use rule A as B`` runs A's."""
    import re

    scripts: dict[str, list[str]] = {}
    derived: dict[str, str] = {}
    scripts_dir = Path(rules_dir).parent / "scripts"
    for smk in sorted(Path(rules_dir).glob("*.smk")):
        rule = None
        for line in smk.read_text().splitlines():
            if match := re.match(r"rule (\w+):", line):
                rule = match.group(1)
            elif match := re.match(r"use rule (\w+) as (\w+)", line):
                derived[match.group(2)] = match.group(1)
            elif rule and (match := re.match(r"""\s+f?["']\.\./scripts/([\w{}]+)\.py["']""", line)):
                pattern = re.sub(r"\{\w+\}", "*", match.group(1))
                scripts[rule] = sorted(path.stem for path in scripts_dir.glob(f"{pattern}.py"))
    return scripts | {new: scripts[base] for new, base in derived.items() if base in scripts}


# ---------------------------------------------------------------------------------------------
# The reruns table: what an edit costs, from Snakemake's own dry run on a finished run


def planted_change(source: str) -> str:
    """``source`` with every top-level definition changed as an edit would change it: each function and
    class gains a statement, each constant's value is wrapped in a conditional (comments and formatting
    come out otherwise too, and change nothing)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            node.body.append(ast.Expr(ast.Constant(0)))
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None and _defined_names(node):
            node.value = ast.IfExp(ast.Constant(True), node.value, node.value)
    return ast.unparse(tree) + "\n"


def commented(source: str) -> str:
    """``source`` with a comment line before every statement and every docstring reworded: an edit no job
    should see (the lines inside a string are left as they are: a comment there would change the string)."""
    import io
    import re
    import tokenize

    lines = source.splitlines(keepends=True)
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if not isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) or not body:
            continue
        first = body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            row, col = first.lineno - 1, first.col_offset
            lines[row] = lines[row][:col] + re.sub(r"^([rRuU]?)([\"']{3}|[\"'])", r"\1\2(edited) ", lines[row][col:])
    starts = {  # the first line of each statement
        token.start[0] - 1
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type
        not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
        and token.start[1] == len(token.line) - len(token.line.lstrip())
    }
    for row in sorted(starts, reverse=True):
        indent = lines[row][: len(lines[row]) - len(lines[row].lstrip())]
        lines.insert(row, f"{indent}# a comment\n")
    return "".join(lines) + "\n# the end\n"


def dry_run_jobs(repo: Path, args: list[str]) -> dict[str, int]:
    """``snakemake -n *args`` in ``repo``: the jobs it would run, by rule (from its job stats table)."""
    import re
    import subprocess
    import sys

    snakemake = str(Path(sys.executable).with_name("snakemake"))
    result = subprocess.run([snakemake, "-n", *args], cwd=repo, capture_output=True, text=True, check=True)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1].split("\n\n")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if rule != "total"}


def rule_hashes(repo: Path) -> dict[str, str]:
    """Each rule of ``repo``'s workflow -> the code hashes of the scripts it may run (one per source for the
    dataset stage), joined."""
    workflow = Path(repo) / "workflow"
    return {
        rule: " ".join(code_hash(workflow / "scripts" / f"{script}.py", workflow / PACKAGE) for script in scripts)
        for rule, scripts in rule_scripts(workflow / "rules").items()
    }


def _jobs_cell(jobs: dict[str, int]) -> str:
    """'none', 'dataset, decode ×3' for a few rules, else '130 jobs of 33 rules' (a cell stays short)."""
    if len(jobs) > 6:
        return f"{sum(jobs.values())} jobs of {len(jobs)} rules"
    return ", ".join(f"{rule} ×{n}" if n > 1 else rule for rule, n in sorted(jobs.items())) or "none"


def rerun_table(repo: Path, args: list[str]) -> str:
    """A Markdown table: for a comment in every module, and for each library module with every top-level
    definition edited (:func:`planted_change`), the jobs whose code that changes (their rule's code hash)
    and the jobs that rerun in all (``snakemake -n *args`` in ``repo``, a checkout holding a finished run:
    Snakemake's own count, the jobs downstream included). Each module is edited in place and put back."""
    library = Path(repo) / "workflow" / PACKAGE
    files = sorted(library.rglob("*.py"))
    originals = {path: path.read_text() for path in files}
    every_job = dry_run_jobs(repo, [*args, "--forceall"])
    before = rule_hashes(repo)

    def row(what: str) -> tuple[str, dict[str, int], int]:
        after = rule_hashes(repo)
        changed = {rule: every_job[rule] for rule in every_job if before.get(rule) != after.get(rule)}
        return what, changed, sum(dry_run_jobs(repo, args).values())

    rows = []
    try:
        for path in files:
            path.write_text(commented(originals[path]))
        rows.append(row("a comment or docstring, in every module at once"))
        for path in files:
            path.write_text(originals[path])
        for path in files:
            path.write_text(planted_change(originals[path]))
            rows.append(row(f"`{path.relative_to(library).as_posix()}`"))
            path.write_text(originals[path])
    finally:
        for path, text in originals.items():
            path.write_text(text)
    lines = [
        f"| edit in `workflow/{PACKAGE}/…` | jobs whose code it changes | jobs that rerun "
        f"(of {sum(every_job.values())}) |",
        "|:--|:--|--:|",
    ]
    for what, changed, total in rows:
        lines.append(f"| {what} | {_jobs_cell(changed)} | {total} |")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m headstart.pipeline.provenance PAGE: regenerate PAGE's "reruns" block
    import sys

    from ..report.docs import splice

    page = Path(sys.argv[1])
    table = rerun_table(Path.cwd(), sys.argv[2:])
    page.write_text(splice(page.read_text(), "reruns", table))

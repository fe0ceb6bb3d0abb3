"""The package's layers (.importlinter): imports go down only, inside functions too.

Two checks on one contract. ``lint-imports`` (import-linter, whose grimp
reads every import statement, function bodies included) keeps the layers
and the listed exceptions. The walk below reads the same layers and
exceptions from ``.importlinter`` and looks at each module's AST itself: every
``import``/``from ... import`` wherever it stands, plus what import-linter
cannot see, ``importlib.import_module("stockroom...")`` and
``sys.modules["stockroom..."]``. It reports each import that goes up a layer
or across independent siblings as file:line, and the package's import cycles.

The exceptions are a shrinking allowlist: an entry whose import is gone
fails too, so that it is deleted rather than left to hide a new one.
"""

from __future__ import annotations

import ast
import configparser
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import stockroom

PACKAGE = Path(stockroom.__file__).resolve().parent
PROJECT = PACKAGE.parent
CONFIG = PROJECT / ".importlinter"

# Imports that grimp does not see (so .importlinter cannot list them) and that
# break the layers today, each with where it is. Shrinking, like ignore_imports.
DYNAMIC_ALLOWED = {
    # importlib.import_module("stockroom.remote.sync"): the store asks the app layer to fetch
    ("stockroom.store.merge", "stockroom.remote.sync"),
    # sys.modules.get("stockroom.store.repository")._REPOS: the light reader borrows
    # the store's open repository (quickread.py:115)
    ("stockroom.quickread", "stockroom.store.repository"),
}
# The import cycles today (each closed by an import inside a function); the
# redesign breaks them. Shrinking: a cycle that is gone must be deleted here.
KNOWN_CYCLES = [
    # the light reader and the store (quickread imports store inside functions),
    # taglog on quickread, transfer <-> lazy
    {
        "stockroom.quickread",
        "stockroom.taglog",
        "stockroom.store",
        "stockroom.store.base",
        "stockroom.store.lazy",
        # a left-out sample's read error (store.lazy) asks store.partial which column
        "stockroom.store.partial",
        "stockroom.store.reading",
        "stockroom.store.recovery",
        "stockroom.store.repository",
        # the sample-state patch reads a lazy sample through store.lazy
        "stockroom.store.samples",
        "stockroom.store.staging",
        "stockroom.store.transfer",
    },
    {"stockroom.remote.objects", "stockroom.remote.relay"},
]


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    how: str  # "static" (an import statement, anywhere) or "dynamic" (importlib, sys.modules)

    def where(self) -> str:
        path = module_path(self.importer).relative_to(PROJECT)
        return f"{path}:{self.line}: {self.importer} -> {self.imported}"


def module_path(name: str) -> Path:
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def modules(package: Path = PACKAGE, name: str = "stockroom") -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).with_suffix("")
        parts = [name, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(target: str, known: set[str]) -> str | None:
    """The longest known module that ``target`` names or lies in (None: not ours)."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def _is_modules(node: ast.expr) -> bool:
    """``sys.modules`` (or any ``X.modules``)."""
    return isinstance(node, ast.Attribute) and node.attr == "modules"


def scan(name: str, source: str, known: set[str], is_package: bool = False) -> list[Import]:
    """The imports of module ``name`` (given its source) of modules in ``known``."""
    found = []
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        targets: list[tuple[str, str]] = []
        if isinstance(node, ast.Import):
            targets = [(alias.name, "static") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from a import b` imports a.b when that is a module, else a
            targets = [
                (f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, "static")
                for alias in node.names
            ]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            name_arg = node.args[0].value
            # sys.modules.get("stockroom..."): a reach into a module loaded by someone else
            reach = called == "get" and isinstance(func, ast.Attribute) and _is_modules(func.value)
            if (called in ("import_module", "__import__") or reach) and isinstance(name_arg, str):
                targets = [(name_arg, "dynamic")]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if _is_modules(node.value) and isinstance(node.slice.value, str):
                targets = [(node.slice.value, "dynamic")]
        for target, how in targets:
            resolved = _resolve(target, known)
            if resolved is not None and resolved != name:
                found.append(Import(name, resolved, getattr(node, "lineno", 0), how))
    return found


def package_imports() -> list[Import]:
    mods = modules()
    known = set(mods)
    return [
        imp
        for name, path in mods.items()
        for imp in scan(name, path.read_text(encoding="utf-8"), known, path.name == "__init__.py")
    ]


def contract() -> tuple[list[list[str]], set[tuple[str, str]]]:
    """The layers contract of .importlinter: layers (top first, siblings per layer)
    and its ignore_imports as (importer, imported) pairs."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG, encoding="utf-8")
    section = parser["importlinter:contract:layers"]
    layers = [[m.strip() for m in line.split("|")] for line in section["layers"].splitlines() if line.strip()]
    ignored = set()
    for line in section["ignore_imports"].splitlines():
        if "->" in line:
            importer, imported = (part.strip() for part in line.split("->"))
            ignored.add((importer, imported))
    return layers, ignored


def layer_of(module: str, layers: list[list[str]]) -> tuple[int, str] | None:
    """(layer index, top first; the layer entry) of the longest entry containing ``module``."""
    best: tuple[int, str] | None = None
    for index, siblings in enumerate(layers):
        for entry in siblings:
            if (module == entry or module.startswith(entry + ".")) and (
                best is None or len(entry) > len(best[1])
            ):
                best = (index, entry)
    return best


def breaks(imports: list[Import], layers: list[list[str]]) -> list[Import]:
    """The imports that go up a layer or to an independent sibling."""
    bad = []
    for imp in imports:
        src, dst = layer_of(imp.importer, layers), layer_of(imp.imported, layers)
        if src is None or dst is None or src[1] == dst[1]:
            continue  # outside the layers (the facade), or within one entry
        if dst[0] <= src[0]:
            bad.append(imp)
    return bad


def cycles(imports: list[Import]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.imported)
        graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# ------------------------------------------------------------------- the walk
def test_the_walk_sees_imports_inside_functions_and_dynamic_ones() -> None:
    known = {"pkg", "pkg.low", "pkg.high", "pkg.high.part"}
    source = (
        "import os\n"
        "def f():\n"
        "    from pkg.high import part\n"
        "    class C:\n"
        "        def g(self):\n"
        "            from . import high\n"
        "    return importlib.import_module('pkg.high.part.thing'), sys.modules['pkg.high']\n"
        "x = sys.modules.get('pkg.high.part')\n"
    )
    found = {(i.imported, i.line, i.how) for i in scan("pkg.low", source, known)}
    assert found == {
        ("pkg.high.part", 3, "static"),
        ("pkg.high", 6, "static"),
        ("pkg.high.part", 7, "dynamic"),
        ("pkg.high", 7, "dynamic"),
        ("pkg.high.part", 8, "dynamic"),
    }
    layers = [["pkg.high"], ["pkg.low"]]
    assert {i.line for i in breaks(scan("pkg.low", source, known), layers)} == {3, 6, 7, 8}


def test_no_import_goes_up_the_layers_but_the_listed_ones() -> None:
    if not CONFIG.is_file():
        pytest.skip("not running from a source checkout (no .importlinter)")
    layers, ignored = contract()
    listed = [entry for siblings in layers for entry in siblings]
    assert all(module_path(entry).exists() for entry in listed), "a layer names a module that is gone"
    imports = package_imports()
    bad = breaks(imports, layers)
    new = [i for i in bad if (i.importer, i.imported) not in ignored | DYNAMIC_ALLOWED]
    assert not new, "imports up the layers (.importlinter):\n" + "\n".join(i.where() for i in new)
    # The allowlists only shrink: an entry with no such import left must go.
    seen = {(i.importer, i.imported) for i in bad}
    facade = {(imp, dst) for imp, dst in ignored if layer_of(imp, layers) is None}
    stale = sorted(
        (ignored - facade - seen)
        | (DYNAMIC_ALLOWED - {(i.importer, i.imported) for i in bad if i.how == "dynamic"})
    )
    assert not stale, f"allowlisted imports that are gone, delete them: {stale}"


def test_import_cycles_are_only_the_known_ones() -> None:
    found = cycles(package_imports())
    assert sorted(map(sorted, found)) == sorted(map(sorted, KNOWN_CYCLES)), (
        "the package's import cycles changed; a new one must be broken, a broken one deleted "
        f"from KNOWN_CYCLES: {sorted(map(sorted, found))}"
    )


# ------------------------------------------------------------- import-linter
def _lint_imports() -> list[str]:
    pytest.importorskip("importlinter")
    if not CONFIG.is_file():
        pytest.skip("not running from a source checkout (no .importlinter)")
    script = Path(sys.executable).parent / "lint-imports"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    )


def test_lint_imports_keeps_the_contract() -> None:
    env = dict(os.environ, PYTHONPATH=str(PROJECT))
    proc = subprocess.run(
        [*_lint_imports(), "--config", str(CONFIG), "--no-cache"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lint_imports_fails_on_a_new_back_import(tmp_path: Path) -> None:
    """A copy of the package with one more import inside a function, up the layers
    (errors, the bottom but one, asking for the store): lint-imports refuses it."""
    import shutil

    shutil.copytree(PACKAGE, tmp_path / "stockroom", ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "stockroom" / "errors.py"
    errors.write_text(
        errors.read_text() + "\n\ndef _late() -> None:\n    from stockroom.store import Store  # noqa\n"
    )
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        [*_lint_imports(), "--config", str(CONFIG), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "stockroom.errors is not allowed to import stockroom.store" in proc.stdout, proc.stdout

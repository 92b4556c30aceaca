"""The shape of the code base, checked (docs/contracts.md, "Layers").

* Stages are layered: a module imports its own package, lower stages and the shared bottom
  layer, never a stage above it (not even inside a function), and no two modules import
  each other, directly or round a circle.
* Every stage's entry point and stage object live in ``segment/<stage>/run.py``; a
  package's ``__init__.py`` only re-exports.
* No function in ``segment/`` (outside the synthetic-data generator) is over 80 lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "segment"

#: low to high; a package not named here (errors, config, log, schema, dates, runstate,
#: workdir, stage, resources, progress, report, written, addresses...) is the bottom layer
LAYERS = ["reference", "ingest", "geocode", "enrich", "rules", "campaign", "audit", "export",
          "measure", "top"]
TOP = {"cli", "spark", "starter", "synth", "pipeline", "demo"}
STAGES = {"ingest": "ingest", "geocode": "geocode", "enrich": "enrich", "rules": "evaluate",
          "audit": "audit", "export": "export"}
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _layer(module: str) -> int:
    """-1 for the bottom layer, else the index in :data:`LAYERS`."""
    parts = module.split(".")
    if len(parts) < 2:
        return -1
    name = "top" if parts[1] in TOP else parts[1]
    return LAYERS.index(name) if name in LAYERS else -1


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every segment module ``module`` imports, anywhere in the file (functions included)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        yield from (t for t in targets if t in MODULES and t != module)


GRAPH = {m: sorted(set(_imports(m, p))) for m, p in MODULES.items()}


def test_no_module_imports_a_stage_above_it() -> None:
    wrong = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
             if _layer(t) > max(_layer(m), -1) and m.split(".")[1:2] != t.split(".")[1:2]]
    assert not wrong, "\n".join(wrong)


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (package re-exports aside)."""
    edges = {m: [t for t in ts if MODULES[t].name != "__init__.py"]
             for m, ts in GRAPH.items() if MODULES[m].name != "__init__.py"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert not _cycles(), _cycles()


@pytest.mark.parametrize("package", sorted(STAGES))
def test_each_stage_has_its_entry_point_and_stage_object_in_run_py(package: str) -> None:
    from segment.stage import Stage

    run = ROOT / package / "run.py"
    assert run.is_file(), f"segment/{package}/run.py is missing"
    module = __import__(f"segment.{package}.run", fromlist=["*"])
    stages = [v for v in vars(module).values()
              if isinstance(v, type) and issubclass(v, Stage) and v is not Stage and v.__module__ == module.__name__]
    assert [s.name for s in stages] == [STAGES[package]]


def _logic_in_init(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = (ast.Import, ast.ImportFrom, ast.Expr, ast.If)  # docstring, TYPE_CHECKING imports
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            names = [t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                     if isinstance(t, ast.Name)]
            if names and all(n in {"__all__", "_LAZY", "__getattr__"} for n in names):
                continue
        if isinstance(node, ast.FunctionDef) and node.name in {"__getattr__", "__dir__"}:
            continue  # a lazy re-export (PEP 562)
        if not isinstance(node, allowed):
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}")
    return found


@pytest.mark.parametrize("package", sorted(STAGES))
def test_stage_package_init_only_re_exports(package: str) -> None:
    assert not _logic_in_init(ROOT / package / "__init__.py")


def test_no_function_is_over_80_lines() -> None:
    long = []
    for module, path in MODULES.items():
        if module.startswith("segment.synth"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, "\n".join(long)

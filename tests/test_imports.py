"""Import hygiene: ``helpers.config`` imports no torch, and no import cycle joins modules of ``helpers``.

The graph has an edge ``A -> B`` for every import statement executed when ``A`` is imported (module level, under
``if``/``try`` too; not inside functions), plus ``A -> P`` for every package ``P`` above ``B`` that ``A`` does
not live in (importing ``B`` runs ``P/__init__.py`` first).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "helpers"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(body) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(getattr(node, "finalbody", []))

    visit(ast.parse(path.read_text()).body)
    edges = set()
    for target in (m for m in found if m in modules):
        edges.add(target)
        parts = target.split(".")
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            if parent in modules and not (name == parent or name.startswith(parent + ".")):
                edges.add(parent)
    return edges - {name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_no_import_cycle_among_helpers_modules():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_importing_helpers_config_imports_no_torch():
    # helpers.criteria and helpers.metrics judge measurements of any model (numpy in); helpers.study defers its
    # torch-side imports to the methods that need them.
    code = ("import sys, helpers.config, helpers.model_spec, helpers.criteria, helpers.metrics, helpers.study; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'captum')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_helpers_config_has_no_torch_import_even_inside_a_function():
    """Device resolution lives in :mod:`helpers.device`; config validates the setting's form only."""
    names = set()
    for node in ast.walk(ast.parse((PACKAGE / "config.py").read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    assert not {n for n in names if n.split(".")[0] in ("torch", "torchvision", "captum")}
    assert "helpers.device" not in names


def test_saliency_package_is_a_re_export_face():
    tree = ast.parse((PACKAGE / "saliency" / "__init__.py").read_text())
    statements = [n for n in tree.body if not isinstance(n, ast.Expr)]  # the docstring
    assert all(isinstance(n, (ast.ImportFrom, ast.Assign)) for n in statements)
    assignments = [t.id for n in statements if isinstance(n, ast.Assign) for t in n.targets]
    assert assignments == ["__all__"]

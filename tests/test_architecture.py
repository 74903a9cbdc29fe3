"""The shape of the house (DESIGN.md): one package, arrows that point down, no circles, small modules.

Imports are read from the source (every ``import`` statement, lazy ones inside functions included),
with ``marlshare.components.X`` mapped to the folder ``components/X``, so this sees what a drawing of
the repository's folders would miss.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = {"marlshare.components": "components", "marlshare.envs": "envs", "marlshare.recipes": "recipes",
           "marlshare": "marlshare"}
MAX_LINES = 400


def library_files() -> list[Path]:
    return sorted(p for folder in LIBRARY.values() for p in (ROOT / folder).rglob("*.py"))


def module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    top = next(name for name, folder in LIBRARY.items() if folder == parts[0])
    return ".".join([top, *parts[1:]])


def imports_of(path: Path) -> set[str]:
    """Every module name ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def graph() -> dict[str, set[str]]:
    modules = {module_of(p): p for p in library_files()}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
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

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles_in_the_library():
    assert circles(graph()) == []


def test_the_library_never_imports_tools_or_tests():
    bad = {module_of(p): sorted(m for m in imports_of(p) if m.split(".")[0] in ("tools", "tests"))
           for p in library_files()}
    assert {k: v for k, v in bad.items() if v} == {}


def test_arrows_point_down_envs_import_no_components_or_recipes_and_components_no_recipes():
    g = graph()
    up = [(a, b) for a, targets in g.items() for b in targets
          if (a.startswith("marlshare.envs") and b.startswith(("marlshare.components", "marlshare.recipes")))
          or (a.startswith("marlshare.components") and b.startswith("marlshare.recipes"))]
    assert up == []


def test_no_library_module_over_400_lines():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in library_files()}
    assert {k: n for k, n in sizes.items() if n > MAX_LINES} == {}


def test_the_wheel_lists_every_library_package():
    """pyproject's explicit package list names every folder of the library that holds an __init__.py."""
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {module_of(p) for p in library_files() if p.name == "__init__.py"}
    assert declared == on_disk


def test_lint_bans_the_bare_folder_imports(tmp_path):
    """ruff passes on the repository, and its rule does flag `from components... import` (so the rule is on)."""
    ruff = [sys.executable, "-m", "ruff"]
    if subprocess.run([*ruff, "--version"], capture_output=True).returncode != 0:
        pytest.skip("ruff is not installed (make install installs it)")
    clean = subprocess.run([*ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True,
                           text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("from components.strategies import make_strategy\nimport envs\nfrom marlshare import recipes\n")
    flagged = subprocess.run([*ruff, "check", "--output-format", "concise", "--config", str(ROOT / "pyproject.toml"),
                              str(bad)], capture_output=True, text=True)
    assert re.findall(r"TID251 `(\w+)` is banned", flagged.stdout) == ["components", "envs"]

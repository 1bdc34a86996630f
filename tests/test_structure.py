"""The kit's structure: no import circle among its modules, and the layering the design asks for
(``hwlib`` imports nothing of the grading or course side; ``course`` imports nothing of ``grading``).

Imports are read with ``ast`` (nothing is imported), relative ones resolved, including imports
inside functions: a circle closed by a deferred import is still a circle.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from course.paths import REPO

PACKAGES = ("hwlib", "grading", "course", "bench")


def modules_of(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the kit's packages."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, modules: dict) -> set[str]:
    """The kit modules that module ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``, not
    as ``pkg``: every submodule's import runs its package's ``__init__``, which is no circle)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` the module mod.
            targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def graph(root: Path = REPO, packages=PACKAGES) -> dict[str, set[str]]:
    modules = modules_of(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def layering_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(edges.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if top == "hwlib" and other != "hwlib":
                bad.append(f"{module} imports {target}: hwlib must not depend on the grading or course side")
            if top == "course" and other == "grading":
                bad.append(f"{module} imports {target}: the course build calls grading as a command, not a module")
    return bad


def test_no_import_circle():
    found = circles(graph())
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)


def test_hwlib_and_course_import_nothing_above_them():
    bad = layering_violations(graph())
    assert not bad, "\n".join(bad)


# --- the checker itself catches what it should ------------------------------------------------------

@pytest.fixture
def toy(tmp_path):
    def write(files: dict) -> Path:
        for rel, text in files.items():
            path = tmp_path / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return tmp_path
    return write


def test_a_circle_through_a_deferred_relative_import_is_found(toy):
    root = toy({"hwlib/__init__.py": "", "hwlib/a.py": "from . import b\n",
                "hwlib/b.py": "def f():\n    from .a import g\n", "hwlib/c.py": "import hwlib.a\n"})
    assert circles(graph(root, ("hwlib",))) == [["hwlib.a", "hwlib.b"]]


def test_hwlib_importing_grading_is_a_violation(toy):
    root = toy({"hwlib/__init__.py": "", "hwlib/a.py": "def f():\n    from grading.autograde import hidden\n",
                "grading/__init__.py": "", "grading/autograde/__init__.py": "", "grading/autograde/hidden.py": "",
                "course/__init__.py": "", "course/run.py": "from grading import samples\n", "grading/samples.py": ""})
    bad = layering_violations(graph(root, ("hwlib", "grading", "course")))
    assert bad == ["course.run imports grading.samples: the course build calls grading as a command, not a module",
                   "hwlib.a imports grading.autograde.hidden: hwlib must not depend on the grading or course side"]

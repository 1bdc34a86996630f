"""The student version of a Python module: every solution region becomes ``raise NotImplementedError``.

A solution region is a run of lines opened by a line that is exactly ``### BEGIN SOLUTION`` and
closed by one that is exactly ``### END SOLUTION`` (leading whitespace aside), inside a function
body. The region is replaced, at the indentation of its opening marker, by::

    # YOUR CODE HERE
    raise NotImplementedError

(nbgrader's own stub for code cells). Signatures, docstrings, input validation and given code
outside the regions stay as they are. :func:`strip_source` checks that the result parses and that
every stub sits inside a function, so a misplaced marker fails the release instead of shipping a
module that cannot be imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BEGIN", "END", "STUB", "Region", "StripError", "solution_regions", "strip_source", "strip_tree",
           "student_modules", "region_functions"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError")


class StripError(ValueError):
    """A module whose solution markers cannot be turned into a valid student version."""


@dataclass(frozen=True)
class Region:
    """One solution region: 1-based line numbers of its markers and the lines in between."""

    begin: int
    end: int
    indent: str
    body: tuple[str, ...]


def solution_regions(source: str, name: str = "<source>") -> list[Region]:
    """The solution regions of ``source`` in order; raise :class:`StripError` on unbalanced markers."""
    regions, open_at, indent, body = [], None, "", []
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if open_at is not None:
                raise StripError(f"{name}:{number}: {BEGIN} inside the region opened at line {open_at}")
            open_at, indent, body = number, line[: len(line) - len(line.lstrip())], []
        elif marker == END:
            if open_at is None:
                raise StripError(f"{name}:{number}: {END} without a {BEGIN}")
            regions.append(Region(open_at, number, indent, tuple(body)))
            open_at = None
        elif open_at is not None:
            body.append(line)
    if open_at is not None:
        raise StripError(f"{name}:{open_at}: {BEGIN} is never closed by {END}")
    return regions


def strip_source(source: str, name: str = "<source>") -> str:
    """Return ``source`` with each solution region replaced by the stub; verify the result."""
    regions = solution_regions(source, name)
    lines = source.splitlines(keepends=True)
    out, stub_lines, skip_until = [], [], 0
    for number, line in enumerate(lines, start=1):
        if number <= skip_until:
            continue
        region = next((r for r in regions if r.begin == number), None)
        if region is None:
            out.append(line)
            continue
        for stub in STUB:
            out.append(f"{region.indent}{stub}\n")
        stub_lines.append(len(out))  # 1-based line number of the raise
        skip_until = region.end
    result = "".join(out)
    _verify(result, stub_lines, name)
    return result


def _verify(source: str, stub_lines: list[int], name: str) -> None:
    """The stripped module must parse, compile, and raise only from inside functions."""
    try:
        tree = ast.parse(source, filename=name)
        compile(tree, name, "exec")
    except SyntaxError as exc:
        raise StripError(f"{name}: the student version does not parse: {exc}") from None
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(range(node.body[0].lineno, node.end_lineno + 1))
    outside = [n for n in stub_lines if n not in inside]
    if outside:
        raise StripError(f"{name}: solution region(s) outside a function body (stub at line(s) {outside}); "
                         "the student module would raise on import")


def region_functions(source: str, name: str = "<source>") -> list[str]:
    """For each solution region of ``source``, the qualified name of the function holding it
    (``fc_forward``, ``SoftmaxClassifier.loss``); "" for a region outside any function."""
    tree = ast.parse(source, name)
    spans = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qualname = prefix + child.name
                spans.append((child.lineno, child.end_lineno, qualname))
                visit(child, qualname + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    names = []
    for region in solution_regions(source, name):
        # The innermost function holding the BEGIN marker (its END marker, a comment, may come after
        # the function's last statement).
        holding = [s for s in spans if s[0] <= region.begin <= s[1]]
        names.append(min(holding, key=lambda s: s[1] - s[0])[2] if holding else "")
    return names


def student_modules(package: Path) -> list[Path]:
    """The modules of ``package`` (recursively) that hold at least one solution region, sorted."""
    return sorted(p for p in package.rglob("*.py")
                  if "__pycache__" not in p.parts and solution_regions(p.read_text(), str(p)))


def strip_tree(package: Path, dest: Path) -> list[Path]:
    """Copy the ``.py`` files of ``package`` to ``dest`` (same layout), stripped; return the stripped ones.

    Only Python sources travel (no ``__pycache__``, no data files).
    """
    stripped = []
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package)
        text = path.read_text()
        student = strip_source(text, str(path))
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(student)
        if student != text:
            stripped.append(rel)
    return stripped

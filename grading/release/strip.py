"""The student version of a Python module: every solution region becomes ``raise NotImplementedError``.

A solution region is a run of lines opened by a line that is exactly ``### BEGIN SOLUTION`` and
closed by one that is exactly ``### END SOLUTION`` (leading whitespace aside), inside a function
body. The region is replaced, at the indentation of its opening marker, by::

    # YOUR CODE HERE
    raise NotImplementedError("fc_forward is yours to write (Q1: 10 points with fc_backward); ...")

(nbgrader's own stub for code cells, with a message from the question registry naming the task, its
points and the check that tests it: :func:`stub_messages`). Signatures, docstrings, input validation
and given code outside the regions stay as they are; a module docstring's paragraph about the
solution markers becomes one about the stubs (the student's copy has no markers). :func:`strip_source` checks that the result parses and that
every stub sits inside a function, so a misplaced marker fails the release instead of shipping a
module that cannot be imported.

The assignment's scope is the course description's (course/registry.py): a region of a function that
the profile does not assign (``given``: the RNN layers in the seed profile, say) ships with its
reference code, markers removed; a region of a function that no task of any profile names fails the
release (:func:`strip_tree`), so no stub ever reaches a student without a task, points and a check.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BEGIN", "END", "STUB", "Region", "StripError", "solution_regions", "strip_source", "strip_tree",
           "student_modules", "region_functions", "stub_messages"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError")
# What a student's module docstring says instead of the reference's paragraph about the markers.
STUDENT_NOTE = ("The parts you write raise ``NotImplementedError`` with a message naming the task, its points "
                "and the check that tests it: replace the ``# YOUR CODE HERE`` line and that ``raise`` by your "
                "code, and keep the rest (signatures, docstrings, input checks) as it is.")

# ... and in a module where the assignment's profile gives every function (nothing to write).
GIVEN_NOTE = ("In this assignment everything in this module is given code: read it (your code uses it), "
              "but there is nothing to write here.")


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


def _student_docstring(source: str, note: str = STUDENT_NOTE) -> str:
    """The module docstring's paragraph mentioning the solution markers, rewritten for students (``note``)."""
    match = re.match(r'(\s*""")(.*?)(""")', source, flags=re.S)
    if not match or BEGIN not in match.group(2):
        return source
    paragraphs = match.group(2).split("\n\n")
    note = "\n".join(textwrap.wrap(note, 100))
    paragraphs = [note + ("\n" if p.endswith("\n") else "") if BEGIN in p else p for p in paragraphs]
    return match.group(1) + "\n\n".join(paragraphs) + match.group(3) + source[match.end():]


def strip_source(source: str, name: str = "<source>", messages: dict | None = None, given=()) -> str:
    """Return ``source`` with each solution region replaced by the stub; verify the result.

    ``messages`` maps a function's qualified name (``fc_forward``, ``SoftmaxClassifier.loss``) to the
    message its stub raises (:func:`stub_messages`); a function without one raises a bare
    ``NotImplementedError``. The regions of the functions in ``given`` keep their code (only the two
    marker lines go).
    """
    regions = solution_regions(source, name)
    functions = region_functions(source, name) if regions else []
    message_of = {r.begin: (messages or {}).get(f) for r, f in zip(regions, functions)}
    kept = {r.begin for r, f in zip(regions, functions) if f in set(given)}
    lines = source.splitlines(keepends=True)
    out, stub_lines, skip_until = [], [], 0
    for number, line in enumerate(lines, start=1):
        if number <= skip_until:
            continue
        region = next((r for r in regions if r.begin == number), None)
        if region is None:
            out.append(line)
            continue
        if region.begin in kept:
            out.extend(lines[region.begin:region.end - 1])   # the body, without the marker lines
            skip_until = region.end
            continue
        message = message_of.get(region.begin)
        out.append(f"{region.indent}{STUB[0]}\n")
        out.append(f"{region.indent}{STUB[1]}({message!r})\n" if message else f"{region.indent}{STUB[1]}\n")
        stub_lines.append(len(out))  # 1-based line number of the raise
        skip_until = region.end
    result = _student_docstring("".join(out), GIVEN_NOTE if regions and len(kept) == len(regions) else STUDENT_NOTE) \
        if regions else "".join(out)
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


def _check_name(function: str, targets: list[str]) -> str:
    """The check target that tests ``function``: the only one, or the one its name starts with
    (``temporal_fc`` for ``temporal_fc_backward``; ``SoftmaxClassifier.init`` for ``__init__``)."""
    if len(targets) == 1:
        return targets[0]
    name = function.replace(".__init__", ".init")
    matching = [t for t in targets if name.startswith(t) or t.startswith(name)]
    return max(matching, key=len) if matching else targets[0]


def stub_messages(registry) -> dict[str, str]:
    """For every task function of the registry (a :class:`course.registry.Registry`), the message its
    stub raises: whose it is, the question, the points of its autograded cell and how to check it."""
    messages = {}
    for task in registry.tasks:
        cell = registry.cells[task.cell]
        hidden = registry.hidden.get(task.cell, {})
        targets = list(dict.fromkeys(c.get("target", hidden.get("target", "")) for c in hidden.get("cases", [])))
        for function in task.functions:
            others = [f for f in task.functions if f != function]
            points = f"{cell.points:g} points" + (f" with {' and '.join(others)}" if others else "")
            name = _check_name(function, [t for t in targets if t]) if any(targets) else ""
            check = f"; check it with check({name!r}) in the notebook or `python -m hwlib.check {name}`" if name else ""
            messages[function] = f"{function} is yours to write ({task.question}: {points}){check}"
    return messages


def strip_tree(package: Path, dest: Path, messages: dict | None = None, given=()) -> list[Path]:
    """Copy the ``.py`` files of ``package`` to ``dest`` (same layout), stripped; return the stripped ones.

    Only Python sources travel (no ``__pycache__``, no data files). With ``messages`` (the assigned
    functions' stub messages), a region whose function is neither assigned nor ``given`` is an error:
    it belongs to no task of the course description.
    """
    stripped = []
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package)
        text = path.read_text()
        if messages is not None:
            orphans = [f for f in (region_functions(text, str(path)) if solution_regions(text, str(path)) else [])
                       if f not in messages and f not in set(given)]
            if orphans:
                raise StripError(f"{path}: solution region(s) in {', '.join(orphans)} belong to no task of the "
                                 "course description (course/questions/*.toml): name the function in a task, "
                                 "or remove its markers to make it given code")
        student = strip_source(text, str(path), messages, given)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(student)
        if student != text:
            stripped.append(rel)
    return stripped

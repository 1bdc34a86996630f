"""What must never reach students, and a scanner that looks for it in any folder or zip.

Secrets, derived from the kit (nothing hand-maintained):

* the distinctive lines of every solution region of ``hwlib/**/*.py`` that the course's profile
  assigns (lines that appear nowhere in the given code, docstrings and the regions the profile ships
  as given included) and of the solution cells of the source notebooks (model answers included);
* the lines of every ``### BEGIN HIDDEN TESTS`` region of the source notebooks, and of every cell
  tagged ``instructor-only`` (summaries and discussions that state answers; the course leaves them out);
* the hidden checks: the lines of the ``[hidden.*]`` tables of ``course/questions/*.toml`` and of
  ``grading/autograde/hidden.py``, and the
  names of the grading modules that stay with the instructor;
* the markers themselves, as whole lines (``### BEGIN SOLUTION`` ...).

:func:`scan` reads ``.ipynb`` files as notebooks (cell sources and outputs), HTML as text (tags
removed, entities decoded), everything else as text, also inside zips, and reports every secret found.
"""

from __future__ import annotations

import html
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from course.paths import COURSE_PACKAGE, GRADING, REPO
from course.registry import load as load_registry

from ..nbgrader.course_root import INSTRUCTOR_ONLY
from .strip import BEGIN, END, region_functions, solution_regions, strip_source

__all__ = ["Secret", "Leak", "secrets", "scan", "MARKERS", "PRIVATE_MODULES"]

MARKERS = (BEGIN, END, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")
# Instructor-only grading files: their names must not appear in a release either.
PRIVATE_MODULES = ("grading/autograde/hidden.py", "sandbox_runner", "sandbox_exec", "course/questions")
MIN_LINE = 18           # shorter lines are too generic to call a leak


@dataclass(frozen=True)
class Secret:
    kind: str       # "solution", "notebook-solution", "instructor-only", "hidden-test", "hidden-check", "marker", "module"
    text: str
    origin: str


@dataclass(frozen=True)
class Leak:
    path: str
    secret: Secret


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _region_lines(source: str, begin: str, end: str) -> list[str]:
    lines, inside = [], False
    for line in source.splitlines():
        s = line.strip()
        if s == begin:
            inside = True
        elif s == end:
            inside = False
        elif inside:
            lines.append(line)
    return lines


def _hidden_tables(toml: str) -> list[str]:
    """The lines of a question file's ``[hidden.<grade_id>]`` tables (comments left out)."""
    lines, inside = [], False
    for line in toml.splitlines():
        if line.startswith("["):
            inside = line.startswith("[hidden.")
        if inside and line.strip() and not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


def secrets(repo: Path = REPO, registry=None) -> list[Secret]:
    """The secrets of the kit at ``repo`` for the course's profile (``registry``; None: the current one)."""
    registry = registry or load_registry()
    found: list[Secret] = []
    given = set()
    # Given code: everything outside the assigned regions, in the modules and in the notebooks.
    modules = sorted(p for p in (repo / "hwlib").rglob("*.py") if "__pycache__" not in p.parts)
    for path in modules:
        given.update(_norm(line) for line in strip_source(path.read_text(), str(path), given=registry.given).splitlines())
    notebook_paths = registry.notebook_paths
    notebooks = [nbformat.read(p, as_version=4) for p in notebook_paths]
    for nb in notebooks:
        for cell in nb.cells:
            if INSTRUCTOR_ONLY in cell.metadata.get("tags", []):
                continue   # instructor-only cells are secrets as a whole (below), never given text
            outside = cell.source
            for marker in ("SOLUTION", "HIDDEN TESTS"):
                for line in _region_lines(cell.source, f"### BEGIN {marker}", f"### END {marker}"):
                    outside = outside.replace(line, "")
            given.update(_norm(line) for line in outside.splitlines())

    given_text = "\n".join(given)  # a line quoted in given text (a docstring's formula) is no secret

    def add(kind, lines, origin):
        for line in lines:
            n = _norm(line)
            if len(n) >= MIN_LINE and n not in given_text:
                found.append(Secret(kind, n, origin))

    for path in modules:
        text = path.read_text()
        regions = solution_regions(text, str(path))
        for region, function in zip(regions, region_functions(text, str(path)) if regions else []):
            if function not in registry.given:
                add("solution", region.body, f"{path.relative_to(repo)}:{region.begin}")
    for path, nb in zip(notebook_paths, notebooks):
        for cell in nb.cells:
            add("notebook-solution", _region_lines(cell.source, BEGIN, END), path.name)
            add("hidden-test", _region_lines(cell.source, "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"), path.name)
            if INSTRUCTOR_ONLY in cell.metadata.get("tags", []):
                add("instructor-only", cell.source.splitlines(), path.name)
    for path in sorted((COURSE_PACKAGE / "questions").glob("*.toml")):
        add("hidden-check", _hidden_tables(path.read_text()), f"course/questions/{path.name}")
    hidden = GRADING / "autograde" / "hidden.py"
    add("hidden-check", [ln for ln in hidden.read_text().splitlines() if not ln.lstrip().startswith("#")],
        "grading/autograde/hidden.py")
    found.extend(Secret("module", name, "grading/") for name in PRIVATE_MODULES)
    found.extend(Secret("marker", m, "solution/hidden-test markers") for m in MARKERS)
    unique = {(s.kind, s.text): s for s in found}
    return list(unique.values())


# --- scanning ----------------------------------------------------------------------------------

def _notebook_text(raw: str) -> str:
    data = json.loads(raw)
    chunks = []
    for cell in data.get("cells", []):
        src = cell.get("source", "")
        chunks.append("".join(src) if isinstance(src, list) else str(src))
        for out in cell.get("outputs", []):
            for key in ("text", "evalue"):
                value = out.get(key, "")
                chunks.append("".join(value) if isinstance(value, list) else str(value))
            chunks.extend(str(t) for t in out.get("traceback", []))
            for mime, value in out.get("data", {}).items():
                if mime.startswith("text/"):
                    chunks.append("".join(value) if isinstance(value, list) else str(value))
    return "\n".join(chunks)


def _html_text(raw: str) -> str:
    raw = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", raw)
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def _texts(path: Path):
    """(name, text) for a file, or for each member of a zip."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield f"{path}!{info.filename}", info.filename, zf.read(info).decode("utf-8", "replace")
        return
    yield str(path), path.name, path.read_bytes().decode("utf-8", "replace")


def scan(root: Path, kinds: tuple[str, ...] | None = None, secret_list: list[Secret] | None = None) -> list[Leak]:
    """Every secret (of the given kinds) found in the files under ``root`` (or in the file ``root``)."""
    secret_list = [s for s in (secret_list or secrets()) if kinds is None or s.kind in kinds]
    files = [root] if Path(root).is_file() else sorted(p for p in Path(root).rglob("*") if p.is_file())
    leaks = []
    for path in files:
        for label, name, raw in _texts(path):
            text = raw
            if name.endswith(".ipynb"):
                try:
                    text = _notebook_text(raw)
                except (ValueError, AttributeError):
                    pass
            elif name.endswith((".html", ".htm")):
                text = _html_text(raw)
            lines = {line.strip() for line in text.splitlines()}
            flat = _norm(text)
            for secret in secret_list:
                if secret.kind == "marker":
                    hit = secret.text in lines
                elif secret.kind == "module":
                    hit = secret.text in label or secret.text in text
                else:
                    hit = secret.text in flat
                if hit:
                    leaks.append(Leak(label, secret))
    return leaks


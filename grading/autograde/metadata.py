"""A submission's nbgrader cell metadata and locked cells, put back as the release gave them, before nbgrader runs.

nbgrader's autograde trusts the student's copy of its cell metadata. It undoes a changed ``points``
of a known cell, but a cell that claims a grade id the assignment does not define (a 500-point
"bonus" cell), a second cell with a known grade id (a copied test cell), a locked question cell
turned into a graded one, or a deleted answer cell after a locked question each make it fail
(``KeyError`` or ``MissingEntry`` in ``OverwriteCells``): the whole submission is then "removed", every
notebook lost to formgrader. And it restores an edited locked cell without a word: the edit, evidence
the TA should see, is gone.

:func:`restore_notebook` runs first, in the trusted intake step (``compose.sanitize``), on the copy
in ``<course>/submitted/<student>/hw4/``, with the release's notebook (the version the student got)
as the reference. Each cell of the release that carries nbgrader metadata (a grade id) is found in
the submission, in this order: by cell id, by grade id (the copy whose content is the release's
first), by content fingerprint (the source, whitespace-normalised). Then:

* a found cell gets the release's nbgrader metadata (and cell type) back; a change of grade id,
  points, ``grade``/``solution``/``locked``/``task`` or cell type is recorded;
* a found *locked* cell (``locked: true``, or a test cell: graded and no solution) whose source,
  whitespace-normalised, differs from the release's is recorded as edited (nbgrader then restores
  its source from the gradebook, as before);
* a graded cell (a test or an answer) not found is added back after the cell it followed in the
  release (nbgrader's ``OverwriteCells.add_missing_cells`` would do so too, but fails when the cell
  before it is a locked, ungraded one);
* any other cell loses its nbgrader metadata and stays, content and all, as a plain cell for the TA
  (one that claimed a grade id or points is recorded; metadata claiming nothing is dropped silently:
  nbgrader fails on it as well).

What was recorded comes back as :class:`Change` records; :func:`flags` makes the lines the
instructor sees in ``grades.csv`` and ``summary.html`` (alike for every student who changed the same
thing: the summary counts them), :func:`details` the lines of the student's problems.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["CLAIMS", "Change", "Flag", "details", "fingerprint", "flags", "is_restore_flag", "restore_notebook",
           "restore_submission"]

CLAIMS = ("grade_id", "points", "grade", "solution", "locked", "task")   # the keys that make a cell count
FLAG_METADATA = "nbgrader metadata edited in {notebook}: restored"
FLAG_LOCKED = "locked cell {grade_id} {verb} in {notebook}: restored from the source"
_FLAG_RE = re.compile(r"(nbgrader metadata edited in \S+: restored"
                      r"|locked cell \S+ (edited|deleted) in \S+: restored from the source)")


class Flag(str):
    """A line for the instructor (``StudentResult.flags``), returned among ``sanitize``'s problems
    (job.py moves it to the flags): a str, so it travels wherever problems do (pickled to Dask workers)."""

    __slots__ = ()


@dataclass
class Change:
    notebook: str
    grade_id: str       # the release's grade id of the cell (or, for an unknown cell, the one it claims)
    kind: str           # "metadata", "unknown", "duplicate", "edited" (a locked cell), "deleted"
    detail: str = ""    # for the TA: what the student's copy said
    locked: bool = False


# --- reading cells (student metadata may be any JSON value) ----------------------------------

def fingerprint(source) -> str:
    """A cell's source, whitespace-normalised: line ends unified, trailing blanks and blank lines dropped."""
    text = "".join(source) if isinstance(source, list) else str(source or "")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines if line.strip())


def _meta(cell):
    """The cell's nbgrader metadata as stored (any JSON value), or None when it has none."""
    metadata = cell.get("metadata")
    return metadata.get("nbgrader") if isinstance(metadata, dict) else None


def _grade_id(meta) -> str | None:
    value = meta.get("grade_id") if isinstance(meta, dict) else None
    return value if isinstance(value, str) and value else None


def _claims(meta) -> bool:
    """Whether nbgrader metadata makes a cell count (a grade id, points, or a grade/solution/locked/task mark)."""
    if meta is None:
        return False
    if not isinstance(meta, dict):
        return True
    return any(bool(meta.get(k)) for k in CLAIMS)


def _is_locked(meta: dict) -> bool:
    """As nbgrader reads it: locked, or a grade cell that is no solution (a test cell)."""
    return bool(meta.get("locked")) or (bool(meta.get("grade")) and not meta.get("solution"))


def _is_graded(meta: dict) -> bool:
    return bool(meta.get("grade")) or bool(meta.get("solution"))


def _number(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _differences(got, want: dict) -> list[str]:
    """What the student's nbgrader metadata says differently from the release's, key by key."""
    if got is None:
        return ["its nbgrader metadata removed"]
    if not isinstance(got, dict):
        return [f"nbgrader metadata {_shown(got)}, not a table"]
    out = []
    for key in CLAIMS:
        mine, theirs = got.get(key), want.get(key)
        if key in ("grade", "solution", "locked", "task"):
            mine, theirs = bool(mine), bool(theirs)
        elif key == "points":
            mine, theirs = _number(mine), _number(theirs)
        if mine != theirs:
            out.append(f"{key} {_shown(got.get(key))} (the assignment's: {_shown(want.get(key))})")
    return out


def _shown(value) -> str:
    text = json.dumps(value) if value is not None else "none"
    return text if len(text) <= 60 else text[:57] + "..."


def _set_type(cell, cell_type: str) -> None:
    """Turn ``cell`` into a ``cell_type`` cell (its source, id and metadata kept)."""
    cell["cell_type"] = cell_type
    for key in ("outputs", "execution_count", "attachments"):
        cell.pop(key, None)
    if cell_type == "code":
        cell["outputs"], cell["execution_count"] = [], None


# --- one notebook ------------------------------------------------------------------------------

def restore_notebook(nb, reference, name: str = "notebook.ipynb") -> list[Change]:
    """Put ``reference``'s nbgrader metadata back into ``nb`` (both nbformat v4 notebooks; ``nb`` is
    changed in place), as the module's docstring says; return what was changed (silent repairs, such
    as empty nbgrader metadata dropped or a checksum put back, are not returned)."""
    refs = [r for r in reference.cells if isinstance(_meta(r), dict) and _grade_id(_meta(r))]
    cells = nb.cells
    matched: dict[int, int] = {}                      # index in refs -> index in cells
    used: set[int] = set()

    def take(i: int, j: int) -> None:
        matched[i] = j
        used.add(j)

    by_id: dict[str, list[int]] = {}
    for j, cell in enumerate(cells):
        if isinstance(cell.get("id"), str):
            by_id.setdefault(cell["id"], []).append(j)
    for i, ref in enumerate(refs):                    # 1. the cell id
        free = [j for j in by_id.get(ref.get("id"), []) if j not in used]
        if ref.get("id") and free:
            take(i, free[0])
    for i, ref in enumerate(refs):                    # 2. the grade id (the copy with the release's content first)
        if i in matched:
            continue
        gid = _grade_id(_meta(ref))
        free = [j for j, c in enumerate(cells) if j not in used and _grade_id(_meta(c)) == gid]
        if free:
            same = [j for j in free if fingerprint(cells[j].get("source")) == fingerprint(ref.source)]
            take(i, (same or free)[0])
    for i, ref in enumerate(refs):                    # 3. the content (a cell whose metadata was removed or renamed)
        want = fingerprint(ref.source)
        if i in matched or not want:
            continue
        free = [j for j, c in enumerate(cells) if j not in used and c.get("cell_type") == ref.cell_type
                and fingerprint(c.get("source")) == want]
        if free:
            take(i, free[0])

    changes: list[Change] = []
    for i, j in sorted(matched.items()):
        ref, cell = refs[i], cells[j]
        want, got = _meta(ref), _meta(cell)
        gid = _grade_id(want)
        diffs = _differences(got, want)
        if cell.get("cell_type") != ref.cell_type:
            diffs.append(f"cell type {cell.get('cell_type')} (the assignment's: {ref.cell_type})")
            _set_type(cell, ref.cell_type)
        if diffs:
            changes.append(Change(name, gid, "metadata", "; ".join(diffs)))
        if got != want:
            cell["metadata"]["nbgrader"] = copy.deepcopy(want)
        if _is_locked(want) and fingerprint(cell.get("source")) != fingerprint(ref.source):
            changes.append(Change(name, gid, "edited", locked=True))

    known = {_grade_id(_meta(r)) for r in refs}
    for j, cell in enumerate(cells):
        if j in used or _meta(cell) is None:
            continue
        got = _meta(cell)
        if _claims(got):
            gid = _grade_id(got) or ""
            points = got.get("points") if isinstance(got, dict) else None
            if gid in known:
                changes.append(Change(name, gid, "duplicate", f"a second cell with grade id {gid} (a copy)"))
            else:
                claim = f" worth {_shown(points)} points" if points not in (None, 0, False) else ""
                what = f"grade id {_shown(gid)}" if gid else f"nbgrader metadata {_shown(got)}"
                changes.append(Change(name, gid, "unknown", f"a cell{claim} with {what}, which the assignment "
                                                            "does not define"))
        del cell["metadata"]["nbgrader"]

    # Graded cells not found: added back after the cell they followed in the release.
    where = {id(refs[i]): cells[j] for i, j in matched.items()}
    present = {c.get("id"): c for c in cells if isinstance(c.get("id"), str)}
    for k, ref in enumerate(reference.cells):
        meta = _meta(ref)
        if not (isinstance(meta, dict) and _grade_id(meta) and _is_graded(meta)) or id(ref) in where:
            continue
        anchor = next((where.get(id(prev)) or present.get(prev.get("id"))
                       for prev in reversed(reference.cells[:k])
                       if where.get(id(prev)) is not None or prev.get("id") in present), None)
        position = next((n + 1 for n, c in enumerate(nb.cells) if c is anchor), 0)
        added = copy.deepcopy(ref)
        if added.cell_type == "code":
            added.outputs, added.execution_count = [], None
        if not isinstance(nb.get("nbformat_minor"), int) or nb.nbformat_minor < 5:
            added.pop("id", None)
        elif added.get("id") in present:
            added["id"] = uuid.uuid4().hex[:8]
        nb.cells.insert(position, added)
        where[id(ref)] = added
        changes.append(Change(name, _grade_id(meta), "deleted", locked=_is_locked(meta)))
    return changes


# --- a submission ------------------------------------------------------------------------------

def restore_submission(submitted: Path, release: Path) -> list[Change]:
    """:func:`restore_notebook` for every notebook of ``submitted`` that ``release`` has (each
    rewritten only when changed); notebooks that do not parse are left to nbgrader."""
    changes: list[Change] = []
    for path in sorted(Path(submitted).glob("*.ipynb")):
        reference = Path(release) / path.name
        if not path.is_file() or path.is_symlink() or not reference.is_file():
            continue
        try:
            nb = nbformat.read(path, as_version=4)
            ref = nbformat.read(reference, as_version=4)
            before = json.dumps(nb, sort_keys=True)
            found = restore_notebook(nb, ref, path.name)
        except Exception:  # noqa: BLE001, S112 (anything unreadable: nbgrader reports it, as before)
            continue
        if json.dumps(nb, sort_keys=True) != before:
            nbformat.write(nb, path)
        changes += found
    return changes


def flags(changes: list[Change]) -> list[Flag]:
    """The instructor's lines: one per notebook whose nbgrader metadata was edited, one per locked cell
    edited or deleted (a deleted answer cell is no flag: :func:`details` names it)."""
    out: list[Flag] = []
    for c in changes:
        if c.kind in ("metadata", "unknown", "duplicate"):
            line = FLAG_METADATA.format(notebook=c.notebook)
        elif c.locked and c.kind in ("edited", "deleted"):
            line = FLAG_LOCKED.format(grade_id=c.grade_id, verb=c.kind, notebook=c.notebook)
        else:
            continue
        if line not in out:
            out.append(Flag(line))
    return out


def details(changes: list[Change]) -> list[str]:
    """Lines for the student's problems: what each metadata change was (the flags say the rest)."""
    out = []
    for c in changes:
        if c.kind == "metadata":
            out.append(f"{c.notebook}: cell {c.grade_id}: nbgrader metadata edited ({c.detail}): restored")
        elif c.kind in ("unknown", "duplicate"):
            out.append(f"{c.notebook}: {c.detail}: kept as a plain cell, worth no points")
        elif c.kind == "deleted" and not c.locked:
            out.append(f"{c.notebook}: answer cell {c.grade_id} was deleted: added back as released (unanswered)")
    return out


def is_restore_flag(line: str) -> bool:
    """Whether a flag (``grades.csv``, a saved result) is one of :func:`flags`' lines."""
    return bool(_FLAG_RE.fullmatch(line))

"""Collect submissions into the course's ``submitted/<student>/hw4/`` folders, safely.

Accepted input folders (mixed too):

* nbgrader's layout: ``DIR/<student>/hw4/...`` (or ``DIR/<student>/...`` holding the notebooks);
* per-student zips as an LMS exports them: ``DIR/<name>.zip``. The student id is the zip's name up
  to its first underscore (Canvas: ``doejane_12345_67890_hw4.zip`` -> ``doejane``). Inside, the
  assignment folder is the shallowest folder holding a notebook or ``hwlib/``.

Submissions are untrusted data here: only regular files are copied (a symlink could point at the
reference solution), paths must stay inside the folder (no ``..``, no absolute names), sizes and
counts are capped, and each notebook must parse as a notebook. A notebook that does not is left out
(nbgrader then scores it as missing) and the problem is reported in the student's feedback.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import nbformat

from .sandbox import copy_regular_files

__all__ = ["Intake", "collect", "student_id_of", "MAX_FILES", "MAX_BYTES"]

MAX_FILES = 2000
MAX_BYTES = 200 << 20            # per submission, uncompressed
MAX_NOTEBOOK_BYTES = 50 << 20
_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Intake:
    student: str
    source: str                          # where it came from (folder or zip)
    problems: list = field(default_factory=list)


def student_id_of(name: str) -> str:
    """A safe student id from a folder or zip name."""
    stem = name[:-4] if name.lower().endswith(".zip") else name
    if name.lower().endswith(".zip") and "_" in stem:
        stem = stem.split("_", 1)[0]
    sid = _ID.sub("-", stem).strip(".-")
    if not sid:
        raise ValueError(f"cannot make a student id from {name!r}")
    return sid


def _assignment_root(names: list[PurePosixPath]) -> PurePosixPath | None:
    """The shallowest folder that holds a notebook or an ``hwlib`` folder."""
    candidates = []
    for n in names:
        if n.suffix == ".ipynb":
            candidates.append(n.parent)
        if "hwlib" in n.parts:
            candidates.append(PurePosixPath(*n.parts[: n.parts.index("hwlib")]))
    if not candidates:
        return None
    return min(candidates, key=lambda p: (len(p.parts), str(p)))


def _extract_zip(path: Path, dest: Path, problems: list) -> None:
    with zipfile.ZipFile(path) as zf:
        members, total = [], 0
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                continue
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                problems.append(f"skipped unsafe path in the zip: {info.filename}")
                continue
            if mode and not stat.S_ISREG(mode):
                problems.append(f"skipped a link or special file in the zip: {info.filename}")
                continue
            if "__MACOSX" in name.parts or name.name.startswith("._"):
                continue
            total += info.file_size
            members.append((name, info))
        if len(members) > MAX_FILES or total > MAX_BYTES:
            raise ValueError(f"the zip holds {len(members)} files, {total / 1e6:.0f} MB uncompressed "
                             f"(limits: {MAX_FILES} files, {MAX_BYTES / 1e6:.0f} MB)")
        root = _assignment_root([n for n, _ in members])
        if root is None:
            raise ValueError("the zip holds no notebook and no hwlib/ folder")
        for name, info in members:
            try:
                rel = name.relative_to(root)
            except ValueError:
                continue
            target = dest / Path(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)


def _copy_folder(folder: Path, assignment: str, dest: Path, problems: list) -> None:
    root = folder / assignment if (folder / assignment).is_dir() else folder
    files = [p for p in root.rglob("*")]
    if len(files) > MAX_FILES:
        raise ValueError(f"the folder holds {len(files)} entries (limit {MAX_FILES})")
    skipped = copy_regular_files(root, dest)
    problems.extend(f"skipped a link or special file: {s}" for s in skipped)
    total = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    if total > MAX_BYTES:
        raise ValueError(f"the submission holds {total / 1e6:.0f} MB (limit {MAX_BYTES / 1e6:.0f} MB)")


def _check_notebooks(folder: Path, problems: list) -> None:
    """Leave out notebooks that do not parse; nbgrader scores them as missing."""
    for nb in sorted(folder.glob("*.ipynb")):
        try:
            if nb.stat().st_size > MAX_NOTEBOOK_BYTES:
                raise ValueError(f"{nb.stat().st_size / 1e6:.0f} MB (limit {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB)")
            nbformat.validate(nbformat.read(nb, as_version=4))
        except Exception as exc:  # noqa: BLE001 (any parse error means: not a notebook)
            problems.append(f"{nb.name} is not a valid notebook and was not graded "
                            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
            bad = folder / ".invalid"
            bad.mkdir(exist_ok=True)
            shutil.move(str(nb), bad / nb.name)


def collect(source: Path, submitted: Path, assignment: str) -> list[Intake]:
    """Copy every submission found in ``source`` to ``submitted/<student>/<assignment>/``."""
    source, submitted = Path(source).resolve(), Path(submitted).resolve()
    intakes, seen = [], set()
    entries = sorted(p for p in source.iterdir() if not p.name.startswith("."))
    for entry in entries:
        if entry.is_symlink() or not (entry.is_dir() or entry.suffix.lower() == ".zip"):
            continue
        try:
            sid = student_id_of(entry.name)
        except ValueError:
            continue
        if sid in seen:
            raise ValueError(f"two submissions for student {sid!r} in {source} (rename one)")
        seen.add(sid)
        intake = Intake(sid, str(entry))
        dest = submitted / sid / assignment
        staging = submitted / sid / f".{assignment}.incoming"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            if entry.is_dir():  # (also when it is the course's own submitted/ folder: a checked copy)
                _copy_folder(entry, assignment, staging, intake.problems)
            else:
                _extract_zip(entry, staging, intake.problems)
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            intake.problems.append(f"the submission could not be read: {exc}")
        _check_notebooks(staging, intake.problems)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
        intakes.append(intake)
    return intakes

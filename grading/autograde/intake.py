"""Collect submissions into the course's ``submitted/<student>/hw4/`` folders, safely.

Accepted input folders (mixed too):

* nbgrader's layout: ``DIR/<student>/hw4/...`` (or ``DIR/<student>/...`` holding the notebooks), with
  the ``timestamp.txt`` nbgrader's exchange writes (the submission time);
* per-student zips as an LMS exports them: ``DIR/<name>.zip``. Inside, the assignment folder is the
  shallowest folder holding a notebook or ``hwlib/``; the submission time is the newest entry's.

**Student ids** keep what the LMS gives: a zip's name up to its first numeric part
(Canvas: ``doejane_12345_67890_hw4.zip`` -> ``doejane_12345``, the login name and the Canvas user id;
``doejane_LATE_12345_67890_hw4.zip`` -> ``doejane_12345``, the ``LATE`` marker recorded); with no
numeric part, up to its first underscore (``doejane_hw4.zip`` -> ``doejane``). A folder's name is the
id as it is. Characters other than letters, digits, ``.``, ``_``, ``-`` become ``-``.

**Duplicates** (two entries giving one id, e.g. a Canvas resubmission ``..._hw4-1.zip``): the latest
wins, by submission time, then (no time, or equal times) by name in natural order; the others are
left out, and the student's problems say which was graded and which were not. The run goes on.

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
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import nbformat

from .deadlines import NBGRADER_TIMESTAMP, nbgrader_time, write_timestamp, zip_time
from .sandbox import copy_regular_files

__all__ = ["Intake", "collect", "student_id_of", "lms_marks_late", "MAX_FILES", "MAX_BYTES"]

MAX_FILES = 2000
MAX_BYTES = 200 << 20            # per submission, uncompressed
MAX_NOTEBOOK_BYTES = 50 << 20
_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Intake:
    student: str
    source: str                          # where it came from (folder or zip)
    problems: list = field(default_factory=list)
    submitted_at: datetime | None = None # when it was handed in (None: unknown)
    time_source: str = ""                # where that time came from
    lms_late: bool = False               # the LMS marked it late (Canvas: ``_LATE_`` in the name)
    left_out: list = field(default_factory=list)   # other submissions of this id (older duplicates)

    def submission(self) -> dict:
        """What the grades need later (plain data, saved with the student's results)."""
        when = self.submitted_at.astimezone(timezone.utc).isoformat() if self.submitted_at else None
        return {"submitted_at": when,
                "time_source": self.time_source, "lms_late": self.lms_late, "source": Path(self.source).name}


def _parts(name: str) -> list[str]:
    stem = name[:-4] if name.lower().endswith(".zip") else name
    return stem.split("_")


def lms_marks_late(name: str) -> bool:
    """Whether an LMS zip name carries Canvas's late marker (``doejane_LATE_12345_...``)."""
    parts = _parts(name)
    return name.lower().endswith(".zip") and len(parts) > 2 and parts[1] == "LATE"


def student_id_of(name: str) -> str:
    """A safe student id from a folder or zip name (the rule is in the module's docstring)."""
    stem = name
    if name.lower().endswith(".zip"):
        parts = _parts(name)
        if lms_marks_late(name):
            del parts[1]
        numeric = next((i for i, p in enumerate(parts) if i > 0 and p.isdigit()), None)
        stem = "_".join(parts[: numeric + 1]) if numeric is not None else parts[0]
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
    """Extract the assignment folder of a zip into ``dest`` (a student's ``timestamp.txt`` is dropped)."""
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
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):   # (no type bits: Python's writestr, a file)
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
            if rel.as_posix() == NBGRADER_TIMESTAMP:
                continue  # the time of a zip is its entries' (written below), not a file the student adds
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


def _natural(name: str) -> list:
    """A sort key reading digit runs as numbers (``hw4-2`` before ``hw4-10``)."""
    stem = name[:-4] if name.lower().endswith(".zip") else name
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", stem)]


def _submission_time(entry: Path, assignment: str, tz) -> tuple[datetime | None, str]:
    """When ``entry`` was handed in, and where that time comes from (see grading/autograde/deadlines.py)."""
    if entry.is_dir():
        root = entry / assignment if (entry / assignment).is_dir() else entry
        when = nbgrader_time(root)
        return when, "nbgrader timestamp.txt" if when else ""
    try:
        with zipfile.ZipFile(entry) as zf:
            when = zip_time(zf.infolist(), tz)
    except (zipfile.BadZipFile, OSError):
        return None, ""
    return when, "zip entry times" if when else ""


def _pick_latest(sid: str, entries: list[Path], assignment: str, tz) -> Intake:
    """The intake of the latest of ``entries`` (one id's submissions), the others named as left out."""
    timed = sorted(((entry, *_submission_time(entry, assignment, tz)) for entry in entries),
                   key=lambda t: (t[1] is not None, t[1] or datetime.min.replace(tzinfo=timezone.utc),
                                  _natural(t[0].name)))
    entry, when, how = timed[-1]
    intake = Intake(sid, str(entry), submitted_at=when, time_source=how, lms_late=lms_marks_late(entry.name))
    if len(timed) > 1:
        def at(t):
            return t.isoformat(timespec="minutes") if t else "no time"
        intake.left_out = [e.name for e, _, _ in timed[:-1]]
        others = ", ".join(f"{e.name} ({at(t)})" for e, t, _ in timed[:-1])
        intake.problems.append(f"{len(timed)} submissions for {sid}: graded {entry.name} ({at(when)}), "
                               f"left out {others}: the latest wins")
    return intake


def collect(source: Path, submitted: Path, assignment: str, *, tz=timezone.utc,
            students: set | None = None) -> list[Intake]:
    """Copy every submission found in ``source`` to ``submitted/<student>/<assignment>/``.

    ``tz``: the timezone a zip's local entry times are read in (the course's); ``students``: take only
    these ids (the others' folders are not touched); an id with no submission is an error.
    """
    source, submitted = Path(source).resolve(), Path(submitted).resolve()
    by_id: dict[str, list[Path]] = {}
    for entry in sorted(p for p in source.iterdir() if not p.name.startswith(".")):
        if entry.is_symlink() or not (entry.is_dir() or entry.suffix.lower() == ".zip"):
            continue
        try:
            by_id.setdefault(student_id_of(entry.name), []).append(entry)
        except ValueError:
            continue
    if students is not None:
        missing = sorted(set(students) - set(by_id))
        if missing:
            known = ", ".join(sorted(by_id)[:12]) + (" ..." if len(by_id) > 12 else "")
            raise ValueError(f"no submission for {', '.join(missing)} in {source} (student ids there: "
                             f"{known or 'none'}); give ids as grades.csv spells them")
    intakes = []
    for sid in sorted(by_id):
        if students is not None and sid not in students:
            continue
        intake = _pick_latest(sid, by_id[sid], assignment, tz)
        entry = Path(intake.source)
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
        stamp = staging / NBGRADER_TIMESTAMP
        if intake.submitted_at is not None:
            write_timestamp(staging, intake.submitted_at)   # nbgrader records the time as well
        elif stamp.exists():
            stamp.unlink()
            intake.problems.append(f"{NBGRADER_TIMESTAMP} could not be read as a time and was ignored")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
        intakes.append(intake)
    return intakes

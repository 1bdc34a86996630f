"""Collect submissions into the course's ``submitted/<student>/hw4/`` folders, safely.

Accepted input folders (mixed too):

* nbgrader's layout: ``DIR/<student>/hw4/...`` (or ``DIR/<student>/...`` holding the notebooks), with
  the ``timestamp.txt`` nbgrader's exchange writes (the submission time);
* per-student zips as an LMS exports them: ``DIR/<name>.zip``. Inside, the assignment folder is the
  shallowest folder holding a notebook or ``hwlib/``; the submission time is the newest entry's.

**Every entry of ``DIR`` is accounted for**: it is graded (one row of ``grades.csv``), or left out as
an older duplicate of a graded one (named in that student's problems), or listed as *not graded* with
the reason (:attr:`Intakes.not_graded`: not a folder or a zip, a link, a system file such as
``.DS_Store``), which the run logs and ``summary.html`` lists (recorded in ``<course>/not_graded.json``,
beside ``submitted/``). A folder or zip that cannot be taken (unreadable, empty, over the size caps) is
*refused*: the student still gets a row (no points), the refusal is their problem, no copy is kept.

**Student ids** keep what the LMS gives: a zip's name up to its first numeric part
(Canvas: ``doejane_12345_67890_hw4.zip`` -> ``doejane_12345``, the login name and the Canvas user id;
``doejane_LATE_12345_67890_hw4.zip`` -> ``doejane_12345``, the ``LATE`` marker recorded); with no
numeric part, up to its first underscore (``doejane_hw4.zip`` -> ``doejane``). A folder's name is the
id as it is. That part of the name (the *student name*) is read in Unicode normal form **NFC**, so
``José`` typed on a Mac (decomposed, NFD) and on Linux (composed) is one student, and the id is NFC too.

* A student name made of letters, marks and digits of any script (Unicode categories L, M, N) and
  ``.``, ``_``, ``-``, not starting or ending with ``.`` or ``-``, at most 64 characters and 128 bytes
  in UTF-8, **is** the id: ``José``, ``Josè``, ``日本語``, ``doejane_12345``.
* Any other name is made safe and given a stable hash: runs of other characters become ``-``, ``.``
  and ``-`` are stripped from both ends, the rest is cut to fit, and ``~`` plus the first 8 hex digits
  of the SHA-256 of the (NFC) student name is appended: ``a b'; <i>x`` -> ``a-b-i-x~<hash>``; a name
  left with nothing (``-.-``, ``...``) -> ``student~<hash>``. Two different names therefore never share
  an id, and an id is its own id again (the course's ``submitted/`` folder can be collected as it is).
* Except where the LMS gives its own key: in a zip name that carries the LMS's numeric user id, that
  number identifies the person (Canvas matches grades by it: export.py), so the name is only cleaned as
  above, without a hash (``doe jane (x)_777_1_a.zip`` -> ``doe-jane-x-_777``), unless it is too long.
  Two such names with one user id are one student (latest wins); with different user ids they differ.

Why these characters: an id is a folder name under ``submitted/``, ``autograded/``, ``feedback/``, a
file name under ``results/``, a key of nbgrader's gradebook (SQLite, ``String(128)``: non-ASCII ids
work there, in autograde and in feedback, tested in tests/test_grading_intake_names.py), a cell of the
CSV files and text in HTML pages. nbgrader reads the id as a *file glob* (``[``, ``*``, ``?`` break it),
splits exchange names at ``+`` and exclusion lists at ``,``, strips surrounding white space and
ignores names starting with ``.``; a TA types ids on a command line. None of these can occur in an id.

**Duplicates** (two entries giving one id, e.g. a Canvas resubmission ``..._hw4-1.zip``): the latest
wins, by submission time, then (no time, or equal times) by name in natural order; the others are
left out, and the student's problems say which was graded and which were not. The run goes on.

Submissions are untrusted data here: only regular files are copied (a symlink could point at the
reference solution), paths must stay inside the folder (no ``..``, no absolute names), sizes and
counts are capped **before** anything is copied (a folder: the sizes of its regular files, by
``lstat``; a zip: the uncompressed sizes its entries declare, and extraction stops when more comes
out), and each notebook must parse as a notebook. A notebook that does not is left out (nbgrader then
scores it as missing) and the problem is reported in the student's feedback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import unicodedata
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path, PurePosixPath

import nbformat

from .deadlines import NBGRADER_TIMESTAMP, nbgrader_time, write_timestamp, zip_time
from .sandbox import copy_regular_files

__all__ = ["Intake", "Intakes", "collect", "student_id_of", "lms_marks_late", "not_graded", "shown",
           "MAX_FILES", "MAX_BYTES", "NOT_GRADED"]

MAX_FILES = 2000
MAX_BYTES = 200 << 20            # per submission, uncompressed
MAX_NOTEBOOK_BYTES = 50 << 20
MAX_ID_CHARS = 64                # nbgrader's gradebook: String(128); a path component: 255 bytes
MAX_ID_BYTES = 128
NOT_GRADED = "not_graded.json"   # in the course folder (beside submitted/): what was not graded, and why
# Not submissions: what operating systems and tools leave in a folder (still listed as not graded).
SYSTEM_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", "__MACOSX", ".ipynb_checkpoints", ".git",
                          ".Trashes", ".Spotlight-V100", ".fseventsd", ".TemporaryItems"})
_HASHED = re.compile(r"(.+)~([0-9a-f]{8})")


class Refused(Exception):
    """A submission that is not taken (nothing of it is kept); the message says why."""


@dataclass
class Intake:
    student: str
    source: str                          # where it came from (folder or zip)
    problems: list = field(default_factory=list)
    submitted_at: datetime | None = None # when it was handed in (None: unknown)
    time_source: str = ""                # where that time came from
    lms_late: bool = False               # the LMS marked it late (Canvas: ``_LATE_`` in the name)
    left_out: list = field(default_factory=list)   # other submissions of this id (older duplicates)
    refused: str = ""                    # why the submission was not taken ("": it was)

    def submission(self) -> dict:
        """What the grades need later (plain data, saved with the student's results)."""
        when = self.submitted_at.astimezone(UTC).isoformat() if self.submitted_at else None
        return {"submitted_at": when, "time_source": self.time_source, "lms_late": self.lms_late,
                "source": shown(Path(self.source).name), "refused": self.refused, "left_out": list(self.left_out)}


class Intakes(list):
    """What :func:`collect` returns: the intakes (a list, one per student), and ``not_graded``: the
    entries of the folder that are no student's submission, as ``{"entry": name, "reason": why}``."""

    def __init__(self, intakes=(), not_graded=()):
        super().__init__(intakes)
        self.not_graded = list(not_graded)


# --- names and ids -----------------------------------------------------------------------------

def shown(name: str) -> str:
    """``name`` as it can be printed: control and format characters and undecodable bytes escaped."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in name)


def _parts(name: str) -> list[str]:
    stem = name[:-4] if name.lower().endswith(".zip") else name
    return stem.split("_")


def lms_marks_late(name: str) -> bool:
    """Whether an LMS zip name carries Canvas's late marker (``doejane_LATE_12345_...``)."""
    parts = _parts(name)
    return name.lower().endswith(".zip") and len(parts) > 2 and parts[1] == "LATE"


def _safe(c: str) -> bool:
    return c in "._-" or unicodedata.category(c)[0] in "LMN"


def _fits(text: str, chars: int, nbytes: int) -> bool:
    return len(text) <= chars and len(text.encode("utf-8", "surrogatepass")) <= nbytes


def _is_id(text: str) -> bool:
    """Whether ``text`` is an id as it is (see the module's docstring)."""
    match = _HASHED.fullmatch(text)
    body = match.group(1) if match else text
    return (bool(body) and body.strip(".-") == body and all(map(_safe, body))
            and unicodedata.is_normalized("NFC", text) and _fits(text, MAX_ID_CHARS, MAX_ID_BYTES))


def _cleaned(text: str, chars: int = MAX_ID_CHARS, nbytes: int = MAX_ID_BYTES) -> str:
    """Runs of unsafe characters as ``-``, ``.`` and ``-`` stripped from the ends, cut to fit."""
    out, run = [], False
    for c in text:
        if _safe(c):
            out.append(c)
        elif not run:
            out.append("-")
        run = not _safe(c)
    cleaned = "".join(out).strip(".-")
    while cleaned and not _fits(cleaned, chars, nbytes):
        cleaned = cleaned[:-1].rstrip(".-")
    return cleaned


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def _identity(name: str) -> tuple[str, str, str]:
    """``(id, student name, LMS user id or "")`` of a folder or zip name."""
    name = unicodedata.normalize("NFC", name)
    stem, uid = name, ""
    if name.lower().endswith(".zip"):
        parts = _parts(name)
        if lms_marks_late(name):
            del parts[1]
        numeric = next((i for i, p in enumerate(parts) if i > 0 and p.isascii() and p.isdigit()), None)
        stem = "_".join(parts[: numeric + 1]) if numeric is not None else parts[0]
        uid = parts[numeric] if numeric is not None else ""
    if _is_id(stem):
        return stem, stem, uid
    if uid:  # the LMS user id identifies the person: the name is cleaned only (module docstring)
        cleaned = _cleaned(stem, 10 ** 9, 10 ** 9)
        if cleaned.endswith("_" + uid) and _is_id(cleaned):
            return cleaned, stem, uid
    return f"{_cleaned(stem, MAX_ID_CHARS - 9, MAX_ID_BYTES - 9) or 'student'}~{_digest(stem)}", stem, uid


def student_id_of(name: str) -> str:
    """A safe student id from a folder or zip name (the rule is in the module's docstring)."""
    return _identity(name)[0]


# --- sizes -------------------------------------------------------------------------------------

def _over(what: str, size: int, limit: int) -> str:
    """``"<what> 210.3 MiB, over the limit of 200.0 MiB"``: one unit on both sides, the limit's."""
    unit, scale = next((u, s) for u, s in (("MiB", 1 << 20), ("KiB", 1 << 10), ("bytes", 1)) if limit >= s or s == 1)
    if scale == 1:
        have, cap = f"{size} bytes", f"{limit} bytes"
    else:
        have, cap = f"{size / scale:.1f} {unit}", f"{limit / scale:.1f} {unit}"
        if have == cap:
            have, cap = f"{have} ({size:,} bytes)", f"{cap} ({limit:,} bytes)"
    return f"{what} {have}, over the limit of {cap}"


def _measure(root: Path, max_files: int, max_bytes: int) -> list[PurePosixPath]:
    """The regular files under ``root`` (relative), checked against the caps before anything is copied:
    their sizes by ``lstat`` (links and special files are not copied, so they do not count)."""
    def fail(exc):
        raise exc

    files, entries, total = [], 0, 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=fail):
        entries += len(dirnames) + len(filenames)
        if entries > max_files:
            raise Refused(f"the folder holds more than {max_files} entries (limit {max_files})")
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
                files.append(PurePosixPath(Path(dirpath, name).relative_to(root).as_posix()))
    if total > max_bytes:
        raise Refused(_over("the submission holds", total, max_bytes))
    return files


# --- copying -----------------------------------------------------------------------------------

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


def _extract_zip(path: Path, dest: Path, problems: list, max_files: int, max_bytes: int) -> None:
    """Extract the assignment folder of a zip into ``dest`` (a student's ``timestamp.txt`` is dropped)."""
    with zipfile.ZipFile(path) as zf:
        members, total = [], 0
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                continue
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                problems.append(f"skipped unsafe path in the zip: {shown(info.filename)}")
                continue
            if stat.S_IFMT(mode) and not stat.S_ISREG(mode):   # (no type bits: Python's writestr, a file)
                problems.append(f"skipped a link or special file in the zip: {shown(info.filename)}")
                continue
            if "__MACOSX" in name.parts or name.name.startswith("._"):
                continue
            total += info.file_size
            members.append((name, info))
        if len(members) > max_files:
            raise Refused(f"the zip holds {len(members)} files (limit {max_files})")
        if total > max_bytes:
            raise Refused(_over("the zip's files declare", total, max_bytes) + " uncompressed")
        root = _assignment_root([n for n, _ in members])
        if root is None:
            raise Refused("the zip holds no notebook and no hwlib/ folder")
        written = 0
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
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > max_bytes:   # more comes out than the entries declare
                        raise Refused(_over("the zip's files expand to at least", written, max_bytes)
                                      + " (more than they declare)")
                    out.write(chunk)


def _copy_folder(folder: Path, assignment: str, dest: Path, problems: list, max_files: int, max_bytes: int) -> None:
    root = folder / assignment if (folder / assignment).is_dir() else folder
    if _assignment_root(_measure(root, max_files, max_bytes)) is None:
        raise Refused("the folder holds no notebook and no hwlib/ folder")
    skipped = copy_regular_files(root, dest)
    problems.extend(f"skipped a link or special file: {shown(s)}" for s in skipped)
    _measure(dest, max_files, max_bytes)   # (it changed while being copied: the copy is checked too)


def _check_notebooks(folder: Path, problems: list) -> None:
    """Leave out notebooks that do not parse; nbgrader scores them as missing."""
    for nb in sorted(folder.glob("*.ipynb")):
        try:
            size = nb.stat().st_size
            if size > MAX_NOTEBOOK_BYTES:
                raise ValueError(_over("the notebook holds", size, MAX_NOTEBOOK_BYTES))
            nbformat.validate(nbformat.read(nb, as_version=4))
        except Exception as exc:  # noqa: BLE001 (any parse error means: not a notebook)
            problems.append(f"{shown(nb.name)} is not a valid notebook and was not graded "
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
    except (zipfile.BadZipFile, OSError, ValueError):
        return None, ""
    return when, "zip entry times" if when else ""


def _pick_latest(sid: str, entries: list[Path], assignment: str, tz) -> Intake:
    """The intake of the latest of ``entries`` (one id's submissions), the others named as left out."""
    timed = sorted(((entry, *_submission_time(entry, assignment, tz)) for entry in entries),
                   key=lambda t: (t[1] is not None, t[1] or datetime.min.replace(tzinfo=UTC),
                                  _natural(t[0].name)))
    entry, when, how = timed[-1]
    intake = Intake(sid, str(entry), submitted_at=when, time_source=how, lms_late=lms_marks_late(entry.name))
    if len(timed) > 1:
        def at(t):
            return t.isoformat(timespec="minutes") if t else "no time"
        intake.left_out = [shown(e.name) for e, _, _ in timed[:-1]]
        others = ", ".join(f"{shown(e.name)} ({at(t)})" for e, t, _ in timed[:-1])
        intake.problems.append(f"{len(timed)} submissions for {sid}: graded {shown(entry.name)} ({at(when)}), "
                               f"left out {others}: the latest wins")
    return intake


def _not_a_submission(entry: Path) -> str:
    """Why ``entry`` is no submission ("": it is a folder or a zip, a candidate)."""
    if entry.name in SYSTEM_NAMES:
        return "a system file or folder, not a submission"
    try:
        mode = entry.lstat().st_mode
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are not followed)"
    if stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and entry.name.lower().endswith(".zip")):
        return ""
    return "not a folder or a .zip file" + ("" if stat.S_ISREG(mode) else " (a special file)")


def not_graded(course: Path) -> list[dict]:
    """What the last intake into ``course`` did not grade: ``[{"entry", "reason"}]`` (``NOT_GRADED``)."""
    path = Path(course) / NOT_GRADED
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    except (OSError, ValueError):
        return []


def collect(source: Path, submitted: Path, assignment: str, *, tz=UTC, students: set | None = None,
            max_bytes: int = MAX_BYTES, max_files: int = MAX_FILES) -> Intakes:
    """Copy every submission found in ``source`` to ``submitted/<student>/<assignment>/``.

    ``tz``: the timezone a zip's local entry times are read in (the course's); ``students``: take only
    these ids (the others' folders are not touched); an id with no submission is an error.
    ``max_bytes``, ``max_files``: the caps per submission (uncompressed). The entries that are no
    submission are returned as ``not_graded`` and written to ``submitted/../not_graded.json``.
    """
    source, submitted = Path(source).resolve(), Path(submitted).resolve()
    by_id: dict[str, list[tuple[Path, str, str]]] = {}
    refused = []
    for entry in sorted(source.iterdir(), key=lambda p: p.name):
        why = _not_a_submission(entry)
        if why:
            refused.append({"entry": shown(entry.name), "reason": why})
            continue
        sid, name, uid = _identity(entry.name)
        by_id.setdefault(sid, []).append((entry, name, uid))
    for sid, found in list(by_id.items()):
        # One id, different names: one student when the names carry one LMS user id, or a name is the id
        # itself (the course's own submitted/ folder); otherwise only a hash collision, never merged.
        names = {name for _, name, _ in found if name != sid}
        uids = {uid for _, name, uid in found if name != sid}
        if len(names) > 1 and (len(uids) > 1 or "" in uids):
            for entry, _, _ in found:
                refused.append({"entry": shown(entry.name), "reason": f"its name and another's give the same id "
                                f"{sid} (a hash collision): rename one of {', '.join(sorted(map(shown, names)))}"})
            del by_id[sid]
    submitted.parent.mkdir(parents=True, exist_ok=True)
    (submitted.parent / NOT_GRADED).write_text(json.dumps(refused, indent=1), encoding="utf-8")
    if students is not None:
        students = {unicodedata.normalize("NFC", s) for s in students}
        missing = sorted(students - set(by_id))
        if missing:
            known = ", ".join(sorted(by_id)[:12]) + (" ..." if len(by_id) > 12 else "")
            raise ValueError(f"no submission for {', '.join(missing)} in {source} (student ids there: "
                             f"{known or 'none'}); give ids as grades.csv spells them")
    intakes = Intakes(not_graded=refused)
    for sid in sorted(by_id):
        if students is not None and sid not in students:
            continue
        found = by_id[sid]
        intake = _pick_latest(sid, [entry for entry, _, _ in found], assignment, tz)
        names = sorted({shown(name) for _, name, _ in found})
        if len(names) > 1:
            intake.problems.append(f"the names {', '.join(names)} give one student id, {sid}: one student "
                                   "(one LMS user id)")
        entry = Path(intake.source)
        dest = submitted / sid / assignment
        staging = submitted / sid / f".{assignment}.incoming"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        try:
            if entry.is_dir():  # (also when it is the course's own submitted/ folder: a checked copy)
                _copy_folder(entry, assignment, staging, intake.problems, max_files, max_bytes)
            else:
                _extract_zip(entry, staging, intake.problems, max_files, max_bytes)
        except (Refused, zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, RuntimeError,
                NotImplementedError) as exc:   # (RuntimeError: an encrypted zip; NotImplementedError: its method)
            intake.refused = str(exc) if isinstance(exc, Refused) else \
                f"it could not be read ({type(exc).__name__}: {shown(str(exc))[:200]})"
            intake.problems.append(f"the submission {shown(entry.name)} was not graded: {intake.refused}")
            shutil.rmtree(staging)   # nothing of a refused submission is kept
            staging.mkdir()
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

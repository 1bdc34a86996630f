"""Intake's student ids and accounting (grading/autograde/intake.py): every entry of the submissions
folder ends as a graded student or a named problem, two different names never share an id, ids are NFC
and safe for paths, CSV, HTML and nbgrader's gradebook; the size caps hold before anything is copied.

Fast: no grading here (one small nbgrader course checks that such ids work in nbgrader itself).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import unicodedata
import zipfile
from datetime import datetime, UTC
from pathlib import Path

import nbformat
import pytest

from grading.autograde import deadlines, export, feedback, intake
from grading.autograde.intake import NOT_GRADED, _over, collect, not_graded, student_id_of

# The names of issue 25: two Josés one accent apart, a script without Latin letters, names that
# sanitise to nothing or to dots only, a name with quotes, markup and a shell separator; and one
# decomposed (NFD) name, as a Mac writes it.
NAMES = ["José", "Josè", "日本語", "-.-", "...", "a b'; <i>x", unicodedata.normalize("NFD", "Zoë")]
DUPLICATE = "same person"          # handed in twice: the latest wins
UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\*?\[\]+,'\"<>&;\s]")   # paths, nbgrader's globs and lists, CSV, HTML, shells


def _notebook() -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook()).encode()


def _files(marker: str) -> dict:
    return {"01_layers.ipynb": _notebook(), "hwlib/layers.py": marker.encode()}


def _folder(path: Path, marker: str, when: datetime | None = None) -> None:
    for rel, data in _files(marker).items():
        (path / "hw4" / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / "hw4" / rel).write_bytes(data)
    if when is not None:
        deadlines.write_timestamp(path / "hw4", when)


def _zip(path: Path, marker: str, when: tuple = (2026, 4, 10, 12, 0, 0)) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in _files(marker).items():
            zf.writestr(zipfile.ZipInfo(f"hw4/{rel}", when), data)


def _entry_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _accounting(src: Path, intakes) -> dict[str, str]:
    """entry name -> what became of it: "graded:<id>", "left out:<id>", "not graded:<reason>"; each once."""
    fate = {}
    for one in intakes:
        for name, what in [(Path(one.source).name, "graded"), *((n, "left out") for n in one.left_out)]:
            assert name not in fate, f"{name} accounted for twice"
            fate[name] = f"{what}:{one.student}"
    for entry in intakes.not_graded:
        assert entry["entry"] not in fate, f"{entry['entry']} accounted for twice"
        fate[entry["entry"]] = f"not graded:{entry['reason']}"
    assert set(fate) == _entry_names(src), "an entry of the folder is neither graded nor named"
    return fate


@pytest.mark.parametrize("layout", ["folders", "zips", "canvas"])
def test_every_entry_is_one_student_or_a_named_problem(tmp_path, layout):
    src, dest = tmp_path / "src", tmp_path / "course" / "submitted"
    src.mkdir()
    entry_of = {}
    for i, name in enumerate(NAMES):
        entry = {"folders": name, "zips": f"{name}_hw4.zip", "canvas": f"{name}_{1000 + i}_{5000 + i}_hw4.zip"}[layout]
        (_folder if layout == "folders" else _zip)(src / entry, name)
        entry_of[name] = entry
    # The same person twice: as a folder and a later zip (folders), or an LMS resubmission (zips).
    if layout == "folders":
        _folder(src / DUPLICATE, "first", datetime(2026, 4, 10, 9, 0, tzinfo=UTC))
        _zip(src / f"{DUPLICATE}_hw4.zip", "second", (2026, 4, 10, 11, 0, 0))
        dup_entries = [DUPLICATE, f"{DUPLICATE}_hw4.zip"]
    else:
        uid = "_2000_6000" if layout == "canvas" else ""
        _zip(src / f"{DUPLICATE}{uid}_hw4.zip", "first", (2026, 4, 10, 9, 0, 0))
        _zip(src / f"{DUPLICATE}{uid}_hw4-1.zip", "second", (2026, 4, 10, 11, 0, 0))
        dup_entries = [f"{DUPLICATE}{uid}_hw4.zip", f"{DUPLICATE}{uid}_hw4-1.zip"]
    # What is no submission, and submissions that cannot be taken.
    (src / "notes.txt").write_text("not a submission")
    (src / ".DS_Store").write_bytes(b"\0\0")
    os.symlink("/etc", src / "link")
    (src / "empty").mkdir()
    (src / "broken_hw4.zip").write_bytes(b"PK not really a zip")

    intakes = collect(src, dest, "hw4")
    fate = _accounting(src, intakes)
    ids = {name: fate[entry_of[name]].split(":", 1)[1] for name in NAMES}
    for name, sid in ids.items():
        assert fate[entry_of[name]].startswith("graded:"), (name, fate[entry_of[name]])
        # the id: NFC, stable, its own id again, safe; the submission copied under it
        assert unicodedata.is_normalized("NFC", sid) and student_id_of(sid) == sid, sid
        assert not UNSAFE.search(sid) and not sid.startswith((".", "-")) and sid.strip() == sid, sid
        assert (dest / sid / "hw4" / "hwlib" / "layers.py").read_text() == name
    assert len(set(ids.values())) == len(NAMES), f"different names merged: {ids}"
    assert ids["Josè"] != ids["José"]
    if layout != "canvas":
        assert ids["José"] == "José" and ids["Josè"] == "Josè" and ids["日本語"] == "日本語"
        assert ids[NAMES[-1]] == "Zoë" == unicodedata.normalize("NFC", NAMES[-1])     # NFD in, NFC out
        assert re.fullmatch(r"student~[0-9a-f]{8}", ids["-.-"]) and re.fullmatch(r"student~[0-9a-f]{8}", ids["..."])
        assert re.fullmatch(r"a-b-i-x~[0-9a-f]{8}", ids["a b'; <i>x"])
    else:
        assert ids["José"] == "José_1000" and ids["日本語"] == "日本語_1002" and ids[NAMES[-1]] == "Zoë_1006"

    # The duplicate pair: one student, the later one graded, the other named as left out.
    (dup,) = [i for i in intakes if Path(i.source).name in dup_entries]
    assert Path(dup.source).name == dup_entries[1] and dup.left_out == [dup_entries[0]]
    assert (dest / dup.student / "hw4" / "hwlib" / "layers.py").read_text() == "second"
    assert "the latest wins" in dup.problems[0]

    # Refused submissions: a row (an intake) with the refusal as a named problem, nothing kept.
    for entry in ("empty", "broken_hw4.zip"):
        got = next(i for i in intakes if Path(i.source).name == entry)
        assert got.refused and any(entry in p and "was not graded" in p for p in got.problems), got
        assert got.submission()["refused"] == got.refused
        assert not [p for p in (dest / got.student).rglob("*") if p.is_file() and p.name != "timestamp.txt"]
    assert "no notebook and no hwlib/ folder" in next(i for i in intakes if i.source.endswith("empty")).refused

    # No student at all: named, with the reason, in the result and in the course folder.
    assert fate["notes.txt"] == "not graded:not a folder or a .zip file"
    assert fate["link"] == "not graded:a symbolic link (links are not followed)"
    assert fate[".DS_Store"].startswith("not graded:a system file")
    assert not_graded(tmp_path / "course") == intakes.not_graded
    assert json.loads((tmp_path / "course" / NOT_GRADED).read_text()) == intakes.not_graded

    # Collecting the course's own submitted/ folder again keeps every id (ids are their own ids).
    again = collect(dest, tmp_path / "again" / "submitted", "hw4")
    assert sorted(i.student for i in again) == sorted(i.student for i in intakes)


@pytest.mark.parametrize("name, sid", [
    ("José", "José"),
    ("Jose\u0301", "José"),                                     # NFD -> NFC
    ("日本語_hw4.zip", "日本語"),
    ("doe jane (x)_777_1_a.zip", "doe-jane-x-_777"),             # an LMS user id: cleaned, no hash
    ("doejane_LATE_12345_67891_hw4.zip", "doejane_12345"),
    ("x[1]", None), ("a+b", None), ("a,b", None), ("a\nb", None), (".hidden", None), ("Jos\udce9", None),
    ("é" * 200, None),                                           # too long for a path component
])
def test_ids(name, sid):
    got = student_id_of(name)
    if sid is not None:
        assert got == sid
    else:   # made safe, with the hash of the name
        assert re.fullmatch(r"[^~]+~[0-9a-f]{8}", got) and not UNSAFE.search(got), got
        assert len(got) <= 64 and len(got.encode()) <= 128
    assert student_id_of(got) == got


def test_names_that_differ_never_share_an_id():
    names = ["a b", "a  b", "a-b", "a_b", "a(b", "a'b", "A b", "a b ", " a b", "a\tb", "-a b", "a b-"]
    ids = [student_id_of(n) for n in names]
    assert len(set(ids)) == len(names), dict(zip(names, ids))
    assert student_id_of("a b_hw4.zip") == student_id_of("a b_hw4-1.zip") == student_id_of("a b")   # one person


def test_students_may_be_named_in_any_normal_form(tmp_path):
    src = tmp_path / "src"
    _folder(src / "José", "nfc")
    (only,) = collect(src, tmp_path / "submitted", "hw4", students={unicodedata.normalize("NFD", "José")})
    assert only.student == "José"


def test_the_roster_matches_non_ascii_names_in_either_normal_form(tmp_path, monkeypatch):
    rows = [{"student": s, "total": 50.0, "late_penalty": 0.0, **{q: 0.0 for q in "Q1 Q2 Q3 Q4 Q5 Q6".split()}}
            for s in ["José", "日本語", student_id_of("a b'; <i>x")]]     # no LMS user id to match by
    monkeypatch.setattr(feedback, "scores", lambda course: rows)
    roster = tmp_path / "roster.csv"
    nfd = unicodedata.normalize("NFD", "José")                            # a roster saved on a Mac
    roster.write_text("Student,ID,SIS User ID,SIS Login ID,Section\n"
                      f'"Pérez, {nfd}",1000,U1,{nfd},A\n'
                      "Tanaka,2000,U2,日本語,B\n"
                      "Odd,3000,U3,\"a b'; <i>x\",C\n", encoding="utf-8")
    logged = []
    path = export.write(tmp_path, "canvas", roster=roster, canvas_assignment="1", log=logged.append)["canvas"]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1].startswith(f'"Pérez, {nfd}",1000,U1,{nfd},A,50')
    assert lines[2] == "Tanaka,2000,U2,日本語,B,50"
    assert lines[3] == "Odd,3000,U3,a b'; <i>x,C,50"
    assert not logged, logged


# --- sizes ---------------------------------------------------------------------------------------

def test_the_size_message_uses_one_unit():
    assert _over("the submission holds", int(210.3 * 2 ** 20), 200 << 20) == \
        "the submission holds 210.3 MiB, over the limit of 200.0 MiB"
    assert _over("x", 200 * 2 ** 20 + 5, 200 << 20) == \
        "x 200.0 MiB (209,715,205 bytes), over the limit of 200.0 MiB (209,715,200 bytes)"
    assert _over("x", 12_000, 10_000) == "x 11.7 KiB, over the limit of 9.8 KiB"


def test_sizes_are_capped_before_copying_and_nothing_is_kept(tmp_path, monkeypatch):
    src, dest = tmp_path / "src", tmp_path / "submitted"
    _folder(src / "big", "big")
    (src / "big" / "hw4" / "out.bin").write_bytes(b"\0" * 12_000)            # 12 KB of output
    _folder(src / "small", "small")
    os.symlink("/dev/zero", src / "small" / "hw4" / "zeros")                 # a link counts nothing
    with zipfile.ZipFile(src / "bigzip_hw4.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("hw4/01_layers.ipynb", _notebook())
        zf.writestr("hw4/out.bin", b"\0" * 12_000)                          # compresses to almost nothing
    _folder(src / "many", "many")
    for k in range(30):
        (src / "many" / "hw4" / f"f{k}.txt").write_text("x")
    copied, opened = [], []
    real_copy, real_open = intake.copy_regular_files, zipfile.ZipFile.open
    monkeypatch.setattr(intake, "copy_regular_files", lambda a, b: (copied.append(a.parent.name), real_copy(a, b))[1])
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, name, *a, **k: (opened.append(name), real_open(self, name, *a, **k))[1])
    intakes = {i.student: i for i in collect(src, dest, "hw4", max_bytes=10_000, max_files=25)}
    assert copied == ["small"] and not opened, (copied, opened)       # the caps are checked before any copy
    assert re.fullmatch(r"the submission holds 1[12]\.\d KiB, over the limit of 9\.8 KiB", intakes["big"].refused)
    assert intakes["bigzip"].refused == "the zip's files declare 11.8 KiB, over the limit of 9.8 KiB uncompressed"
    assert intakes["many"].refused == "the folder holds more than 25 entries (limit 25)"
    assert not intakes["small"].refused and (dest / "small" / "hw4" / "hwlib" / "layers.py").exists()
    assert any("skipped a link or special file: zeros" == p for p in intakes["small"].problems)
    for sid in ("big", "bigzip", "many"):
        assert any(f"was not graded: {intakes[sid].refused}" in p for p in intakes[sid].problems)
        kept = [p.name for p in (dest / sid).rglob("*") if p.is_file()]
        assert kept in ([], ["timestamp.txt"]), f"a copy of {sid} was kept: {kept}"   # (intake's own record)


# --- nbgrader itself with such ids ----------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")   # nbgrader's own, on creating a student
def test_such_ids_work_in_nbgrader(tmp_path, monkeypatch):
    """nbgrader reads a student id as a file glob and keeps it in SQLite: autograde, the gradebook and
    feedback with non-ASCII and hashed ids (and, for contrast, a glob character breaks it)."""
    import sys

    from nbgrader.api import Gradebook
    from nbgrader.converters import Autograde, GenerateAssignment, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades
    from nbgrader.utils import capture_log
    from traitlets.config import Config

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))  # alembic
    root = tmp_path / "course"
    nb = nbformat.v4.new_notebook()
    answer = nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION")
    answer.metadata.nbgrader = {"grade": False, "solution": True, "locked": False, "grade_id": "ans", "schema_version": 3}
    test = nbformat.v4.new_code_cell("assert f() == 1")
    test.metadata.nbgrader = {"grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1,
                              "schema_version": 3}
    nb.cells = [answer, test]
    (root / "source" / "hw4").mkdir(parents=True)
    nbformat.write(nb, root / "source" / "hw4" / "a.ipynb")

    def run(cls, student=None):
        config = Config()
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.course_id = "c"
        config.CourseDirectory.ignore = [".*"]
        config.Autograde.autograde_preprocessors = [IgnorePattern, LimitOutput, SaveAutoGrades, CheckCellMetadata]
        coursedir = CourseDirectory(config=config)
        coursedir.assignment_id = "hw4"
        if student is not None:
            coursedir.student_id = student
        app = cls(coursedir=coursedir, config=config)
        app.force = True
        app.create_student = True
        return capture_log(app)["success"]

    assert run(GenerateAssignment)
    ids = [student_id_of(n) for n in ("José", "日本語", "a b'; <i>x")]
    for sid in [*ids, "x[1]"]:
        shutil.copytree(root / "release" / "hw4", root / "submitted" / sid / "hw4")
    for sid in ids:
        assert run(Autograde, sid) and run(GenerateFeedback, sid), sid
        assert (root / "feedback" / sid / "hw4" / "a.html").is_file()
    assert not run(Autograde, "x[1]")          # why ids never hold glob characters
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}", "c") as gb:
        assert sorted(s.id for s in gb.students) == sorted(ids)
        for sid in ids:
            assert gb.find_grade("t", "a", "hw4", sid).max_score == 1


# --- the run's log -------------------------------------------------------------------------------

def test_the_run_logs_what_it_does_not_grade(tmp_path):
    """job._run names every entry intake did not take before anything is graded (here: nothing is)."""
    from grading.autograde.deadlines import Policy
    from grading.autograde.job import Settings, _run

    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_text("x")
    (src / ".DS_Store").write_bytes(b"")
    logged = []
    with pytest.raises(SystemExit, match="no submissions found"):
        _run(src, Settings(course=tmp_path / "course"), Policy(), None, logged.append)
    assert "not graded: notes.txt: not a folder or a .zip file" in logged
    assert "not graded: .DS_Store: a system file or folder, not a submission" in logged

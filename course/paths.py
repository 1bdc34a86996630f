"""The repository and the ``build/`` layout: the one module that names them.

Everything the kit builds goes under ``build/`` (git-ignored)::

    build/notebooks/    executed notebooks (make run, make report's input)
    build/report/       the report: HTML (offline math) and PDF
    build/release/      the student release: hw4/ and hw4.zip
    build/course/       the nbgrader course root: gradebook, submissions, feedback, grades
    build/samples/      generated sample submissions (make autograde without SUBMISSIONS)
    build/.<step>.inputs  make run's digests of each step's inputs (a changed digest re-runs it)
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HWLIB = REPO / "hwlib"
NOTEBOOKS = REPO / "notebooks"
COURSE_PACKAGE = REPO / "course"              # the description (course.toml, questions/) and the build code
GRADING = REPO / "grading"

BUILD = REPO / "build"
EXECUTED = BUILD / "notebooks"
REPORT = BUILD / "report"
RELEASE = BUILD / "release"
COURSE = BUILD / "course"
SAMPLES = BUILD / "samples"


def step_stamp(step: str) -> Path:
    """Where ``make run`` keeps the digest of a step's inputs."""
    return BUILD / f".{step}.inputs"

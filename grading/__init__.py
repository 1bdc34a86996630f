"""Instructor tooling, one folder per stage of the workflow: ``release/`` (the student release),
``nbgrader/`` (the nbgrader course), ``autograde/`` (grading submissions, feedback, export), and
``samples.py`` (generated sample submissions for trying the pipeline). The course description and
the course build (make run, make report) live in the ``course`` package."""

import warnings as _warnings

# nbgrader's gradebook API trips SQLAlchemy's autoflush warning on every new submission (a known,
# harmless pattern in nbgrader.api); it would flood the instructor's console in every worker.
_warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session", module=r"nbgrader\.")

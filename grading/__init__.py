"""Instructor tooling: notebook execution, the student release, autograding and the report."""

import warnings as _warnings

# nbgrader's gradebook API trips SQLAlchemy's autoflush warning on every new submission (a known,
# harmless pattern in nbgrader.api); it would flood the instructor's console in every worker.
_warnings.filterwarnings("ignore", message=r"Object of type <Submitted\w+> not in session", module=r"nbgrader\.")

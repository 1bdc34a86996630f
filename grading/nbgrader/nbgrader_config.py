"""nbgrader configuration of the HW4 course.

Not read by nbgrader directly: ``grading/nbgrader/course_root.py`` assembles the course root (``build/course/``)
and writes its ``nbgrader_config.py``, which loads this file and adds the generated settings (the
absolute course paths and ``Autograde.exclude_overwriting``, the list of student modules).

Autograding goes through ``python -m grading autograde`` only. It runs nbgrader for what nbgrader is
good at (restoring locked and deleted test cells, recording the submission and the manually graded
cells in the gradebook, rendering feedback) and runs student code itself, in a sandbox; the points of
the test cells come from hidden checks computed outside the student's process. A bare
``nbgrader autograde`` (command line or formgrader button) would execute student code unsandboxed
with the instructor's rights, so this configuration makes it stop with a message instead.
"""

import os

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, GetGrades,
                                    IgnorePattern, LimitOutput, SaveAutoGrades)

from grading.nbgrader.hooks import RefuseUnsandboxedAutograde

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

c.CourseDirectory.course_id = "eecs545"
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", ".*"]

# Student versions: nbgrader's stubs in code cells, a prompt in Markdown answers.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Deleted grade cells come back (and score what the hidden checks say, for test cells; 0 until a TA
# grades them, for derivations). Edited locked cells are restored from the gradebook by default.
c.OverwriteCells.add_missing_cells = True

# Settings of nbgrader's own Execute, kept for reference: the sandboxed executor
# (grading/autograde/sandbox_exec.py) applies the same ones.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.Execute.extra_arguments = ["--InteractiveShell.xmode=Minimal"]

# Autograde without nbgrader's Execute: the grading tool executes the notebooks in the sandbox.
if os.environ.get("HW4_GRADING_TOOL") == "1":
    c.Autograde.autograde_preprocessors = [IgnorePattern, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                           CheckCellMetadata]
else:
    c.Autograde.autograde_preprocessors = [RefuseUnsandboxedAutograde]

# One late penalty only, the kit's (course.toml [deadline], grading/autograde/deadlines.py): nbgrader's
# own plugin stays off (its default, stated here so that nobody turns it on by mistake).
c.LateSubmissionPlugin.penalty_method = "none"

# Feedback never shows hidden test source (cells restored from the gradebook hold it).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CSSHTMLHeaderPreprocessor]

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

from grading.autograde.sanitize import CleanNotebook
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

# Feedback never shows hidden test source (cells restored from the gradebook hold it), and the notebook
# it renders is inert (CleanNotebook: a Markdown cell with scripts, event handlers, frames, javascript:
# links or images from elsewhere is replaced by its cleaned rendering; grading/autograde/sanitize.py).
c.GenerateFeedback.preprocessors = [GetGrades, ClearHiddenTests, CleanNotebook, CSSHTMLHeaderPreprocessor]

# A submission's Markdown and HTML run in the browser of whoever opens the page: the student's (nbgrader's
# feedback) and the TA's (formgrader's manual-grading page, which renders the autograded notebook with an
# HTMLExporter built from this configuration). Both templates render Markdown cells and comments with the
# `markdown2html` filter and never clean it, whatever `sanitize_html` says: the kit's filter renders and
# cleans (an allow-list through bleach; math stays $...$ text for MathJax). `sanitize_html` also cleans
# HTML and Markdown outputs and leaves out JavaScript outputs and widget state (the autograded notebooks
# hold none: grading/autograde/notebooks.py keeps text and images only), and `clean_html` is the kit's.
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"markdown2html": "grading.autograde.sanitize.markdown2html",
                          "clean_html": "grading.autograde.sanitize.clean_html"}

# Math renders offline on both pages (nbgrader's templates load MathJax from a CDN: offline every derivation
# stayed raw TeX). The kit's templates/<name>/mathjax.html.j2 come first for the `feedback` and `formgrade`
# templates (nbgrader's own folder stays second): feedback loads the MathJax that OfflineMathJax links beside
# it (`mathjax/`: grading/nbgrader/mathjax.py), formgrader the one jupyter-server-mathjax serves; both with
# the fonts that MathJax ships (course/report.py, MATHJAX_SETTINGS).
from pathlib import Path as _Path

import nbgrader as _nbgrader

from grading.nbgrader.mathjax import OfflineMathJax

c.HTMLExporter.extra_template_basedirs = [
    str(_Path(__file__).resolve().parent / "templates"),
    str(_Path(_nbgrader.__file__).resolve().parent / "server_extensions" / "formgrader" / "templates")]
c.GenerateFeedback.preprocessors = [*c.GenerateFeedback.preprocessors, OfflineMathJax]

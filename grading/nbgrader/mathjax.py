"""MathJax beside nbgrader's feedback HTML, so that its derivations render offline.

nbgrader's feedback template loads MathJax from a CDN: offline, every formula stayed raw TeX. The kit's
``templates/feedback/mathjax.html.j2`` loads ``mathjax/MathJax.js`` beside the HTML instead (falling back
to the CDN where that folder is missing, as in feedback released through nbgrader's exchange, which
carries the HTML files only), and :class:`OfflineMathJax`, one of ``GenerateFeedback.preprocessors``
(nbgrader_config.py), puts that folder there: hard links to the kit's copy (course/report.py,
``link_mathjax``), so it costs no space per student on the course's file system. It runs in every
feedback run: the grading tool's, formgrader's "Generate feedback" button, ``nbgrader generate_feedback``.
"""

from __future__ import annotations

from pathlib import Path

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from course.report import link_mathjax

__all__ = ["OfflineMathJax"]


class OfflineMathJax(Preprocessor):
    """Link ``mathjax/`` into the student's feedback folder (once per folder; the notebook is unchanged)."""

    enabled = Bool(True).tag(config=True)   # nbgrader registers its preprocessors without enabling them

    def preprocess(self, nb, resources):
        ids = resources.get("nbgrader", {})
        converter = getattr(self.parent, "parent", None)     # exporter -> nbgrader's GenerateFeedback
        coursedir = getattr(converter, "coursedir", None)
        if coursedir is not None and ids.get("student") and ids.get("assignment"):
            link_mathjax(Path(coursedir.format_path(coursedir.feedback_directory, ids["student"], ids["assignment"])))
        return nb, resources

"""nbgrader plug-ins of the HW4 course (referenced from grading/nbgrader/nbgrader_config.py)."""

from __future__ import annotations

from nbgrader.preprocessors import NbGraderPreprocessor

__all__ = ["RefuseUnsandboxedAutograde"]


class RefuseUnsandboxedAutograde(NbGraderPreprocessor):
    """Stops a bare ``nbgrader autograde``: student code must run in the grading sandbox."""

    def preprocess(self, nb, resources):
        raise RuntimeError(
            "this course autogrades through `python -m grading autograde DIR` (or `make autograde`), "
            "which runs student code in a sandbox and awards the code points from hidden checks; "
            "a bare `nbgrader autograde` would run it with your rights")

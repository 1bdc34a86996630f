"""Progress bars and live displays that stay quiet where nobody watches them.

Two questions, answered from the environment (a kernel cannot ask its frontend whether it shows
widgets, so the kit decides explicitly):

* :func:`quiet`: grading (``NBGRADER_EXECUTION``), pytest, or ``HWLIB_QUIET=1`` (the kit's own
  executors set it for tests, and the autograder's sandbox sets both variables): no progress bars.
* :func:`live_display`: may a cell show a widget or redraw its output while it runs? Only in a
  kernel that a Jupyter server started for a person: JupyterLab, Notebook 7 and VS Code start
  kernels with ``JPY_SESSION_NAME`` set; papermill, nbconvert, nbclient and the autograder do not,
  so there (the course's executed notebooks, the report, the tests, grading) explorers draw one
  static figure and progress bars draw nothing -- never a bar frozen at 0 %. ``HWLIB_WIDGETS=1``
  or ``=0`` overrides the guess either way; quiet runs are never live.
"""

from __future__ import annotations

import os
import sys

__all__ = ["quiet", "in_kernel", "live_display", "progress"]


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def quiet() -> bool:
    """True under nbgrader (``NBGRADER_EXECUTION``), under pytest, or when ``HWLIB_QUIET`` is set."""
    return bool(os.environ.get("NBGRADER_EXECUTION") or os.environ.get("PYTEST_CURRENT_TEST")
                or _flag("HWLIB_QUIET"))


def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel, whoever drives it."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def live_display() -> bool:
    """True where a person watches the notebook in a frontend that renders widgets (see the module doc)."""
    forced = os.environ.get("HWLIB_WIDGETS", "")
    if quiet():
        return False
    if forced:
        return forced != "0"
    return in_kernel() and bool(os.environ.get("JPY_SESSION_NAME"))


def progress(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)``, disabled when :func:`quiet` or in a kernel nobody watches live.

    In a terminal the bar goes to stderr; in a live notebook it is a widget; in a notebook
    executed headless (papermill, nbconvert, the autograder) it is off, because its output
    would be saved at whatever state the executor last saw. Pass ``disable=`` to override.
    """
    from tqdm.auto import tqdm  # imported on use: in a kernel tqdm.auto imports ipywidgets (slow)

    kwargs.setdefault("disable", quiet() or (in_kernel() and not live_display()))
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)

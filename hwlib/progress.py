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

__all__ = ["quiet", "in_kernel", "live_display", "progress", "notebook_bar"]


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

    In a terminal the bar goes to stderr; in a live notebook it is a widget (:func:`notebook_bar`),
    replaced by its last line of text once closed (nothing, with ``leave=False``), so that a saved
    notebook keeps no view of a widget that is gone ("Error displaying widget: model not found"
    when opened again); in a notebook executed headless (papermill, nbconvert, the autograder) it
    is off, because its output would be saved at whatever state the executor last saw. Pass
    ``disable=`` to override.
    """
    kwargs.setdefault("disable", quiet() or (in_kernel() and not live_display()))
    kwargs.setdefault("leave", False)
    if in_kernel() and not kwargs["disable"]:
        try:
            return notebook_bar()(iterable, **kwargs)
        except ImportError:  # no ipywidgets: tqdm's text bar
            pass
    from tqdm.auto import tqdm  # imported on use: in a kernel tqdm.auto imports ipywidgets (slow)

    return tqdm(iterable, **kwargs)


def notebook_bar():
    """The class of the kit's notebook progress bar: tqdm's widget, shown through a display handle."""
    from IPython.display import display
    from tqdm.notebook import tqdm as notebook_tqdm

    class NotebookBar(notebook_tqdm):
        """tqdm's notebook widget, displayed with a display id; :meth:`close` turns that output into
        the bar's last line as text (with ``leave=True``, or when it stopped early) or empties it."""

        def __init__(self, *args, **kwargs):
            self.handle = None
            super().__init__(*args, **{**kwargs, "display": False})
            if not self.disable and self.delay <= 0:  # with a delay, tqdm displays it later, itself
                self.handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self):
            if self.disable or self.handle is None:
                return super().close()
            stopped = bool(self.total) and self.n < self.total
            text = self.format_meter(**self.format_dict) if self.leave or stopped else ""
            super().close()
            self.container.close()  # tqdm keeps a bar that stopped early (or with leave=True) open
            self.handle.update({"text/plain": text}, raw=True)
            self.handle = None

    return NotebookBar

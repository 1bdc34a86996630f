"""Explorers: small interactive panels (ipywidgets) that show what a question asks, on your own code.

=====================  ======  ==============================================================
explorer               where   what it shows
=====================  ======  ==============================================================
``conv_explorer``      Q1, Q3, one output cell of filtering / valid / full convolution at a time,
                       Q6      and the backward pass (dX: full convolution with the flipped
                               kernel; dK: filtering), your conv_forward/backward beside the
                               reference of :mod:`hwlib.conv_formulas`
``pool_explorer``      Q1      each max-pool window's winner, ties, where its gradient goes,
                               overlapping windows adding up; your max_pool_forward/backward
``sweep_explorer``     Q2      training/validation curves of each hidden size, picked by a selector
``train_live``         Q3      the Solver's learning curves, redrawn every epoch while it trains
``caption_browser``    Q4      images with generated and reference captions, one at a time
``transfer_pager``     Q5      the ``visualize_model`` grid, page by page, model by model
=====================  ======  ==============================================================

Use one as the last line of a cell: ``conv_explorer(images={"digit": digit})``. Your functions are
called inside the explorer: a stub shows its ``NotImplementedError`` message, a wrong result is
shown in red beside the reference.

**Live or static.** A kernel cannot ask its frontend whether it renders widgets, so the kit decides
from the environment (:func:`hwlib.progress.live_display`): widgets only in a kernel started by a
Jupyter server for a person (JupyterLab, Notebook 7, VS Code: ``JPY_SESSION_NAME`` is set), never
under nbgrader, pytest or ``HWLIB_QUIET=1``. Everywhere else -- papermill, nbconvert, the
autograder, the report -- an explorer draws one static matplotlib figure of a representative state,
so nothing waits for a click and no output is left empty. ``HWLIB_WIDGETS=1`` or ``=0`` overrides.

**Saved notebooks.** Live, an explorer shows its widget and, under it, a snapshot of its current view
(a picture and its text), kept up to date as you use it and hidden while the widget shows. A notebook
saved and opened again -- with a fresh kernel, with none, by a TA -- shows the widget as it was left
(JupyterLab saves the widgets' state with the course's settings) or else the snapshot: never an empty
"Error displaying widget".
"""

from __future__ import annotations

import importlib

# Loaded on first use: the transfer pager needs PyTorch, which Q1 should not pay for.
_HOMES = {"conv_explorer": "conv", "ConvExplorer": "conv", "sample_digit": "conv", "pool_explorer": "pool", "PoolExplorer": "pool",
          "sweep_explorer": "curves", "SweepExplorer": "curves", "train_live": "curves", "LiveCurves": "curves",
          "caption_browser": "captions", "CaptionBrowser": "captions",
          "transfer_pager": "transfer", "TransferPager": "transfer"}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'hwlib.explore' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)


def __dir__():
    return sorted(set(globals()) | set(_HOMES))

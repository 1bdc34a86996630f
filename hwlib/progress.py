"""Progress bars that stay quiet where nobody watches them (grading, tests, ``HWLIB_QUIET=1``)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm

__all__ = ["quiet", "progress"]


def quiet() -> bool:
    """True under nbgrader (``NBGRADER_EXECUTION``), under pytest, or when ``HWLIB_QUIET`` is set."""
    return bool(os.environ.get("NBGRADER_EXECUTION") or os.environ.get("PYTEST_CURRENT_TEST")
                or os.environ.get("HWLIB_QUIET", "") not in ("", "0"))


def progress(iterable=None, **kwargs):
    """``tqdm(iterable, **kwargs)``, disabled when :func:`quiet` (pass ``disable=`` to override)."""
    kwargs.setdefault("disable", quiet())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)

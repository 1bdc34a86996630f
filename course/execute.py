"""Execute a notebook headless with papermill-style parameters (used by make run, make test, the report)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nbformat
import papermill

from .registry import load as load_registry, profile_cells


def source_notebooks() -> list[Path]:
    """The course notebooks in order, as the registry lists them (``notebooks/01_layers.ipynb`` ...)."""
    return load_registry().notebook_paths


def execute(notebook: Path, output: Path, parameters: dict | None = None, timeout: int = 3600,
            quiet: bool = False) -> float:
    """Run ``notebook`` from a fresh kernel into ``output``; return the wall time in seconds.

    The kernel runs in the notebook's folder (so ``import hwlib`` finds the kit), with the
    ``parameters`` injected after the cell tagged ``parameters``. The notebook runs as the course's
    profile has it (:func:`course.registry.profile_cells`: the other profile's text and checks left
    out). Raises ``papermill.PapermillExecutionError`` naming the failing cell when any cell fails.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    nb = profile_cells(nbformat.read(notebook, as_version=4), load_registry())
    # Written beside the original: the kernel's folder and relative paths stay the notebook's.
    handle, staged = tempfile.mkstemp(suffix=".ipynb", prefix=f".{notebook.stem}-", dir=notebook.parent)
    os.close(handle)
    nbformat.write(nb, staged)
    # The kernel inherits the environment. Headless, explorers draw static figures (HWLIB_WIDGETS=0,
    # even when this runs inside a JupyterLab kernel that would otherwise pass its session on), and
    # quiet runs show no progress bars in logs.
    settings = {"HWLIB_WIDGETS": "0", **({"HWLIB_QUIET": "1"} if quiet else {})}
    before = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            staged, str(output), parameters=parameters or {}, cwd=str(notebook.parent),
            kernel_name="python3", language="python", execution_timeout=timeout, progress_bar=False, log_output=False,
        )
    finally:
        os.unlink(staged)
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return time.perf_counter() - start

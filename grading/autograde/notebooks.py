"""Running a submission's notebooks in the sandbox, for the TA and the feedback (they award no points).

The notebook gets the grader's parameters (as papermill injects them), runs in the sandbox
(``sandbox_exec.py``: nbclient, a per-cell timeout, a budget per notebook), and its outputs come back
as data: text and images only, no HTML or scripts, merged into the trusted autograded notebook.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import nbformat

from .gradebook import NotebookRun
from .sandbox import Sandbox, site_packages

__all__ = ["parameterize", "merge_outputs", "run_notebook"]

ALLOWED_MIME = ("text/plain", "image/png", "image/jpeg", "text/markdown", "text/latex")
MAX_TEXT = 100_000


def parameterize(nb, parameters: dict):
    """A copy of ``nb`` with a cell assigning ``parameters`` after the cell tagged ``parameters``.

    As papermill does (its cell tag, ``injected-parameters``): the notebook's defaults stay visible,
    the grader's values win. Without a tagged cell the assignments go first.
    """
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if not parameters:
        return nb
    lines = ["# Parameters injected by the autograder"] + [f"{k} = {v!r}" for k, v in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    nb.cells.insert(0 if index is None else index + 1, cell)
    return nb


def _clean_output(out) -> dict | None:
    """An output of the untrusted notebook, rebuilt from plain values (no HTML, no scripts)."""
    kind = out.get("output_type")
    try:
        if kind == "stream":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            return nbformat.v4.new_output("stream", name="stderr" if out.get("name") == "stderr" else "stdout",
                                          text=text[-MAX_TEXT:])
        if kind in ("display_data", "execute_result"):
            data = {}
            for mime in ALLOWED_MIME:
                if mime in out.get("data", {}):
                    value = out["data"][mime]
                    value = "".join(value) if isinstance(value, list) else str(value)
                    data[mime] = value[: 4 * MAX_TEXT if mime.startswith("image/") else MAX_TEXT]
            if not data:
                return None
            if kind == "execute_result":
                return nbformat.v4.new_output("execute_result", data=data, execution_count=None)
            return nbformat.v4.new_output("display_data", data=data)
        if kind == "error":
            tb = [str(line)[:5000] for line in list(out.get("traceback", []))[:50]]
            return nbformat.v4.new_output("error", ename=str(out.get("ename", ""))[:200],
                                          evalue=str(out.get("evalue", ""))[:5000], traceback=tb)
    except (TypeError, AttributeError):
        return None
    return None


def merge_outputs(trusted, executed) -> int:
    """Copy outputs of ``executed`` into the code cells of ``trusted`` with the same id and source."""
    by_id = {c.get("id"): c for c in executed.get("cells", []) if isinstance(c, dict)}
    merged = 0
    for cell in trusted.cells:
        if cell.cell_type != "code":
            continue
        ex = by_id.get(cell.get("id"))
        source = ex.get("source") if ex is not None else None
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        if source != cell.source:
            continue
        outs = [o for o in (_clean_output(o) for o in ex.get("outputs", []) if isinstance(o, dict)) if o]
        cell.outputs = outs
        count = ex.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
        merged += 1
    return merged


def run_notebook(box: Sandbox, nb_path: Path, parameters: dict, cell_timeout: float, budget: float) -> NotebookRun:
    """Run the autograded notebook ``nb_path`` in ``box``; write its outputs back into it."""
    name = nb_path.stem
    trusted = nbformat.read(nb_path, as_version=4)
    params = parameterize(trusted, parameters)
    io_dir = box.workdir / "io"
    io_dir.mkdir(exist_ok=True)
    src, out = io_dir / f"{name}.in.ipynb", io_dir / f"{name}.out.ipynb"
    out.unlink(missing_ok=True)
    nbformat.write(params, src)
    box.refresh()
    argv = box.python("sandbox_exec.py", f"{box.root}/io/{src.name}", f"{box.root}/io/{out.name}",
                      str(cell_timeout), f"{box.root}/submission")
    res = box.run(argv, timeout=budget, env={"HW4_SITE_PACKAGES": os.pathsep.join(site_packages())},
                  log_dir=box.workdir.parent / f"{box.workdir.name}.{name}.log")
    status, message = "ok", ""
    if res.timed_out:
        status, message = "timeout", f"the notebook ran past its budget of {budget:.0f} s and was stopped"
    elif res.returncode != 0:
        status, message = "error", f"the notebook runner exited with code {res.returncode}"
    executed = None
    try:
        if out.exists() and out.stat().st_size < 100 << 20:
            executed = json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        status, message = "error", f"the executed notebook could not be read: {exc}"
    if isinstance(executed, dict):
        merge_outputs(params, executed)
        dead = [c for c in params.cells if c.cell_type == "code"
                and any(o.get("ename") == "DeadKernelError" for o in c.outputs)]
        if dead and status == "ok":
            status, message = "crash", "the kernel died while running the notebook (later cells were not run)"
    nbformat.write(params, nb_path)
    return NotebookRun(name, status, res.wall_s, message)

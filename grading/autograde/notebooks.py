"""A submission's notebooks for the TA: the student's own outputs, and the grader's re-run beside them.

* :func:`keep_saved_outputs`: nbgrader's sanitizing step clears every output of the autograded
  notebooks (what formgrader shows the TA); the student's saved outputs are put back, as data: text
  and images only, no HTML, Markdown or scripts (a student's output must never render as a page in
  the TA's browser), and the notebook's Markdown cells are made inert (``sanitize.py``);
* :func:`run_notebook`: the notebook runs in the sandbox under the grader's parameters (as papermill
  injects them; ``sandbox_exec.py``: nbclient, a per-cell timeout, a budget per notebook). Its
  outputs, cleaned the same way, go to a separate notebook (``<course>/rerun/<student>/``), and its
  headline results are compared with the saved ones (``rerun.py``) for the grading report. The
  autograded notebook is not changed: the re-run awards no points and replaces no evidence.
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import nbformat

from ..nbgrader.course_root import ASSIGNMENT
from . import rerun, sanitize
from .gradebook import NotebookRun
from . import untrusted
from .sandbox import Sandbox, site_packages

__all__ = ["parameterize", "clean_output", "merge_outputs", "keep_saved_outputs", "rerun_dir", "run_notebook"]

IMAGES = ("image/png", "image/jpeg")
TEXTS = ("text/plain",)
AS_PLAIN_TEXT = ("text/markdown", "text/latex")   # shown as their source text, never rendered
MAX_TEXT = 100_000
MAX_NOTEBOOK = 100 << 20                          # an executed notebook larger than this is refused
MAX_IMAGE = 4 * MAX_TEXT                          # base64 characters; a larger image is left out, not cut
BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")


def rerun_dir(course: Path) -> Path:
    """Where the re-run notebooks are kept for the TA: ``<course>/rerun/<student>/<name>.ipynb``."""
    return Path(course) / "rerun"


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


def _joined(value) -> str:
    return "".join(str(v) for v in value) if isinstance(value, list) else str(value)


def clean_output(out) -> dict | None:
    """An output of an untrusted notebook, rebuilt from plain values; None when nothing safe is left.

    Kept: streams, plain text, PNG/JPEG images (base64, up to ``MAX_IMAGE`` characters) and errors.
    Markdown and LaTeX become plain text when the output has none (nbconvert would render them, raw
    HTML included); HTML, SVG, JavaScript and widgets are dropped. Texts are capped at ``MAX_TEXT``
    characters.
    """
    kind = out.get("output_type")
    try:
        if kind == "stream":
            return nbformat.v4.new_output("stream", name="stderr" if out.get("name") == "stderr" else "stdout",
                                          text=_joined(out.get("text", ""))[-MAX_TEXT:])
        if kind in ("display_data", "execute_result"):
            given, data = out.get("data", {}), {}
            for mime in IMAGES:
                value = _joined(given.get(mime, ""))
                if value and len(value) <= MAX_IMAGE and BASE64.fullmatch(value):
                    data[mime] = value
            plain = next((given[m] for m in TEXTS + AS_PLAIN_TEXT if m in given), None)
            if plain is not None:
                data["text/plain"] = _joined(plain)[:MAX_TEXT]
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


def merge_outputs(trusted, untrusted) -> int:
    """Copy the cleaned outputs of ``untrusted`` (a notebook as a plain dict) into the code cells of
    ``trusted`` with the same id and source; return how many cells got them. ``trusted`` (the
    autograded notebook, built by nbgrader from the submission) is made inert as well: its other
    outputs cleaned the same way, its Markdown and raw cells by :func:`sanitize.clean_notebook`."""
    by_id = {c.get("id"): c for c in untrusted.get("cells", []) if isinstance(c, dict)}
    merged = 0
    sanitize.clean_notebook(trusted)
    for cell in trusted.cells:
        if cell.cell_type != "code":
            continue
        other = by_id.get(cell.get("id"))
        if other is None or _joined(other.get("source", "")) != cell.source:
            cell.outputs = [o for o in (clean_output(o) for o in cell.get("outputs", []) if isinstance(o, dict)) if o]
            continue
        outputs = other.get("outputs", [])
        cell.outputs = [o for o in (clean_output(o) for o in outputs if isinstance(o, dict)) if o] \
            if isinstance(outputs, list) else []
        count = other.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
        merged += 1
    return merged


def keep_saved_outputs(course: Path, student: str) -> int:
    """Put the student's saved outputs (from ``submitted/``) back into their autograded notebooks,
    which nbgrader's sanitizing cleared. A cell gets them when its id and source are the submitted
    ones: a locked cell the student edited, restored by nbgrader, shows no output (its outputs came
    from the edited code). Return the number of cells that got their outputs back."""
    submitted = Path(course) / "submitted" / student / ASSIGNMENT
    merged = 0
    for path in sorted((Path(course) / "autograded" / student / ASSIGNMENT).glob("*.ipynb")):
        saved_path = submitted / path.name
        if not saved_path.is_file():
            continue
        try:
            saved = json.loads(saved_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # intake set unreadable notebooks aside; nbgrader scores them as missing
        nb = nbformat.read(path, as_version=4)
        merged += merge_outputs(nb, saved if isinstance(saved, dict) else {})
        nbformat.write(nb, path)
    return merged


def _course_layout(nb_path: Path) -> tuple[Path, str] | None:
    """``(course, student)`` of an autograded notebook (``<course>/autograded/<student>/hw4/x.ipynb``)."""
    parts = nb_path.resolve().parents
    if len(parts) > 3 and parts[2].name == "autograded" and parts[0].name == ASSIGNMENT:
        return parts[3], parts[1].name
    return None


def run_notebook(box: Sandbox, nb_path: Path, parameters: dict, cell_timeout: float, budget: float,
                 source: Path | None = None, rerun_path: Path | None = None) -> NotebookRun:
    """Re-run the autograded notebook ``nb_path`` in ``box``; compare its headline results with the
    saved ones.

    ``source`` is the course's source notebook (trusted: it says which cells are headlines) and
    ``rerun_path`` where the re-run notebook is written; both default to their places in the course
    that holds ``nb_path``. ``nb_path`` itself is left as it is.
    """
    name = nb_path.stem
    layout = _course_layout(nb_path)
    if layout is not None:
        course, student = layout
        source = source or course / "source" / ASSIGNMENT / nb_path.name
        rerun_path = rerun_path or rerun_dir(course) / student / nb_path.name
    saved = nbformat.read(nb_path, as_version=4)
    params = parameterize(saved, parameters)
    for cell in params.cells:  # the sandbox starts from a blank notebook: no saved output can come back
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    # The notebook goes in through the job's folder (read-only in the sandbox); the executed copy
    # comes back through the output folder, read as hostile data (untrusted.py).
    src = box.write_job(f"{name}.in.ipynb", nbformat.writes(params).encode("utf-8"))
    argv = box.python("sandbox_exec.py", f"{box.job_path}/{src.name}", f"{box.out_path}/{name}.out.ipynb",
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
        executed = untrusted.read_json(box.outdir / f"{name}.out.ipynb", MAX_NOTEBOOK, "the executed notebook")
    except untrusted.Untrusted as exc:
        if status == "ok" or "missing" not in str(exc):
            status, message = "error", f"{exc}" + (f" ({message})" if message else "")
    rerun_nb = None
    if isinstance(executed, dict):
        merge_outputs(params, executed)
        rerun_nb = params
        if status == "ok" and any(o.get("ename") == "DeadKernelError" for c in params.cells
                                  if c.cell_type == "code" for o in c.outputs):
            status, message = "crash", "the kernel died while running the notebook (later cells were not run)"
        if rerun_path is not None:
            rerun_path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(params, rerun_path)
    ids = rerun.headline_ids(nbformat.read(source, as_version=4)) if source and Path(source).is_file() else []
    headlines = rerun.compare(saved, rerun_nb, ids, not_run=message or "the re-run produced no notebook")
    return NotebookRun(name, status, res.wall_s, message, headlines=[asdict(h) for h in headlines])

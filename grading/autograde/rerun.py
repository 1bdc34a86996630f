"""The grader's re-run beside the student's saved outputs: a verdict per headline result.

A headline cell is a code cell tagged ``headline`` in the course's source notebook: it prints a result
a report question asks for (Q2's chosen hidden size and its test accuracy, Q3's test accuracy, ...).
The tags are read from the source notebook, never from the student's copy, and cells are matched by
id. For each headline the TA gets both texts and one verdict:

* ``reproduced``: the same text, every number within the tolerance (below);
* ``differs``: by how much (the numbers beyond the tolerance, saved -> re-run), or the line whose
  words differ;
* ``not comparable``: the saved notebook ran under another profile than the re-run (``quick`` trains
  on a few images for an epoch: its numbers say nothing about a ``full`` run's), or the cell shows
  figures only (the TA compares them by eye, in the two notebooks);
* ``missing``: the saved notebook lacks the cell, never ran it, or shows an error there;
* ``stopped``: the re-run never reached the cell: the first cell that failed (or was not run) and why.

Numbers: where a cell prints ``RESULT`` lines only those are compared (the rest is progress), and
durations (``12 s``, ``3.5 min``) are never compared. Two numbers agree when they differ by at most
``ABS_TOL`` or ``REL_TOL`` of the saved value, whichever is larger: a retrained network on another
machine may move an accuracy by a few test images, not more. The profile a notebook ran under is the
``Profile: <name>`` line it printed, else the last ``profile = "..."`` of its parameters cells.

Trusted side: the notebooks are read as data (their text outputs); nothing here runs their code.
"""

from __future__ import annotations

import ast
import html
import re
from dataclasses import dataclass

from hwlib.submit import NUMBER
from hwlib.submit import _text as cell_text   # what a code cell showed as text (the student tool's reading)

__all__ = ["HEADLINE_TAG", "ABS_TOL", "REL_TOL", "Headline", "headline_ids", "notebook_profile", "stop_point",
           "compare_text", "compare", "report_section"]

HEADLINE_TAG = "headline"
PARAMETER_TAGS = ("parameters", "injected-parameters")
PROFILE_LINE = re.compile(r"^Profile: *([\w-]+)", re.MULTILINE)
DURATION = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:ms|s|min|h)\b")
ABS_TOL = 2e-3      # e.g. 20 of 10,000 test images, or a loss of 0.002
REL_TOL = 2e-3      # 0.2 % of the saved value (larger numbers: counts, percentages)
MAX_SHOWN = 2000    # characters of each text kept for the report


@dataclass
class Headline:
    cell: int           # the cell's number among the notebook's code cells (1-based), as the TA counts them
    id: str
    verdict: str        # "reproduced", "differs", "not comparable", "missing", "stopped"
    message: str        # the verdict in words, with the numbers
    saved: str          # the text compared (RESULT lines, or the whole text), as saved ...
    rerun: str          # ... and as re-run


def headline_ids(source_nb) -> list[str]:
    """The ids of the code cells tagged ``headline`` in a (trusted) source notebook."""
    return [c.get("id") for c in source_nb.cells
            if c.cell_type == "code" and HEADLINE_TAG in c.metadata.get("tags", [])]


def _code_cells(nb) -> list:
    """Code cells as the autograded notebook shows them (not the grader's injected parameters)."""
    return [c for c in nb.cells if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def notebook_profile(nb) -> str | None:
    """The profile ``nb`` ran under: its printed ``Profile:`` line, else its parameters cells' value."""
    for cell in nb.cells:
        if cell.cell_type == "code" and (found := PROFILE_LINE.search(cell_text(cell))):
            return found.group(1)
    profile = None
    for cell in nb.cells:
        if cell.cell_type != "code" or not set(PARAMETER_TAGS) & set(cell.metadata.get("tags", [])):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if "profile" in targets and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                profile = node.value.value
    return profile


def _error(cell) -> str:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
    return ""


def _ran(cell) -> bool:
    return not cell.source.strip() or isinstance(cell.get("execution_count"), int) or bool(cell.get("outputs"))


def stop_point(nb, not_run: str = "not run") -> tuple[int, str] | None:
    """``(number, why)`` of the first code cell that failed or was not run (``not_run`` says why), or None."""
    for number, cell in enumerate(_code_cells(nb), start=1):
        if error := _error(cell):
            return number, error[:300]
        if not _ran(cell):
            return number, not_run
    return None


def _focus(text: str) -> list[str]:
    """The lines compared: the RESULT lines if any, else every non-blank line; durations blanked."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    results = [line for line in lines if line.startswith("RESULT")]
    return [DURATION.sub("<time>", line) for line in (results or lines)]


def compare_text(saved: str, rerun: str) -> tuple[str, str]:
    """``(verdict, message)`` for two texts of the same cell: "reproduced" or "differs"."""
    before, after = _focus(saved), _focus(rerun)
    for a, b in zip(before + [""] * len(after), after + [""] * len(before)):
        if NUMBER.sub("#", a) != NUMBER.sub("#", b):
            return "differs", f"differs in its text: saved {a[:200]!r}, re-run {b[:200]!r}"
    pairs = [(x, y) for a, b in zip(before, after) for x, y in zip(NUMBER.findall(a), NUMBER.findall(b))]
    beyond = [(x, y) for x, y in pairs if abs(float(x) - float(y)) > max(ABS_TOL, REL_TOL * abs(float(x)))]
    tolerance = f"tolerance {ABS_TOL:g} or {REL_TOL:.1%} of the saved value"
    if not beyond:
        return "reproduced", f"reproduced ({len(pairs)} number(s) compared, {tolerance})"
    shown = ", ".join(f"by {abs(float(x) - float(y)):.4g} ({x} saved, {y} re-run)" for x, y in beyond[:3])
    return "differs", f"differs {shown}; {len(beyond)} of {len(pairs)} number(s) beyond the {tolerance}"


def compare(saved_nb, rerun_nb, ids: list[str], not_run: str = "the re-run produced no notebook") -> list[Headline]:
    """A :class:`Headline` per id in ``ids``: the saved notebook's cell against the re-run's.

    ``rerun_nb`` is None when the re-run produced no notebook; ``not_run`` says why a cell was not
    run (the run's own message: its budget ran out, the runner failed).
    """
    saved_cells = {c.get("id"): (n, c) for n, c in enumerate(_code_cells(saved_nb), start=1)}
    rerun_cells = {c.get("id"): c for c in _code_cells(rerun_nb)} if rerun_nb is not None else {}
    profiles = (notebook_profile(saved_nb), notebook_profile(rerun_nb) if rerun_nb is not None else None)
    stop = stop_point(rerun_nb, not_run) if rerun_nb is not None else None
    headlines = []
    for cell_id in ids:
        number, cell = saved_cells.get(cell_id, (0, None))
        other = rerun_cells.get(cell_id)
        saved_text, rerun_text = (cell_text(c)[-MAX_SHOWN:] if c is not None else "" for c in (cell, other))
        shown = ["\n".join(_focus(t))[-MAX_SHOWN:] for t in (saved_text, rerun_text)]
        if cell is None:
            verdict, message = "missing", "missing in the saved notebook (the cell was deleted)"
        elif not cell.get("outputs"):
            verdict, message = "missing", ("missing in the saved notebook (the cell shows no output)" if _ran(cell)
                                           else "missing in the saved notebook (the cell was not run before saving)")
        elif _error(cell):
            verdict, message = "missing", f"missing in the saved notebook (it shows an error: {_error(cell)[:200]})"
        elif other is None:
            verdict, message = "stopped", f"the re-run did not reach this cell: {not_run}"
        elif _error(other) or not _ran(other):
            at, why = stop if stop is not None and stop[0] <= number else (number, _error(other) or not_run)
            verdict, message = "stopped", f"the re-run stopped at cell {at}: {why}"
        elif profiles[0] and profiles[1] and profiles[0] != profiles[1]:
            verdict, message = "not comparable", (f"not comparable (saved under profile {profiles[0]}, "
                                                  f"re-run under {profiles[1]})")
        elif not any(shown):
            verdict, message = "not comparable", ("not comparable (the cell shows figures only: compare them in "
                                                  "the autograded and the re-run notebook)")
        else:
            verdict, message = compare_text(saved_text, rerun_text)
        headlines.append(Headline(number, cell_id, verdict, message, shown[0], shown[1]))
    return headlines


def report_section(runs: list[dict]) -> str:
    """The grading report's HTML for the notebook runs' headline results (``NotebookRun`` dicts)."""
    parts = []
    for run in runs:
        rows = run.get("headlines") or []
        if not rows:
            continue
        parts.append(f"<h3>{html.escape(run['name'])}: headline results</h3><table><tr><th>cell</th>"
                     "<th>saved in the notebook</th><th>grader's re-run</th><th>verdict</th></tr>")
        for h in rows:
            cls = "ok" if h["verdict"] == "reproduced" else ("muted" if h["verdict"] == "not comparable" else "fail")
            parts.append(f"<tr><td>{h['cell'] or '-'}</td><td><pre>{html.escape(h['saved'])}</pre></td>"
                         f"<td><pre>{html.escape(h['rerun'])}</pre></td>"
                         f"<td class='{cls}'>{html.escape(h['message'])}</td></tr>")
        parts.append("</table>")
    if parts:
        parts.insert(0, "<h2>Headline results: saved and re-run</h2><p class='muted'>The notebooks in this folder "
                        "show the outputs saved with the submission; the grader re-ran each notebook in a sandbox. "
                        "Numbers agree when they differ by at most "
                        f"{ABS_TOL:g} or {REL_TOL:.1%} of the saved value; durations are not compared.</p>")
    return "\n".join(parts)

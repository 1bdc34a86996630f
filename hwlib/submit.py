"""Check your homework before you hand it in, and write the zip: ``python -m hwlib.submit``.

Run it in your homework folder (the one holding the notebooks and ``hwlib/``). It does what a grader
would notice first, and tells you before they do, question by question:

1. **files**: every notebook is there and readable, and so is ``hwlib/`` (each module parses);
2. **what is not done yet**: a function of ``hwlib/`` that still raises the release's
   ``NotImplementedError`` stub (named, with its question), and an answer cell (a derivation, a
   report) that still says ``YOUR ANSWER HERE`` as released; an optional or extra-credit answer
   (0 points in the notebook) left empty is only mentioned;
3. **locked cells**: a cell you must not change (a question, a test cell) still is as it was
   released; an edited one is restored before grading, so your edit there is lost;
4. **public checks**: ``python -m hwlib.check`` on your code (which tasks pass, which fail);
5. **a clean run**: every notebook restarted and run top to bottom in a fresh kernel, as the grader
   does. Every cell that fails is listed with the first line of its error and where to find it as
   JupyterLab shows it (``cell 21 of 50``, every cell counted from 1, Markdown too, and the heading
   above it); each other difference from the outputs you saved is explained (``cell 14 printed
   97.9 % when saved, 97.2 % on a clean run``, cells saved out of order, cells never run);
6. **the zip**: ``<folder>_submission.zip`` with the notebooks (as re-run, so what you hand in is
   what a clean run gives; ``--keep-saved`` zips your saved outputs instead) and ``hwlib/``.

The exit status is 0 when nothing is left to do, and the zip is written; otherwise it is 1, the list
says what to finish, and no zip is written unless you ask for it with ``--anyway`` (the zip is then
written as it is, and the problems are still listed). A full-profile run of every notebook takes as
long as your own runs did (``--notebooks`` re-runs some, ``--no-run`` none). The report says what to
fix; it never changes your files.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Finding", "Report", "Stub", "locked_cell_edits", "notebook_question", "cell_place",
           "unanswered_cells", "find_stubs", "compare_runs", "run_notebook", "check_folder", "write_zip", "main"]

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# The release's stub message: "fc_forward is yours to write (Q1: 10 points ...); ..."
STUB_MESSAGE = re.compile(r"^\s*(?P<function>[\w.]+) is yours to write \((?P<question>Q\d+)\b")
# What nbgrader leaves in a solution cell of the release.
PLACEHOLDERS = ("YOUR ANSWER HERE", "raise NotImplementedError()")
QUESTION_HEADING = re.compile(r"^(Q\d+)\b")
GRADE_ID_QUESTION = re.compile(r"^q(\d+)[-_]", re.IGNORECASE)
GENERAL = ""    # the question of a finding that belongs to none (files, public checks)


@dataclass
class Finding:
    """One thing the student should know: ``level`` is "error" (fix it), "warning" (look) or "ok";
    ``question`` ("Q1", ...) is the question it belongs to, "" when none."""

    level: str
    where: str
    message: str
    question: str = GENERAL

    def __str__(self) -> str:
        mark = {"error": "FIX ", "warning": "LOOK", "ok": "ok  "}[self.level]
        return f"[{mark}] {self.where}: {self.message}"


@dataclass
class Report:
    findings: list = field(default_factory=list)
    titles: dict = field(default_factory=dict)      # "Q1" -> "Q1. Layers and their gradients (01_layers.ipynb)"

    def add(self, level: str, where: str, message: str, question: str = GENERAL) -> None:
        self.findings.append(Finding(level, where, message, question))

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.level == "error"]

    def by_question(self) -> list[tuple[str, list]]:
        """The findings grouped: those of no question first, then Q1, Q2, ... (in number order); in a
        question, those of ``hwlib/`` first, then notebook by notebook (each in the order found)."""
        order = sorted({f.question for f in self.findings},
                       key=lambda q: (q != GENERAL, int(q[1:]) if re.fullmatch(r"Q\d+", q) else 10**6, q))

        def notebook(finding) -> str:
            first = finding.where.split(" ")[0]
            return first if first.endswith(".ipynb") else ""

        return [(q, sorted((f for f in self.findings if f.question == q), key=notebook)) for q in order]

    def lines(self) -> list[str]:
        out = []
        for question, findings in self.by_question():
            if question != GENERAL:
                todo = sum(f.level == "error" for f in findings)
                out.append("")
                out.append(f"{self.titles.get(question, question)}: "
                           + (f"{todo} thing(s) to finish or fix" if todo else "nothing to fix"))
            out.extend(("  " if question != GENERAL else "") + str(f) for f in findings)
        return out


# --- where a cell is, as JupyterLab shows it; which question a notebook is ------------------------------

def _source(cell) -> str:
    source = cell.get("source", "")
    return source if isinstance(source, str) else "".join(source)


def _headings(cell) -> list[str]:
    """The Markdown headings of a cell (``## 3. Softmax loss`` -> ``3. Softmax loss``), fenced code skipped."""
    if cell.get("cell_type") != "markdown":
        return []
    found, fenced = [], False
    for line in _source(cell).splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and re.match(r"^ {0,3}#{1,6}\s+\S", line):
            found.append(line.strip().lstrip("#").strip().rstrip("#").strip())
    return found


def cell_place(nb: dict, index: int, name: str = "") -> str:
    """Where cell ``index`` (0-based, among all cells) is, as JupyterLab counts cells: every cell,
    Markdown too, from 1 (``01_layers.ipynb cell 21 of 50 (3. Softmax loss)``), with the nearest
    heading above it."""
    cells = nb.get("cells", [])
    heading = next((h[-1] for h in (_headings(c) for c in reversed(cells[:index])) if h), "")
    place = f"cell {index + 1} of {len(cells)}" + (f" ({heading})" if heading else "")
    return f"{name} {place}" if name else place


def notebook_question(nb: dict) -> tuple[str, str]:
    """The question a notebook is (``("Q1", "Q1. Layers and their gradients")``), read from the notebook
    itself: its first heading that starts with ``Q<n>``, else the ``q<n>-`` prefix of its nbgrader
    grade_ids; ``("", "")`` when it says neither."""
    for cell in nb.get("cells", []):
        for heading in _headings(cell):
            match = QUESTION_HEADING.match(heading)
            if match:
                return match.group(1), heading
    for cell in nb.get("cells", []):
        match = GRADE_ID_QUESTION.match(str(cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")))
        if match:
            return f"Q{int(match.group(1))}", f"Q{int(match.group(1))}"
    return GENERAL, ""


# --- locked cells: nbgrader's checksum, recomputed --------------------------------------------------

def _checksum(cell) -> str:
    """nbgrader's cell checksum (``nbgrader.utils.compute_checksum``), without needing nbgrader."""
    meta = cell["metadata"]["nbgrader"]
    solution, grade = bool(meta.get("solution")), bool(meta.get("grade"))
    locked = False if solution else (True if grade else bool(meta.get("locked", False)))
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    digest = hashlib.md5()
    for part in (source, cell["cell_type"], str(grade), str(solution), str(locked), meta["grade_id"]):
        digest.update(part.encode("utf-8"))
    if grade:
        digest.update(str(float(meta["points"])).encode("utf-8"))
    return digest.hexdigest()


def locked_cell_edits(nb: dict) -> list[str]:
    """grade_ids of the locked cells whose content differs from the released one."""
    edited = []
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta or "checksum" not in meta or meta.get("solution"):
            continue
        if _checksum(cell) != meta["checksum"]:
            edited.append(meta.get("grade_id", "?"))
    return edited


# --- what is not done yet: answer cells as released, stubs in hwlib ----------------------------------

def unanswered_cells(nb: dict) -> list[tuple[int, str, bool, str]]:
    """The answer cells (nbgrader solution cells, Markdown or code) still holding the release's
    placeholder (``YOUR ANSWER HERE``, ``raise NotImplementedError()``): (0-based index, grade_id,
    optional, what it still says). ``optional``: a graded cell worth 0 points in the notebook (an
    optional or extra-credit answer)."""
    found = []
    for index, cell in enumerate(nb.get("cells", [])):
        meta = cell.get("metadata", {}).get("nbgrader") or {}
        if not meta.get("solution"):
            continue
        source = _source(cell)
        held = [p for p in PLACEHOLDERS if p in source]
        if not held:
            continue
        as_released = "checksum" in meta and "grade_id" in meta and _checksum(cell) == meta["checksum"]
        optional = bool(meta.get("grade")) and float(meta.get("points", 0) or 0) == 0
        if as_released or source.strip() in PLACEHOLDERS:
            what = f"is not answered yet: it says {held[0]!r}, as released"
        else:
            what = f"still holds {held[0]!r}: replace it by your answer"
        found.append((index, str(meta.get("grade_id", "?")), optional, what))
    return found


@dataclass(frozen=True)
class Stub:
    """A function of the student's hwlib that still raises the release's ``NotImplementedError``."""

    function: str       # as the stub names it: "fc_forward", "SoftmaxClassifier.loss"
    question: str       # "Q1"
    detail: str         # what the stub says of it: "(Q1: 10 points with fc_backward)"
    path: str           # "hwlib/layers.py"
    line: int


def _stub_message(node) -> str | None:
    """The message of ``raise NotImplementedError("<function> is yours to write (Q<n>: ...)")``, else None."""
    if not isinstance(node, ast.Raise) or not isinstance(node.exc, ast.Call):
        return None
    call = node.exc
    if not (isinstance(call.func, ast.Name) and call.func.id == "NotImplementedError") or not call.args:
        return None
    arg = call.args[0]
    text = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
    return text if text and STUB_MESSAGE.match(text) else None


def _live_stubs(body: list, found: list) -> None:
    """The stub raises of a block that can run: one after a ``return``, ``raise``, ``break`` or
    ``continue`` of the same block is dead code (the student's code returns before it)."""
    for stmt in body:
        message = _stub_message(stmt)
        if message is not None:
            found.append((message, stmt.lineno))
            return
        for name in ("body", "orelse", "finalbody"):
            inner = getattr(stmt, name, None)
            if isinstance(inner, list):
                _live_stubs(inner, found)
        for handler in getattr(stmt, "handlers", []) or []:
            _live_stubs(handler.body, found)
        for case in getattr(stmt, "cases", []) or []:
            _live_stubs(case.body, found)
        if isinstance(stmt, (ast.Return, ast.Raise, ast.Break, ast.Continue)):
            return


def find_stubs(folder: Path) -> tuple[list[Stub], list[tuple[str, str]]]:
    """The release stubs still in ``folder/hwlib`` (read, never imported: one per function, the first
    that can run), and the modules that do not parse: ([Stub], [(path, error)])."""
    stubs, broken, seen = [], [], set()
    for path in sorted((folder / "hwlib").rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(folder).as_posix()
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        except (SyntaxError, ValueError, UnicodeDecodeError, OSError) as exc:
            line = getattr(exc, "lineno", None)
            at = f" (line {line})" if line else ""
            broken.append((rel, f"{type(exc).__name__}: {getattr(exc, 'msg', exc)}{at}"))
            continue
        found: list = []
        _live_stubs(tree.body, found)
        for message, line in found:
            match = STUB_MESSAGE.match(message)
            if match["function"] in seen:
                continue
            seen.add(match["function"])
            detail = message.split(";")[0].split(" is yours to write ", 1)[1].strip()
            stubs.append(Stub(match["function"], match["question"], detail, rel, line))
    return stubs, broken


# --- saved outputs against a clean run -----------------------------------------------------------------

def _text(cell) -> str:
    """What a code cell showed as text: streams, plain-text results, and errors (name: value)."""
    parts = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", "") if isinstance(out.get("text"), str) else "".join(out.get("text", [])))
        elif kind in ("execute_result", "display_data"):
            value = out.get("data", {}).get("text/plain", "")
            parts.append(value if isinstance(value, str) else "".join(value))
        elif kind == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
    return "".join(parts)


def _error_of(cell) -> str:
    """The first line of the cell's error (``NameError: name 'x' is not defined``), "" when none; a
    release stub's message is cut at its first ";" (the rest says how to check the function)."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            value = str(out.get("evalue", "")).strip()
            first = value.splitlines()[0] if value else ""
            if STUB_MESSAGE.match(first):
                first = first.split(";")[0]
            line = f"{out.get('ename', 'Error')}: {first}".strip().rstrip(":")
            return line if len(line) <= 200 else line[:197] + "..."
    return ""


def _first_difference(saved: str, clean: str) -> str:
    """The first line that differs, the numbers that changed in it picked out."""
    for before, after in zip(saved.splitlines() + [""] * 50, clean.splitlines() + [""] * 50):
        if before != after:
            numbers = (NUMBER.findall(before), NUMBER.findall(after))
            if numbers[0] and len(numbers[0]) == len(numbers[1]) and NUMBER.sub("#", before) == NUMBER.sub("#", after):
                changed = [f"{a} -> {b}" for a, b in zip(*numbers) if a != b]
                return f"printed {before.strip()!r} when saved, {after.strip()!r} on a clean run ({', '.join(changed)})"
            return f"printed {before.strip()!r} when saved, {after.strip()!r} on a clean run"
    return "its output differs"


def _numbers(values: list[int], most: int = 12) -> str:
    shown = ", ".join(str(v) for v in values[:most])
    return shown + (f", ... ({len(values)} in all)" if len(values) > most else "")


def _stub_question(cell) -> str:
    """The question of the release stub whose ``NotImplementedError`` the cell's error is, "" when none."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error" and out.get("ename") == "NotImplementedError":
            match = STUB_MESSAGE.match(str(out.get("evalue", "")))
            if match:
                return match["question"]
    return GENERAL


def compare_runs(saved: dict, clean: dict, name: str, question: str = GENERAL) -> list[Finding]:
    """Explain how the clean run of notebook ``name`` (a part of ``question``) differs from the outputs
    the student saved.

    Every cell that fails on the clean run is an error (the grader's run fails there too), whether it
    failed when saved, ran when saved (it used state from a deleted or re-ordered cell) or was never
    run; a cell stopped by a release stub belongs to the stub's question (``softmax_loss``, Q2, called
    in Q1's notebook), and a failure after an earlier one says so (it may follow from it). Other
    differences are warnings. Cells are numbered as JupyterLab does (all cells, from 1)."""
    findings = []
    cells = saved.get("cells", [])
    code = [c for c in cells if c.get("cell_type") == "code"]
    counts = [c.get("execution_count") for c in code]
    run = [n for n in counts if isinstance(n, int)]
    if run and run != sorted(run):
        findings.append(Finding("warning", name, "the saved outputs come from cells run out of order "
                                                 f"(execution counts {run[:12]}{' ...' if len(run) > 12 else ''})",
                                question))
    notebook_run = any(c.get("execution_count") is not None or c.get("outputs") for c in code)
    clean_by_id = {c.get("id"): c for c in clean.get("cells", [])}
    never_run, failed_before = [], None
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        other = clean_by_id.get(cell.get("id"))
        if other is None:
            continue
        where = cell_place(saved, index, name)
        saved_error, clean_error = _error_of(cell), _error_of(other)
        was_run = cell.get("execution_count") is not None or bool(cell.get("outputs"))
        if clean_error:
            stub = _stub_question(other)
            if not was_run:
                why = "; it was not run when saved" if notebook_run else ""
            elif saved_error:
                why = ", as when saved"
            else:
                why = " but ran when saved: it depends on state from a deleted, edited or re-ordered cell"
            if failed_before is not None and not stub:
                why += f" (cell {failed_before} failed before it)"
            findings.append(Finding("error", where, f"fails on a clean run ({clean_error}){why}", stub or question))
            failed_before = index + 1
        elif saved_error:
            findings.append(Finding("warning", where, f"failed when saved ({saved_error[:120]}), runs clean now",
                                    question))
        elif not was_run:
            if _text(other).strip():
                never_run.append(index + 1)
        elif _text(cell) != _text(other):
            findings.append(Finding("warning", where, _first_difference(_text(cell), _text(other)), question))
    if not notebook_run and code:
        findings.append(Finding("warning", name, "was not run when saved (no cell has an output); "
                                                 "the zip holds the clean run", question))
    elif never_run:
        findings.append(Finding("warning", name, f"{len(never_run)} cell(s) of {len(cells)} were not run when saved "
                                                 f"(cells {_numbers(never_run)}); the clean run gives them output "
                                                 "(the zip holds the clean run)", question))
    return findings


def _saved_errors(saved: dict, name: str, question: str) -> list[Finding]:
    """The error outputs a notebook was saved with (for a notebook that is not re-run)."""
    return [Finding("error", cell_place(saved, index, name),
                    f"its saved output is an error ({_error_of(cell)}); fix it and run the notebook again", question)
            for index, cell in enumerate(saved.get("cells", []))
            if cell.get("cell_type") == "code" and _error_of(cell)]


def _kernel_config(folder: str):
    """Settings for the kernel manager, so that the kernel does not warn "Kernel is running over TCP
    without encryption": on Linux and macOS the kernel and this process talk over IPC sockets (files in
    ``folder``, a private temporary folder: no network port at all); elsewhere (Windows: ZeroMQ has no
    IPC there) over TCP encrypted with CurveZMQ where jupyter_client and pyzmq support it. Nothing of
    the kernel's own stderr is hidden: a kernel that fails to start still says why."""
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    config = Config()
    if os.name == "posix":
        config.KernelManager.transport = "ipc"
        config.KernelManager.connection_file = os.path.join(folder, "kernel.json")
    elif "transport_encryption" in KernelManager.class_trait_names():
        import zmq

        if zmq.has("curve"):
            config.KernelManager.transport_encryption = "auto"
    return config


def run_notebook(path: Path, timeout: float | None = None) -> tuple[dict, float]:
    """Run ``path`` top to bottom in a fresh kernel in its folder (every cell, even after an error);
    return the executed notebook and the seconds it took. Your file is not changed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hw-kernel-") as sockets:
        client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                                config=_kernel_config(sockets), resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    return json.loads(nbformat.writes(nb)), time.perf_counter() - start


# --- the whole check ---------------------------------------------------------------------------------

def _public_checks(folder: Path, report: Report, log) -> None:
    log("public checks: python -m hwlib.check ...")
    res = subprocess.run([sys.executable, "-m", "hwlib.check"], cwd=folder, capture_output=True, text=True)
    # Not the details (indented); a progress bar rewrites its line with "\r": keep what it says last.
    lines = [ln.split("\r")[-1].strip() for ln in res.stdout.splitlines() if ln and not ln.startswith(" ")]
    lines = [ln for ln in lines if ln]
    summary = lines[-1] if lines else (res.stderr.strip().splitlines() or ["no output"])[-1]
    for line in lines[:-1]:
        # "NOT IMPLEMENTED yet": the stub is listed under its question already.
        if ": PASS" not in line and not line.endswith(":") and not line.endswith("NOT IMPLEMENTED yet"):
            report.add("warning", "public checks", line)
    report.add("ok" if res.returncode == 0 else "warning", "public checks", summary)


def check_folder(folder: Path, *, run: bool = True, notebooks: tuple | None = None, checks: bool = True,
                 timeout: float | None = None, log=print) -> tuple[Report, dict]:
    """Steps 1-5 on ``folder``; return the report and the re-run notebooks (name -> notebook dict)."""
    report, rerun = Report(), {}
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        report.add("error", str(folder), "no notebook (NN_name.ipynb) here: run this in your homework folder")
        return report, rerun
    if not (folder / "hwlib" / "__init__.py").is_file():
        report.add("error", "hwlib/", "the hwlib package is missing: your code lives there and is graded")
    saved, question_of = {}, {}
    for path in paths:
        try:
            saved[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            report.add("error", path.name, f"cannot be read as a notebook ({exc}); restore it from your last "
                                           "good copy or from the release")
            continue
        question, title = notebook_question(saved[path.name])
        question_of[path.name] = question
        if question and question not in report.titles:
            report.titles[question] = f"{title} ({path.name})"

    stubs, broken = find_stubs(folder)
    for rel, error in broken:
        report.add("error", rel, f"cannot be read as Python ({error}): the grader cannot import it")
    for stub in stubs:
        report.add("error", f"{stub.function} ({stub.path}, line {stub.line})",
                   f"not written yet: it still raises the release's NotImplementedError {stub.detail}",
                   stub.question)

    for name, nb in saved.items():
        question = question_of[name]
        for index, grade_id, optional, what in unanswered_cells(nb):
            level, kind = ("warning", "optional answer cell") if optional else ("error", "answer cell")
            report.add(level, cell_place(nb, index, name),
                       f"{kind} {grade_id} {what}" + ("; 0 points in the notebook (optional or extra credit): "
                                                      "leave it if you mean to" if optional else ""), question)
        edited = locked_cell_edits(nb)
        if edited:
            report.add("error", name, f"locked cell(s) {', '.join(edited)} were edited: they are restored "
                                      "before grading, so anything you wrote there is lost (undo the edits)", question)
    if checks:
        _public_checks(folder, report, log)
    for path in paths:
        if path.name not in saved:
            continue
        question = question_of[path.name]
        if not run or (notebooks and path.stem not in notebooks):
            report.findings.extend(_saved_errors(saved[path.name], path.name, question))
            continue
        log(f"clean run: {path.name} ...")
        executed, seconds = run_notebook(path, timeout)
        rerun[path.name] = executed
        found = compare_runs(saved[path.name], executed, path.name, question)
        report.findings.extend(found)
        failing = sum(f.level == "error" for f in found)
        if not failing:
            report.add("ok", path.name, f"ran clean in {seconds:.0f} s" +
                       (f"; {len(found)} difference(s) from your saved outputs, listed above" if found else
                        ", the same outputs as you saved"), question)
    return report, rerun


def write_zip(folder: Path, rerun: dict, keep_saved: bool = False, out: Path | None = None) -> Path:
    """The submission zip: ``<name>/`` holding the notebooks and ``hwlib/`` (no caches, no data)."""
    import nbformat

    out = out or folder.parent / f"{folder.name}_submission.zip"
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
            if path.name in rerun and not keep_saved:
                zf.writestr(f"{folder.name}/{path.name}", nbformat.writes(nbformat.from_dict(rerun[path.name])))
            else:
                zf.write(path, f"{folder.name}/{path.name}")
        for path in sorted((folder / "hwlib").rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                zf.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwlib.submit", description=__doc__.splitlines()[0],
                                     epilog="Exit status: 0 when nothing is left to do (the zip is written), "
                                            "1 otherwise (no zip unless --anyway).")
    parser.add_argument("folder", nargs="?", type=Path, default=Path("."), help="your homework folder (default: here)")
    parser.add_argument("--notebooks", default=None, help="comma-separated notebook names to re-run (default: all)")
    parser.add_argument("--no-run", action="store_true", help="skip the clean run of the notebooks")
    parser.add_argument("--no-checks", action="store_true", help="skip the public checks")
    parser.add_argument("--keep-saved", action="store_true", help="zip the notebooks as you saved them")
    parser.add_argument("--anyway", action="store_true",
                        help="write the zip even when something is not done (the exit status still says so)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per cell (default: none)")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    wanted = tuple(n.strip().removesuffix(".ipynb") for n in args.notebooks.split(",")) if args.notebooks else None
    report, rerun = check_folder(folder, run=not args.no_run, notebooks=wanted, checks=not args.no_checks,
                                 timeout=args.timeout)
    print()
    for line in report.lines():
        print(line)
    problems = report.errors
    if problems:
        listing = ", ".join(f"{question or 'other'}: {sum(f.level == 'error' for f in findings)}"
                            for question, findings in report.by_question() if any(f.level == "error" for f in findings))
        if not args.anyway:
            print(f"\nNot ready: {len(problems)} thing(s) to finish or fix ({listing}), listed above; no zip written.")
            print("Finish them and run this again, or hand in what you have now with "
                  "`python -m hwlib.submit --anyway` (it writes the zip and still lists them).")
            return 1
        archive = write_zip(folder, rerun, keep_saved=args.keep_saved)
        print(f"\nNot ready: {len(problems)} thing(s) to finish or fix ({listing}), listed above.")
        print(f"--anyway: the zip is written as it is, with these problems in it: {archive}")
        return 1
    archive = write_zip(folder, rerun, keep_saved=args.keep_saved)
    print(f"\nsubmission: {archive} (hand in this file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

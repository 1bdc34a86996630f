"""Check your homework before you hand it in, and write the zip: ``python -m hwlib.submit``.

Run it in your homework folder (the one holding the notebooks and ``hwlib/``). It does what a grader
would notice first, and tells you before they do:

1. **files**: every notebook is there and readable, and so is ``hwlib/``;
2. **locked cells**: a cell you must not change (a question, a test cell) still is as it was
   released; an edited one is restored before grading, so your edit there is lost;
3. **public checks**: ``python -m hwlib.check`` on your code (which tasks pass, which are not done);
4. **a clean run**: every notebook restarted and run top to bottom in a fresh kernel, as the grader
   does, and each difference from the outputs you saved explained cell by cell: a cell that fails
   on a clean run but ran when saved (it used a variable from a deleted or re-ordered cell), a number
   that changed (``cell 14 printed 97.9 % when saved, 97.2 % on a clean run``), cells saved out of
   order;
5. **the zip**: ``<folder>_submission.zip`` with the notebooks (as re-run, so what you hand in is
   what a clean run gives; ``--keep-saved`` zips your saved outputs instead) and ``hwlib/``.

A full-profile run of every notebook takes as long as your own runs did (``--notebooks`` picks some,
``--no-run`` skips step 4). The report says what to fix; it never changes your files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Finding", "locked_cell_edits", "compare_runs", "run_notebook", "check_folder", "write_zip", "main"]

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass
class Finding:
    """One thing the student should know: ``level`` is "error" (fix it), "warning" (look) or "ok"."""

    level: str
    where: str
    message: str

    def __str__(self) -> str:
        mark = {"error": "FIX ", "warning": "LOOK", "ok": "ok  "}[self.level]
        return f"[{mark}] {self.where}: {self.message}"


@dataclass
class Report:
    findings: list = field(default_factory=list)

    def add(self, level: str, where: str, message: str) -> None:
        self.findings.append(Finding(level, where, message))

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.level == "error"]


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
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}".strip()
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


def compare_runs(saved: dict, clean: dict, name: str) -> list[Finding]:
    """Explain how the clean run of notebook ``name`` differs from the outputs the student saved."""
    findings = []
    counts = [c.get("execution_count") for c in saved.get("cells", []) if c.get("cell_type") == "code"]
    run = [n for n in counts if isinstance(n, int)]
    if run and run != sorted(run):
        findings.append(Finding("warning", name, "the saved outputs come from cells run out of order "
                                                  f"(execution counts {run[:12]}{' ...' if len(run) > 12 else ''})"))
    clean_by_id = {c.get("id"): c for c in clean.get("cells", [])}
    number = 0
    for cell in saved.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        number += 1
        other = clean_by_id.get(cell.get("id"))
        if other is None:
            continue
        where = f"{name} cell {number}"
        saved_error, clean_error = _error_of(cell), _error_of(other)
        if clean_error and not saved_error and cell.get("execution_count") is not None:
            findings.append(Finding("error", where, f"fails on a clean run ({clean_error[:200]}) but ran when saved: "
                                                    "it depends on state from a deleted, edited or re-ordered cell"))
        elif clean_error and saved_error:
            findings.append(Finding("warning", where, f"fails ({clean_error[:200]}), as when saved"))
        elif saved_error and not clean_error:
            findings.append(Finding("warning", where, f"failed when saved ({saved_error[:120]}), runs clean now"))
        elif cell.get("execution_count") is None and _text(other).strip():
            findings.append(Finding("warning", where, "was not run when saved; a clean run gives it output"))
        elif _text(cell) != _text(other):
            findings.append(Finding("warning", where, _first_difference(_text(cell), _text(other))))
    return findings


def run_notebook(path: Path, timeout: float | None = None) -> tuple[dict, float]:
    """Run ``path`` top to bottom in a fresh kernel in its folder (every cell, even after an error);
    return the executed notebook and the seconds it took. Your file is not changed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return json.loads(nbformat.writes(nb)), time.perf_counter() - start


# --- the whole check ---------------------------------------------------------------------------------

def check_folder(folder: Path, *, run: bool = True, notebooks: tuple | None = None, checks: bool = True,
                 timeout: float | None = None, log=print) -> tuple[Report, dict]:
    """Steps 1-4 on ``folder``; return the report and the re-run notebooks (name -> notebook dict)."""
    report, rerun = Report(), {}
    paths = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        report.add("error", str(folder), "no notebook (NN_name.ipynb) here: run this in your homework folder")
        return report, rerun
    if not (folder / "hwlib" / "__init__.py").is_file():
        report.add("error", "hwlib/", "the hwlib package is missing: your code lives there and is graded")
    saved = {}
    for path in paths:
        try:
            saved[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            report.add("error", path.name, f"cannot be read as a notebook ({exc}); restore it from your last "
                                           "good copy or from the release")
            continue
        edited = locked_cell_edits(saved[path.name])
        if edited:
            report.add("error", path.name, f"locked cell(s) {', '.join(edited)} were edited: they are restored "
                                           "before grading, so anything you wrote there is lost (undo the edits)")
    if checks:
        log("public checks: python -m hwlib.check ...")
        res = subprocess.run([sys.executable, "-m", "hwlib.check"], cwd=folder, capture_output=True, text=True)
        lines = [ln for ln in res.stdout.splitlines() if ln and not ln.startswith(" ")]
        summary = lines[-1] if lines else (res.stderr.strip().splitlines() or ["no output"])[-1]
        for line in lines[:-1]:
            if ": PASS" not in line and not line.endswith(":"):
                report.add("warning", "public checks", line)
        report.add("ok" if res.returncode == 0 else "warning", "public checks", summary)
    for path in paths:
        if not run or path.name not in saved or (notebooks and path.stem not in notebooks):
            continue
        log(f"clean run: {path.name} ...")
        executed, seconds = run_notebook(path, timeout)
        rerun[path.name] = executed
        found = compare_runs(saved[path.name], executed, path.name)
        report.findings.extend(found)
        if not any(f.level == "error" for f in found):
            report.add("ok", path.name, f"ran clean in {seconds:.0f} s" +
                       (f"; {len(found)} difference(s) from your saved outputs, listed above" if found else
                        ", the same outputs as you saved"))
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
    parser = argparse.ArgumentParser(prog="python -m hwlib.submit", description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("."), help="your homework folder (default: here)")
    parser.add_argument("--notebooks", default=None, help="comma-separated notebook names to re-run (default: all)")
    parser.add_argument("--no-run", action="store_true", help="skip the clean run of the notebooks")
    parser.add_argument("--no-checks", action="store_true", help="skip the public checks")
    parser.add_argument("--keep-saved", action="store_true", help="zip the notebooks as you saved them")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per cell (default: none)")
    args = parser.parse_args(argv)
    folder = args.folder.resolve()
    wanted = tuple(n.strip().removesuffix(".ipynb") for n in args.notebooks.split(",")) if args.notebooks else None
    report, rerun = check_folder(folder, run=not args.no_run, notebooks=wanted, checks=not args.no_checks,
                                 timeout=args.timeout)
    print()
    for finding in report.findings:
        print(finding)
    if report.errors:
        print(f"\n{len(report.errors)} problem(s) to fix first; no zip written.")
        return 1
    archive = write_zip(folder, rerun, keep_saved=args.keep_saved)
    print(f"\nsubmission: {archive} (hand in this file)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

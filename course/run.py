"""``make run``: the main job -- the whole course built from the sources, then a summary.

Usage: ``python -m course.run [--profile full|quick] [--data-root DIR] [--force] [--only STEPS]``.

Steps, in order (each one's work is skipped when its inputs did not change since it last succeeded):

1. ``notebooks``: execute every course notebook from a fresh kernel into ``build/notebooks/`` on the
   best data available (the data root's full datasets when present, the embedded defaults otherwise);
2. ``report``: the executed notebooks as one report (``build/report/``: HTML, PDF with LaTeX);
3. ``release``: the student release (``build/release/``);
4. ``autograde``: grade the generated sample submissions (``build/course/``: grades CSV, feedback).

The summary lists which data each notebook used and its headline results (the lines notebooks
print starting with ``Data:`` or ``RESULT``), and where the report and the grades are. A failed step
prints what failed and the command exits non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from hwlib.paths import data_root

from . import paths
from .execute import execute, source_notebooks
from .paths import REPO


STEPS = ("notebooks", "report", "release", "autograde")


def digest_of(paths, extra=None) -> str:
    """Hash of files (folders: every file under them, build outputs and caches excluded) and ``extra``."""
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True, default=str).encode())
    for root in paths:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or ".ipynb_checkpoints" in path.parts:
                continue
            digest.update(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def datasets_present(root) -> dict:
    """Which datasets the data root holds (a notebook's data source changes when one arrives)."""
    from hwlib.data import DATASETS

    return {name: bool(dataset.present(root)) for name, dataset in sorted(DATASETS.items())}


def inputs_digest(notebook: Path, parameters: dict) -> str:
    """Hash of what a notebook run depends on: the notebook, every hwlib source, the parameters and
    which datasets are in the data root (fetching full MNIST later makes Q2, Q3 and Q5 run again)."""
    return digest_of([notebook, REPO / "hwlib"], {**parameters, "datasets": datasets_present(parameters["data_root"])})


def run_step(name: str, commands: list[list[str]], digest: str, force: bool) -> str:
    """Run ``commands`` unless the inputs' ``digest`` matches the last success; return a status line."""
    stamp = paths.step_stamp(name)
    if not force and stamp.exists() and stamp.read_text() == digest:
        return "unchanged, skipped"
    start = time.perf_counter()
    for command in commands:
        print(f"--- {name}: {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(command))}", flush=True)
        result = subprocess.run(command, cwd=REPO)
        if result.returncode != 0:
            stamp.unlink(missing_ok=True)
            raise StepFailed(f"{name} failed (exit {result.returncode}): `{' '.join(command[1:])}`; its output is above")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest)
    return f"done in {time.perf_counter() - start:.0f} s"


class StepFailed(RuntimeError):
    pass


def summary_lines(executed: Path) -> list[str]:
    """The ``Data:`` and ``RESULT`` lines a notebook printed, with what a RESULT line's next line says
    of it in parentheses (what the figure means on the data used)."""
    nb = nbformat.read(executed, as_version=4)
    lines = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            after_result = False
            for line in (raw.strip() for raw in text.splitlines()):
                if line.startswith(("Data:", "RESULT")) or (after_result and line.startswith("(")):
                    lines.append(line)
                after_result = line.startswith("RESULT")
    return lines


def run_notebooks(params: dict, force: bool) -> tuple[list, list]:
    """Execute every course notebook; return (rows for the summary, names of failed notebooks)."""
    executed = paths.EXECUTED
    executed.mkdir(parents=True, exist_ok=True)
    rows, failed = [], []
    for notebook in source_notebooks():
        output = executed / notebook.name
        stamp = executed / f".{notebook.stem}.inputs"
        digest = inputs_digest(notebook, params)
        if not force and output.exists() and stamp.exists() and stamp.read_text() == digest:
            rows.append((notebook.name, "unchanged, skipped", summary_lines(output)))
            continue
        print(f"--- notebooks: running {notebook.name} ...", flush=True)
        try:
            seconds = execute(notebook, output, params)
        except Exception as exc:  # papermill names the failing cell; run the others, fail at the end
            failed.append(notebook.name)
            stamp.unlink(missing_ok=True)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            rows.append((notebook.name, f"FAILED: {first_line} (see {output})", []))
            continue
        stamp.write_text(digest)
        rows.append((notebook.name, f"ran in {seconds:.0f} s", summary_lines(output)))
    return rows, failed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course.run", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=["full", "quick"])
    parser.add_argument("--data-root", default=None, help="default: $HWLIB_DATA_ROOT or the kit's data/")
    parser.add_argument("--force", action="store_true", help="redo every step even if its inputs did not change")
    parser.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps (default: {','.join(STEPS)})")
    args = parser.parse_args(argv)
    steps = [step.strip() for step in args.only.split(",") if step.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown step(s) {unknown}; expected some of {list(STEPS)}")

    root = data_root(args.data_root)
    params = {"profile": args.profile, "data_root": str(root), "seed": 0}
    print(f"make run: profile {args.profile}, data root {root}, steps {', '.join(steps)}", flush=True)
    start = time.perf_counter()
    rows, failed, statuses = [], [], {}
    python = sys.executable
    # What the release and the grades are built from: the kit, its notebooks, the course description
    # and the grading tools.
    sources = [paths.HWLIB, paths.NOTEBOOKS, paths.COURSE_PACKAGE, paths.GRADING]
    try:
        if "notebooks" in steps:
            rows, failed = run_notebooks(params, args.force)
            if failed:
                raise StepFailed(f"{len(failed)} notebook(s) failed: {', '.join(failed)}")
        if "report" in steps:
            statuses["report"] = run_step("report", [[python, "-m", "course.report"],
                                                     [python, "-m", "course.report", "--flavour", "report"]],
                                          digest_of([paths.EXECUTED, paths.COURSE_PACKAGE / "report.py"]),
                                          args.force)
        if "release" in steps:
            statuses["release"] = run_step("release", [[python, "-m", "grading", "release"]],
                                           digest_of(sources), args.force)
        if "autograde" in steps:  # sample submissions generated from the reference, then graded
            # Every sample is graded (hidden checks, scores, feedback); the notebooks run in the sandbox
            # for the "perfect" one only: they run the same code in every sample, and would take 20 minutes.
            # Without full isolation (no bubblewrap here) the samples whose code attacks the grader are
            # left out, never run, and the others are graded with --allow-weak-isolation (flagged).
            samples = paths.SAMPLES
            weak = _isolation_level()
            statuses["autograde"] = run_step(
                "autograde", [[python, "-m", "grading", "samples", str(samples)] + (["--no-hostile"] if weak else []),
                              [python, "-m", "grading", "autograde", str(samples), "--execute-only", "perfect"]
                              + (["--allow-weak-isolation"] if weak else [])],
                digest_of(sources) + ("-weak" if weak else ""), args.force)
            if weak:
                statuses["autograde"] += (f"; the hostile samples were NOT run: this machine gives isolation "
                                          f"'{weak}', not 'full' (install bubblewrap: apt-get install bubblewrap); "
                                          "the others were graded with --allow-weak-isolation (flagged)")
    except StepFailed as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        _print_summary(rows, statuses, time.perf_counter() - start)
        return 1
    _print_summary(rows, statuses, time.perf_counter() - start)
    return 0


def _isolation_level() -> str:
    """"" where the grading sandbox gives full isolation, else the level it gives (asked of the grading
    command, as every other step does: the course build imports nothing of grading)."""
    out = subprocess.run([sys.executable, "-m", "grading", "isolation"], cwd=REPO, capture_output=True, text=True,
                         check=False).stdout
    level = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("level:")), "unknown")
    return "" if level == "full" else level


def _print_summary(rows, statuses, seconds) -> None:
    print(f"\n=== make run: summary ({seconds:.0f} s) ===")
    for name, status, lines in rows:
        print(f"{name}: {status}")
        for line in lines:
            print(f"    {line}")
    where = {"report": paths.REPORT, "release": paths.RELEASE, "autograde": paths.COURSE}
    for step, status in statuses.items():
        print(f"{step}: {status} -> {where[step].relative_to(REPO)}/")
    grades = sorted(paths.COURSE.glob("**/grades.csv"))
    if grades:
        print(f"grades: {grades[0].relative_to(REPO)}")
    if rows:
        print(f"executed notebooks: {paths.EXECUTED.relative_to(REPO)}/")


if __name__ == "__main__":
    sys.exit(main())

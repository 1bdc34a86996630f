"""``make run``: execute every course notebook headless into ``build/notebooks/`` and summarise.

Usage: ``python -m grading.run [--profile full|quick] [--data-root DIR] [--force]``.

Each notebook runs from a fresh kernel on the best data available (the data root's full
datasets when present, the embedded defaults otherwise). A notebook whose inputs (its source,
the hwlib sources, the parameters) did not change since its last successful run is skipped.
The summary lists which data each notebook used and its headline results: lines the notebooks
print starting with ``Data:`` or ``RESULT``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import nbformat

from hwlib.paths import data_root

from .execute import REPO, execute, source_notebooks

BUILD = REPO / "build" / "notebooks"


def inputs_digest(notebook: Path, parameters: dict) -> str:
    """Hash of what a run depends on: the notebook, every hwlib source, the parameters."""
    digest = hashlib.sha256(notebook.read_bytes())
    for path in sorted((REPO / "hwlib").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(json.dumps(parameters, sort_keys=True).encode())
    return digest.hexdigest()


def summary_lines(executed: Path) -> list[str]:
    """The ``Data:`` and ``RESULT`` lines a notebook printed."""
    nb = nbformat.read(executed, as_version=4)
    lines = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") if output.get("output_type") == "stream" else ""
            lines += [line.strip() for line in text.splitlines() if line.strip().startswith(("Data:", "RESULT"))]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading.run", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=["full", "quick"])
    parser.add_argument("--data-root", default=None, help="default: $HWLIB_DATA_ROOT or the kit's data/")
    parser.add_argument("--force", action="store_true", help="re-run notebooks even if their inputs did not change")
    args = parser.parse_args(argv)

    root = data_root(args.data_root)
    params = {"profile": args.profile, "data_root": str(root), "seed": 0}
    print(f"make run: profile {args.profile}, data root {root}")
    BUILD.mkdir(parents=True, exist_ok=True)
    report, failed, start = [], [], time.perf_counter()
    for notebook in source_notebooks():
        output = BUILD / notebook.name
        stamp = BUILD / f".{notebook.stem}.inputs"
        digest = inputs_digest(notebook, params)
        if not args.force and output.exists() and stamp.exists() and stamp.read_text() == digest:
            report.append((notebook.name, "unchanged, skipped", summary_lines(output)))
            continue
        print(f"running {notebook.name} ...", flush=True)
        try:
            seconds = execute(notebook, output, params)
        except Exception as exc:  # papermill names the failing cell; keep going, fail at the end
            failed.append(notebook.name)
            stamp.unlink(missing_ok=True)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            report.append((notebook.name, f"FAILED: {first_line} (see {output})", []))
            continue
        stamp.write_text(digest)
        report.append((notebook.name, f"ran in {seconds:.0f} s", summary_lines(output)))

    print(f"\n=== summary ({time.perf_counter() - start:.0f} s) ===")
    for name, status, lines in report:
        print(f"{name}: {status}")
        for line in lines:
            print(f"    {line}")
    print(f"executed notebooks: {BUILD}")
    if failed:
        print(f"error: {len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

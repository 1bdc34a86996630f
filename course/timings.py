"""How long each notebook takes, per profile: measured, kept in ``course/timings.toml``, shown to students.

``python -m course.timings [--profiles quick,full] [--notebooks 02_softmax_mnist,...] [--data-root DIR]
[--keep DIR]`` runs each notebook from a fresh kernel (as ``make run`` does), one at a time, and records its wall time
with the machine's CPU count and load average before and after, so that a figure taken on a busy
machine says so. The release's README (grading/release/build.py) renders the table from the file;
a notebook or profile never measured shows as "not measured".
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import tomllib
from pathlib import Path

from .execute import execute
from .paths import COURSE_PACKAGE
from .registry import load as load_registry

__all__ = ["TIMINGS", "read", "measure", "table"]

TIMINGS = COURSE_PACKAGE / "timings.toml"
PROFILES = ("quick", "full")
# What a student fetches for a notebook's full profile where the built-in data is only a stand-in
# (README: python -m hwlib.data fetch ...): a full-profile time on the stand-in is no time of that run.
FETCHED = {"04_image_captioning": "the COCO captions", "05_transfer_learning": "the ant and bee images and the "
           "ResNet-18 weights"}


def read(path: Path = TIMINGS) -> dict:
    """``{notebook: {profile: {"seconds", "load_before", "load_after", "cpus", "data", "date"}}}``."""
    return tomllib.loads(path.read_text()).get("notebook", {}) if path.exists() else {}


def _write(data: dict, path: Path) -> None:
    lines = ["# Wall times of the notebooks per profile, written by `python -m course.timings` (do not edit by",
             "# hand): seconds from a fresh kernel, the CPUs and the load average before and after the run.", ""]
    for stem in sorted(data):
        for profile in PROFILES:
            if profile in data[stem]:
                row = data[stem][profile]
                lines.append(f"[notebook.{stem}.{profile}]")
                lines += [f"{key} = {value!r}" if not isinstance(value, str) else f'{key} = "{value}"'
                          for key, value in row.items()]
                lines.append("")
    path.write_text("\n".join(lines))


def measure(notebooks, profiles, data_root=None, path: Path = TIMINGS, keep: Path | None = None) -> dict:
    """Run and time each notebook in each profile; merge the figures into ``path``; return them.

    ``keep``: a folder where the executed copies are kept as ``<stem>.<profile>.ipynb`` (to read the
    results the timed run printed); by default they are discarded.
    """
    data = read(path)
    # The kernel runs in the notebook's folder: a relative data root would name another folder there.
    data_root = Path(data_root).resolve() if data_root else None
    for stem in notebooks:
        for profile in profiles:
            source = load_registry().notebook_paths[load_registry().notebooks.index(stem)]
            before = os.getloadavg()[0]
            params = {"profile": profile, "seed": 0, **({"data_root": str(data_root)} if data_root else {})}
            with tempfile.TemporaryDirectory() as tmp:
                target = Path(keep or tmp) / f"{stem}.{profile}.ipynb"
                target.parent.mkdir(parents=True, exist_ok=True)
                seconds = execute(source, target, params, quiet=True)
            data.setdefault(stem, {})[profile] = {
                "seconds": round(seconds, 1), "cpus": os.cpu_count(), "load_before": round(before, 2),
                "load_after": round(os.getloadavg()[0], 2), "data": "full" if data_root else "embedded",
                "date": dt.date.today().isoformat()}
            print(f"{stem} {profile}: {seconds:.0f} s (load {before:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
            _write(data, path)
    return data


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def table(data: dict | None = None) -> str:
    """The Markdown table of the times, one row per notebook of the course."""
    data = read() if data is None else data
    rows = ["| notebook | quick profile | full profile |", "|---|---|---|"]
    for stem in load_registry().notebooks:
        cells = []
        for profile in PROFILES:
            row = data.get(stem, {}).get(profile)
            if row is None:
                cells.append("not measured")
            elif profile == "full" and stem in FETCHED and row["data"] != "full":
                cells.append(f"not measured with {FETCHED[stem]} you fetch (the built-in stand-in: "
                             f"{_duration(row['seconds'])})")
            else:
                cells.append(f"{_duration(row['seconds'])} ({row['cpus']} cores, load {row['load_before']:g}, "
                             f"{row['data']} data)")
        rows.append(f"| `{stem}.ipynb` | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course.timings", description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", default="quick", help="comma-separated: quick, full (default: quick)")
    parser.add_argument("--notebooks", default="", help="comma-separated notebook stems (default: all)")
    parser.add_argument("--data-root", default=None, help="the data root for the runs (default: the kit's)")
    parser.add_argument("--keep", default=None, type=Path, help="keep the executed copies in this folder")
    args = parser.parse_args(argv)
    known = load_registry().notebooks
    notebooks = [s for s in args.notebooks.split(",") if s] or known
    unknown = sorted(set(notebooks) - set(known)) + sorted(set(args.profiles.split(",")) - set(PROFILES))
    if unknown:
        parser.error(f"unknown notebook(s) or profile(s): {unknown}; notebooks: {known}; profiles: {PROFILES}")
    measure(notebooks, args.profiles.split(","), args.data_root, keep=args.keep)
    print(table())


if __name__ == "__main__":
    main()

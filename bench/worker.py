"""One implementation of one suite, timed in a process of its own.

``python -m bench.worker SUITE IMPL [--quick]`` runs ``bench.<suite>.measure(impl, quick)`` and
prints its result as one JSON line after ``MARKER``; ``bench/__main__.py`` starts one such process
per implementation and round (or runs :func:`measure_json` in a fresh notebook kernel). Importing
:mod:`bench` first pins the thread counts before NumPy or PyTorch loads.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import bench  # noqa: F401  (pins the threads before NumPy or PyTorch is imported)
from bench import baton as baton_module

MARKER = "BENCH-RESULT "


def measure_json(suite: str, impl: str, quick: bool = False, baton: str | None = None) -> str:
    """The suite's measurement of ``impl`` as the line the parent reads, with this process's id and
    whether PyTorch was loaded in it (the parent refuses an hwlib figure taken beside PyTorch).
    ``baton``: compute only while holding it (:mod:`bench.baton`)."""
    module = importlib.import_module(f"bench.{suite}")
    baton_module.attach(baton)
    try:
        result = module.measure(impl, quick)
    finally:
        baton_module.detach()
    return MARKER + json.dumps({"pid": os.getpid(), "torch_loaded": "torch" in sys.modules, "result": result})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__.splitlines()[0])
    parser.add_argument("suite")
    parser.add_argument("impl")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--baton", default=None, help="the FIFOs' path of a lock-step run (bench.baton)")
    args = parser.parse_args(argv)
    print(measure_json(args.suite, args.impl, args.quick, args.baton), flush=True)


if __name__ == "__main__":
    main()

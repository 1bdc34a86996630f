"""Run the kit's benchmarks and print one table: ``python -m bench [--only SUITE] [--quick]``."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

from . import THREADS

# Suite name -> module of this package with ``run(quick) -> (rows, checks)``. Add new suites here.
SUITES = {
    "layers": "bench.layers",
    "models": "bench.models",
}


def _load() -> str:
    # Other processes on the machine slow everything down, PyTorch's thread pool most of all:
    # print the load so that a reader can tell a quiet run from a busy one.
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average unknown"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.3f}"


def _ratio(value) -> str:
    return f"{value:8.2f}" if value is not None else " " * 8


def print_table(suite: str, rows) -> None:
    case_w = max([len(r.case) for r in rows] + [4])
    impl_w = max([len(r.impl) for r in rows] + [4])
    print(f"\n== {suite} ==  median times in ms; ratio = this row / the row named in 'ratio to'")
    print(f"{'case':<{case_w}}  {'impl':<{impl_w}}  {'fwd':>10}  {'fwd+bwd':>10}  {'ratio':>8}  {'ratio':>8}  ratio to")
    print(f"{'':<{case_w}}  {'':<{impl_w}}  {'':>10}  {'':>10}  {'fwd':>8}  {'fwd+bwd':>8}")
    previous = None
    for r in rows:
        case = r.case if r.case != previous else ""
        previous = r.case
        line = (f"{case:<{case_w}}  {r.impl:<{impl_w}}  {_ms(r.fwd_s)}  {_ms(r.fwdbwd_s)}  "
                f"{_ratio(r.ratio_fwd)}  {_ratio(r.ratio_fwdbwd)}  {r.ratio_to}")
        if r.note:
            line += f"  ({r.note})"
        print(line.rstrip())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", choices=sorted(SUITES), action="append",
                        help="run only this suite (repeatable); default: all")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke test, noisy numbers)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    print(f"bench: {THREADS} threads for NumPy's BLAS and PyTorch (BENCH_THREADS); python {platform.python_version()}, "
          f"numpy {np.__version__}, torch {torch.__version__}; {os.cpu_count()} CPUs, {_load()}")
    all_checks = []
    for name in args.only or list(SUITES):
        start = time.perf_counter()
        rows, checks = importlib.import_module(SUITES[name]).run(quick=args.quick)
        print_table(name, rows)
        print(f"({name}: {time.perf_counter() - start:.0f} s; {_load()})")
        all_checks += checks

    if all_checks:
        print("\n== targets ==")
        for c in all_checks:
            detail = f"; {c.detail}" if c.detail else ""
            print(f"{'PASS' if c.passed else 'FAIL'}  {c.name} = {c.value:.2f}  (target {c.op} {c.target:g}{detail})")
        failed = sum(not c.passed for c in all_checks)
        print(f"{'PASS' if not failed else 'FAIL'}: {len(all_checks) - failed}/{len(all_checks)} targets met")
        if failed and args.strict:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

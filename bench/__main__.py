"""Run the kit's benchmarks, each implementation in a fresh process: ``python -m bench``.

``python -m bench [--only SUITE] [--rounds R] [--quick] [--kernel] [--data-root DIR] [--strict]``;
``make bench`` runs the layer and model suites; the full-MNIST training suite needs the full set:
``python -m bench --only training --data-root DIR`` (or ``make bench-training``).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from . import THREADS, Check, spread
from .baton import lockstep
from .launch import LAUNCHERS

# Suite name -> module of this package (see bench/__init__.py). DEFAULT: what a plain run times.
SUITES = {
    "layers": "bench.layers",
    "models": "bench.models",
    "training": "bench.training",
}
DEFAULT = ("layers", "models")
ROUNDS = 5
KERNEL_TOLERANCE = 0.10   # a notebook kernel's ratios within 10 % of the command line's


def _load() -> str:
    # Other processes on the machine slow everything down: print the load so that a reader can tell
    # a quiet run from a busy one.
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average unknown"


def _blas_note() -> str:
    """Which OpenBLAS kernel NumPy runs here, and whether the environment forced it: some machine
    images set OPENBLAS_CORETYPE (an older kernel, for older OpenBLAS builds), which a user's machine
    does not; NumPy's matrix products then run up to 1.7x slower and the ratios are not a user's."""
    import numpy  # noqa: F401  (loads OpenBLAS)
    from threadpoolctl import threadpool_info

    kernels = sorted({p.get("architecture") or "?" for p in threadpool_info() if p.get("internal_api") == "openblas"})
    note = f"NumPy's OpenBLAS kernel: {', '.join(kernels) or 'none found'}"
    forced = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    if forced:
        note += (f"; WARNING: forced by {', '.join(f'{k}={v}' for k, v in forced.items())} in the environment: "
                 "to measure what a user's machine runs, `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE make bench`")
    return note


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:10.3f}" if not math.isnan(seconds) else f"{'-':>10}"


def _ratio(value) -> str:
    return f"{value:8.2f}" if value is not None else " " * 8


def print_table(title: str, rows) -> None:
    case_w = max([len(r.case) for r in rows] + [4])
    impl_w = max([len(r.impl) for r in rows] + [4])
    print(f"\n== {title} ==  times in ms (medians over rounds); ratio = median of the per-round ratios "
          "this row / the row named in 'ratio to'")
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


def run_suite(name: str, launchers: list[str], rounds: int, quick: bool) -> dict:
    """``{launcher: {impl: [result of each round]}}``: every implementation in a fresh process (or
    kernel) per round and launcher, the order of the implementations rotating each round. With two
    launchers, each implementation runs under both at once in lock-step (:mod:`bench.baton`; which
    one starts alternates), so that the kernel/command-line comparison is free of this machine's
    drift (10-20 % over tens of seconds). Implementations in the suite's ``ONCE`` run in round 1 only."""
    module = importlib.import_module(SUITES[name])
    impls = list(module.IMPLS)
    results = {launcher: {impl: [] for impl in impls} for launcher in launchers}
    pids = {os.getpid()}
    for r in range(rounds):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for i, impl in enumerate(order):
            if r and impl in module.ONCE:
                continue
            first = launchers if (r + i) % 2 == 0 else launchers[::-1]
            if len(first) == 1:
                envelopes = {first[0]: LAUNCHERS[first[0]](name, impl, quick)}
            else:
                # Both launchers at once, in lock-step: their ratio is free of the machine's drift.
                envelopes = lockstep({launcher: partial(LAUNCHERS[launcher], name, impl, quick) for launcher in first})
            for launcher, envelope in envelopes.items():
                if envelope["torch_loaded"] and not impl.startswith("torch"):
                    raise RuntimeError(f"bench: {name} {impl} loaded PyTorch in its process: its figure would not be "
                                       "hwlib's alone; import torch only in the torch implementations")
                if envelope["pid"] in pids:
                    raise RuntimeError(f"bench: {name} {impl} ran in a process that already ran a measurement")
                pids.add(envelope["pid"])
                results[launcher][impl].append(envelope["result"])
        print(f"  {name}: round {r + 1}/{rounds} done ({', '.join(launchers)}; {_load()})", flush=True)
    return results


def _paired(results: dict, impl: str, case: str) -> list[float]:
    """Per round: ``impl``'s time in the notebook kernel over its time on the command line, the two
    taken in lock-step."""
    return [k[case]["fwdbwd"] / c[case]["fwdbwd"]
            for k, c in zip(results["notebook kernel"][impl], results["command line"][impl])]


def _kernel_checks(results: dict, checks: list[Check]) -> list[Check]:
    """The kit must be as fast where students run it: for every target, hwlib's time in a notebook
    kernel over its time on the command line, and the target's figure (hwlib / PyTorch) in a kernel
    over the same figure on the command line, each within ``KERNEL_TOLERANCE``. Both come from
    lock-step pairs, round by round: (hwlib kernel / hwlib command line) / (PyTorch kernel / PyTorch
    command line). The medians of unpaired rounds are printed too; they carry the machine's drift."""
    out = []
    for check in checks:
        if not check.impl or not check.ref:
            continue
        ours, theirs = _paired(results, check.impl, check.case), _paired(results, check.ref, check.case)
        figure = [a / b for a, b in zip(ours, theirs)]
        for label, values, extra in (
                (f"{check.case} {check.impl}: time in a notebook kernel / on the command line", ours, ""),
                (f"{check.name}: the figure in a notebook kernel / on the command line", figure,
                 f"; {check.ref}'s time kernel / command line {statistics.median(theirs):.2f}")):
            detail = f"median of {len(values)} lock-step pairs, {spread(values)}{extra}"
            value = float(statistics.median(values))
            out += [Check(label, value, "<=", 1 + KERNEL_TOLERANCE, detail),
                    Check(label, value, ">=", 1 - KERNEL_TOLERANCE, detail)]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SUITES), action="append",
                        help=f"run only this suite (repeatable); default: {', '.join(DEFAULT)}")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"rounds of fresh processes (default {ROUNDS}; the training suite: 1)")
    parser.add_argument("--quick", action="store_true", help="short timed blocks, 2 rounds (a smoke test, noisy numbers)")
    parser.add_argument("--kernel", action="store_true",
                        help="also run every suite in notebook kernels and compare with the command line")
    parser.add_argument("--data-root", default=None, help="the data root of the runs (the training suite needs full MNIST)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.data_root:
        from hwlib.paths import DATA_ROOT_ENV

        os.environ[DATA_ROOT_ENV] = str(Path(args.data_root).resolve())   # the workers inherit it
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else None)

    import numpy as np
    import torch

    print(f"bench: each implementation in a fresh process of its own (never two libraries in one process), "
          f"warm-up then a timed block, implementations alternating over rounds; {THREADS} threads for NumPy's BLAS "
          f"and PyTorch (BENCH_THREADS); python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__}; {os.cpu_count()} CPUs, {_load()}", flush=True)
    del np, torch
    print(_blas_note(), flush=True)
    launchers = ["command line"] + (["notebook kernel"] if args.kernel else [])
    all_checks, notes = [], []
    for name in args.only or DEFAULT:
        module = importlib.import_module(SUITES[name])
        start = time.perf_counter()
        results = run_suite(name, launchers, rounds if rounds is not None else getattr(module, "ROUNDS", ROUNDS),
                            args.quick)
        print(f"({name}: {time.perf_counter() - start:.0f} s; {_load()})", flush=True)
        target_ratios = {}
        for launcher in launchers:
            rows, checks = module.report(results[launcher], args.quick)
            print_table(f"{name}, {launcher}", rows)
            target_ratios[launcher] = {c.name: c.value for c in checks}
            # Every target holds in a notebook kernel too.
            all_checks += checks if launcher == "command line" else [
                replace(c, name=f"{c.name} [notebook kernel]") for c in checks]
        if args.kernel:
            all_checks += _kernel_checks(results, checks)
            cli_ratios, kernel_ratios = target_ratios["command line"], target_ratios["notebook kernel"]
            notes += [f"{check}: ratio {cli_ratios[check]:.2f} on the command line, {kernel_ratios[check]:.2f} in a "
                      f"notebook kernel (medians of unpaired rounds)" for check in cli_ratios]

    if notes:
        print("\n== the targets' ratios, command line and notebook kernel ==")
        print("\n".join(notes))
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

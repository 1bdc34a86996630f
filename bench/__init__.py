"""Benchmarks of the kit: ``python -m bench`` (or ``make bench``).

How a figure is taken (the rules every suite follows):

* **One process per implementation.** hwlib and PyTorch never run in the same process: each
  implementation of a suite runs in a fresh Python process of its own (``python -m bench.worker``),
  as a user runs one or the other. Two libraries interleaved in one process on a small machine fight
  over their thread pools (OpenBLAS's and PyTorch's threads spin against each other) and over malloc,
  and the ratios come out flattering and false.
* **Warm-up, then a timed block.** In its process, each case is called a few times untimed, then
  timed call by call for a time budget; the figure of the round is the median call.
* **Rounds.** The implementations alternate, one fresh process each, over several rounds (the order
  rotates every round), so that a burst of load hits all of them alike. A ratio (hwlib / PyTorch) is
  computed per round; we report the median of the per-round ratios and their spread (min-max).
* **Threads** are pinned before NumPy or PyTorch is imported (``THREADS``, from ``BENCH_THREADS``,
  default 2): OpenBLAS behind NumPy and PyTorch's intra-op pool use the same number of threads.
* ``--kernel``: each implementation also runs in a notebook kernel (a one-cell notebook executed
  headless by nbclient, as JupyterLab's kernel runs a student's code). The kernel and a command-line
  process of the same implementation run at once in lock-step (:mod:`bench.baton`: only the one
  holding the baton computes, in slices of a quarter second), so that both see the same states of the
  machine. Judged on the median of the pairs: hwlib's time in the kernel over its time on the
  command line, and each target's figure (hwlib / PyTorch) in the kernel over the command line's.

A suite is a module of this package (listed in ``bench/__main__.py``) with ``IMPLS`` (the
implementations, one process each), ``measure(impl, quick) -> {case: {...}}`` (run in the worker,
JSON-able) and ``report(results, quick) -> (rows, checks)`` where ``results[impl]`` is the list of
the rounds' ``measure`` results.
"""

from __future__ import annotations

import os

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# Must happen before NumPy (OpenBLAS) or PyTorch (OpenMP, MKL) is imported to take effect; the worker
# processes inherit it.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import gc  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from .baton import checkpoint  # noqa: E402  (between two timed calls a lock-step run may hand the machine over)

__all__ = ["THREADS", "Row", "Check", "time_block", "setup_torch", "ratios", "spread"]


@dataclass
class Row:
    """One timed implementation of one benchmark case (times in seconds, medians over the rounds)."""

    case: str                          # what is computed, with shapes: "conv x(50,1,28,28) w(32,1,7,7)"
    impl: str                          # who computes it: "hwlib f64", "torch f32", "naive f64"
    fwd_s: float                       # forward pass
    fwdbwd_s: float                    # forward + backward (or a whole training iteration)
    ratio_fwd: float | None = None     # median over rounds of fwd_s / the same time of ``ratio_to``
    ratio_fwdbwd: float | None = None  # median over rounds of fwdbwd_s / the same time of ``ratio_to``
    ratio_to: str = ""                 # the row the ratios compare with, e.g. "torch f64"
    note: str = ""                     # the ratios' spread over the rounds, or how it was timed


@dataclass
class Check:
    """A speed target and whether this run met it."""

    name: str
    value: float
    op: str                            # "<=" or ">="
    target: float
    detail: str = ""                   # context printed after the verdict (e.g. the rounds' spread)
    case: str = ""                     # the case and the hwlib implementation whose time the target
    impl: str = ""                     # is about (``--kernel`` compares that time across launchers)
    ref: str = ""                      # the implementation it is compared with ("torch f64"), if any

    @property
    def passed(self) -> bool:
        return self.value <= self.target if self.op == "<=" else self.value >= self.target


def setup_torch():
    """Import PyTorch with the benchmark's thread count; return the module."""
    import torch

    torch.set_num_threads(THREADS)
    return torch


def time_block(fn, budget_s: float = 3.0, warmup: int = 3, min_calls: int = 10, max_calls: int = 2000) -> float:
    """Median seconds per call of the zero-argument ``fn``: ``warmup`` untimed calls, then a timed
    block of calls sized to ``budget_s`` (judged from the last warm-up call), within
    [min_calls, max_calls]. The garbage collector runs before the block and is paused during it."""
    for _ in range(max(warmup, 1)):
        checkpoint()
        start = time.perf_counter()
        fn()
        last = time.perf_counter() - start
    calls = int(min(max_calls, max(min_calls, budget_s / max(last, 1e-9))))
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        samples = []
        for _ in range(calls):
            checkpoint()
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(samples)


def ratios(results: dict, impl: str, ref: str, case: str, key: str) -> list[float]:
    """Per-round ratios ``results[impl][r][case][key] / results[ref][r][case][key]``."""
    return [a[case][key] / b[case][key] for a, b in zip(results[impl], results[ref])]


def median_of(results: dict, impl: str, case: str, key: str) -> float:
    """The median over the rounds of one timing."""
    return statistics.median(r[case][key] for r in results[impl])


def spread(values) -> str:
    """``"rounds 0.93-1.05"``: the range of per-round ratios, printed beside their median."""
    values = list(values)
    return f"rounds {min(values):.2f}-{max(values):.2f}" if len(values) > 1 else "1 round"

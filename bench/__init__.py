"""Benchmarks of the kit: ``python -m bench`` (or ``make bench``).

Each suite is a module of this package with ``run(quick=False) -> (rows, checks)``: ``rows`` are
:class:`Row` timings printed as one table, ``checks`` are :class:`Check` verdicts against the kit's
speed targets. ``bench/__main__.py`` lists the suites; add a module there to add a suite (e.g. the
training iterations of the models).

Timing rules, shared by every suite through :func:`time_interleaved`: ``time.perf_counter``, warm-up
calls first, then the candidates are called in turn, round after round, so that a burst of load on a
shared machine hits all of them alike; we report medians. Thread counts are pinned before NumPy or
PyTorch is imported (``THREADS``): the BLAS behind NumPy and PyTorch's intra-op pool use the same
number of threads, or a comparison means little.
"""

from __future__ import annotations

import os

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# Must happen before NumPy (OpenBLAS) or PyTorch (OpenMP, MKL) is imported to take effect.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import gc  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402

__all__ = ["THREADS", "Row", "Check", "time_interleaved", "setup_torch"]


@dataclass
class Row:
    """One timed implementation of one benchmark case (times in seconds, medians)."""

    case: str                          # what is computed, with shapes: "conv x(50,1,28,28) w(32,1,7,7)"
    impl: str                          # who computes it: "hwlib f64", "torch f32", "naive f64"
    fwd_s: float                       # forward pass
    fwdbwd_s: float                    # forward + backward
    ratio_fwd: float | None = None     # fwd_s / the same time of ``ratio_to``
    ratio_fwdbwd: float | None = None  # fwdbwd_s / the same time of ``ratio_to``
    ratio_to: str = ""                 # the row the ratios compare with, e.g. "torch f64"
    note: str = ""                     # how it was timed when not like the others


@dataclass
class Check:
    """A speed target and whether this run met it."""

    name: str
    value: float
    op: str                            # "<=" or ">="
    target: float
    detail: str = ""                   # context printed after the verdict (e.g. the best-case ratio)

    @property
    def passed(self) -> bool:
        return self.value <= self.target if self.op == "<=" else self.value >= self.target


def setup_torch():
    """Import PyTorch with the benchmark's thread count; return the module."""
    import torch

    torch.set_num_threads(THREADS)
    return torch


def time_interleaved(candidates: dict, repeats: int | None = None, warmup: int = 3,
                     budget_s: float = 5.0, min_repeats: int = 15, max_repeats: int = 400,
                     minima: dict | None = None) -> dict:
    """Median seconds per call of each zero-argument callable in ``candidates``.

    After ``warmup`` untimed calls each, the candidates run in turn, round after round, so that a
    burst of load on a shared machine hits all of them alike. Without ``repeats``, the number of
    rounds fits ``budget_s`` (judged from the warm-up), within [min_repeats, max_repeats]. The
    garbage collector is paused while timing and runs between rounds. If ``minima`` is a dict, it
    also receives the fastest call of each candidate: on a busy machine the ratio of minima is
    closer to what a quiet machine gives than the ratio of medians.
    """
    round_s = 0.0
    for fn in candidates.values():
        for k in range(warmup):
            start = time.perf_counter()
            fn()
            if k == warmup - 1:
                round_s += time.perf_counter() - start
    if repeats is None:
        repeats = int(min(max_repeats, max(min_repeats, budget_s / max(round_s, 1e-9))))
    samples = {name: [] for name in candidates}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for name, fn in candidates.items():
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
            gc.collect()
    finally:
        if gc_was_enabled:
            gc.enable()
    if minima is not None:
        minima.update({name: float(np.min(ts)) for name, ts in samples.items()})
    return {name: float(np.median(ts)) for name, ts in samples.items()}

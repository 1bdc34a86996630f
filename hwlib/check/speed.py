"""What Q3's graded run will cost with your layers: a note of the public checks, never a deduction.

A correct but loop-heavy ``conv_forward``/``conv_backward`` passes every check, and then Q3's graded
training (10 epochs of 55,000 images, batch 100: 5,500 steps of forward and backward through the
ConvNet, plus the Solver's accuracy checks) takes hours. So the public checks of ``conv``, ``pool`` and
``ConvNet.loss``, once they pass, time your functions on the graded run's shapes (float32, batch 100:
conv x(100, 1, 28, 28) w(32, 1, 7, 7); max-pool 2x2 stride 2 on (100, 32, 22, 22); a ConvNet training
step) and print what the run would take, next to what the reference solution takes on your machine.

How, in about a second per check (a few seconds at most), even for a slow loop implementation:

* your functions are timed warm on batches of 1, 2, 4, ... while the next size fits in the time budget
  (up to 100, where fast code gets), and the time of a batch of 100 is the line through the last two
  sizes (a cost per call stays fixed, a cost per sample grows): :func:`per_batch`;
* the reference's times per batch of 100 are stored figures (:data:`REFERENCE`, measured on the kit's
  machine by :func:`measure_reference`, the same timing run on the reference solution; students never
  get the reference's code), scaled by a machine-speed probe (a fixed float32 matrix product and strided
  copies, :func:`probe`) against the probe's time on that machine (:data:`PROBE_S`);
* Q3's run is ``STEPS`` training steps (forward and backward, and the Solver's update) and
  ``CHECK_BATCHES`` forward passes of the accuracy checks (11 checks of 1,000 training and 5,000
  validation images); for one layer, the rest of the network is taken at the reference's speed (your
  layer's time replaces the reference layer's).

Only the public checks print it (``hwlib.check.check(name)`` with ``verbose``): the grader's sandboxed
hidden checks have time budgets of their own and never time anything here.
"""

from __future__ import annotations

import importlib
import os
import time

import numpy as np

__all__ = ["STEPS", "CHECK_BATCHES", "REFERENCE", "PROBE_S", "CLOCK", "NOTED", "probe", "per_batch", "measure",
           "reference_run", "projection", "solver_step",
           "duration", "busy", "note", "measure_reference"]

BATCH = 100
STEPS = 5_500                  # 10 epochs x 55,000 / 100
CHECK_BATCHES = 11 * 60        # accuracy checks after the first step and every epoch: (1,000 + 5,000) / 100 each
SLOW = 3.0                     # a note advises vectorizing when yours takes this many times the reference's

# The reference solution's seconds per batch of 100 (float32), and the Solver's own work per training step
# (sampling the batch, the SGD updates: "solver"), measured by measure_reference() on the kit's machine
# (x86_64, NumPy 2.4 with OpenBLAS), with the probe's time there (PROBE_S). That machine being shared
# by other jobs, they were taken in CPU time on one thread (time.process_time, OPENBLAS_NUM_THREADS=1),
# to which other processes add nothing: the median over 9 runs of each figure's ratio to its run's
# probe, times the quickest probe. The probe being half BLAS and half copies, like a ConvNet step, the
# ratios hold for any number of threads: a note scales them by the probe of the machine it runs on.
REFERENCE = {
    "conv": {"forward": 0.0035, "backward": 0.0086},
    "pool": {"forward": 0.0026, "backward": 0.0018},
    "ConvNet": {"forward": 0.0077, "step": 0.0154},
    "solver": 0.0002,
}
PROBE_S = 0.00545
CLOCK = time.perf_counter      # what the notes time with (measure_reference may take CPU time instead)

# What each noted check times: (label, the reference's figures, advice when slow).
NOTED = {
    "conv": ("your conv forward+backward", "conv",
             "Vectorize the loops over the batch and the output positions: one matrix product over all windows "
             "(im2col; numpy's sliding_window_view gives the windows without copying) instead of one small "
             "product per window"),
    "pool": ("your max-pool forward+backward", "pool",
             "Vectorize the loops over the batch, the channels and the output positions: compare whole strided "
             "views of the input (one per window offset) instead of one window at a time"),
    "ConvNet.loss": ("a training step of your ConvNet", "ConvNet",
                     "Time your layers with check('conv') and check('pool') to see which one to vectorize"),
}


# --- timing ------------------------------------------------------------------------------------------

def _clock(call) -> float:
    start = CLOCK()
    call()
    return CLOCK() - start


_PROBE: dict = {}


def probe(repeats: int = 5) -> float:
    """This machine's time for a fixed piece of NumPy work like a ConvNet step's: about half a float32
    matrix product (BLAS, on as many threads as the user's NumPy takes) and half strided copies (im2col,
    pooling windows); the minimum of ``repeats``."""
    if not _PROBE:
        rng = np.random.default_rng(0)
        _PROBE.update(a=rng.standard_normal((160, 784), dtype=np.float32),
                      b=rng.standard_normal((784, 1000), dtype=np.float32),
                      x=rng.standard_normal((32, 22, 22, 100), dtype=np.float32),
                      out=np.empty((100, 32, 22, 22), dtype=np.float32))
    a, b, x, out = (_PROBE[k] for k in ("a", "b", "x", "out"))

    def work():
        a @ b
        np.copyto(out, x.transpose(3, 0, 1, 2))
        np.copyto(out[:, :, ::2, ::2], x[:, 1::2, 1::2].transpose(3, 0, 1, 2))
    work()
    return min(_clock(work) for _ in range(repeats))


def per_batch(make, budget_s: float = 2.0) -> float:
    """Seconds per call on a batch of 100, from ``make(n)`` -> a zero-argument call on a batch of n.

    The batch doubles from 1 (1, 2, 4, ... then 100) while the next size fits in the budget; each size
    is timed warm, the minimum of three calls (one when a call takes over 0.1 s: a busy machine only
    ever adds time). The figure is the time at 100 when it got there, else the line through the first
    and the last size, at 100 (a cost per call stays fixed, a cost per sample grows), at most the least
    of the sizes' times scaled to 100 in proportion, at least what the largest took. A first call slower
    than half the budget is extrapolated from the batch of 1 alone (proportionally).
    """
    start = time.perf_counter()
    call = make(1)
    first = _clock(call)
    if first > budget_s / 2:
        return first * BATCH
    points, n = [], 1                                   # (n, seconds)
    while True:
        times = [first] if n == 1 else [_clock(call)]   # the first call at a new size warms it
        # Three more calls when they are cheap, one when not (a stall of the machine hits one call, rarely all).
        while len(times) < (4 if min(times) < 0.1 else 2) and time.perf_counter() - start + min(times) < budget_s:
            times.append(_clock(call))
        took = min(times[1:] or times)
        points.append((n, took))
        if n == BATCH or time.perf_counter() - start + 4 * took > budget_s:
            break
        n = min(BATCH, 2 * n)
        call = make(n)
    n, tn = points[-1]
    if n == BATCH:
        return tn
    # Each size bounds the time at 100 from above (t * 100 / n: no cost grows faster than the batch);
    # the line through the first and the last size (the widest span: the least noise per sample) is
    # the estimate when it is below them (a fixed cost per call), and what the largest took a floor.
    bound = min(t * BATCH / size for size, t in points)
    m, tm = points[0]
    line = tn + max(0.0, (tn - tm) / (n - m)) * (BATCH - n) if n > m else bound
    return max(tn, min(line, bound))


def _layer_calls(kind: str):
    """``make(n)`` for ``kind``: one forward and one backward pass of the importable hwlib.layers (the
    student's), on float32 inputs of the graded run's shapes; the pass's two times are recorded."""
    layers = importlib.import_module("hwlib.layers")
    rng = np.random.default_rng(0)
    times = {"forward": [], "backward": []}
    if kind == "conv":
        w = (1e-3 * rng.standard_normal((32, 1, 7, 7))).astype(np.float32)
        forward, backward = layers.conv_forward, layers.conv_backward
        shape, out_shape, args = (1, 28, 28), (32, 22, 22), (w,)
    else:
        forward, backward = layers.max_pool_forward, layers.max_pool_backward
        shape, out_shape = (32, 22, 22), (32, 11, 11)
        args = ({"pool_height": 2, "pool_width": 2, "stride": 2},)

    def make(n):
        x = rng.standard_normal((n, *shape)).astype(np.float32)
        dout = rng.standard_normal((n, *out_shape)).astype(np.float32)

        def call():
            start = CLOCK()
            _, cache = forward(x, *(dict(a) if isinstance(a, dict) else a for a in args))
            middle = CLOCK()
            backward(dout, cache)
            times["forward"].append((n, middle - start))
            times["backward"].append((n, CLOCK() - middle))
        return call
    return make, times


def _model_calls():
    """``make(n)`` for a ConvNet training step (``loss(X, y)``) of the importable model (the student's:
    Q3's network, float32), and the forward passes' times (``loss(X)``, the accuracy checks) on the side."""
    classifiers = importlib.import_module("hwlib.classifiers")
    net = classifiers.ConvNet(num_filters=32, filter_size=7, hidden_dim=100, weight_scale=1e-3,
                              rng=np.random.default_rng(0))
    rng = np.random.default_rng(0)
    times = {"forward": [], "step": []}

    def make(n):
        X = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
        y = rng.integers(0, 10, size=n)

        def call():
            start = CLOCK()
            net.loss(X)
            middle = CLOCK()
            net.loss(X, y)
            times["forward"].append((n, middle - start))
            times["step"].append((n, CLOCK() - middle))
        return call
    return make, times


def _split(times: dict, total: float) -> dict:
    """The per-batch figure of each part, in proportion to the parts' shares of the last timed calls."""
    n = max(size for size, _ in next(iter(times.values())))
    shares = {part: min(t for size, t in values if size == n) for part, values in times.items()}
    whole = sum(shares.values()) or 1.0
    return {part: total * share / whole for part, share in shares.items()}


def measure(name: str, budget_s: float = 2.0) -> dict:
    """Your figures for check ``name`` ("conv", "pool" or "ConvNet.loss"): seconds per batch of 100 of
    each part (forward, backward or step)."""
    make, times = _model_calls() if name == "ConvNet.loss" else _layer_calls(name)
    return _split(times, per_batch(make, budget_s))


# --- the projection ----------------------------------------------------------------------------------

def reference_run(scale: float = 1.0) -> float:
    """Q3's run in seconds with the reference: every training step (the network's and the Solver's work)
    and every forward pass of the accuracy checks, on a machine ``scale`` times slower than the kit's."""
    ref = REFERENCE["ConvNet"]
    return scale * ((ref["step"] + REFERENCE["solver"]) * STEPS + ref["forward"] * CHECK_BATCHES)


def projection(kind: str, parts: dict, scale: float) -> float:
    """Q3's run in seconds with ``parts`` (seconds per batch of 100) in place of the reference's ``kind``,
    everything else at the reference's speed times ``scale`` (this machine against the kit's)."""
    ref = {k: v * scale for k, v in REFERENCE[kind].items()}
    run = reference_run(scale)
    if kind == "ConvNet":
        return run + (parts["step"] - ref["step"]) * STEPS + (parts["forward"] - ref["forward"]) * CHECK_BATCHES
    return (run + (parts["forward"] - ref["forward"]) * (STEPS + CHECK_BATCHES)
            + (parts["backward"] - ref["backward"]) * STEPS)


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``5.2 h``, ``3.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _per_batch_text(seconds: float) -> str:
    return f"{seconds:.2g} s" if seconds >= 1 else f"{seconds * 1000:.2g} ms"


def busy() -> bool:
    """More processes waiting to run than the machine has cores (the 1-minute load average): timings
    then say more about the machine than about the code."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except (AttributeError, OSError):       # no load average (Windows)
        return False


def note(name: str, budget_s: float = 2.0) -> str:
    """The sentence for check ``name`` (a key of :data:`NOTED`), or "" when it cannot be timed (your
    code raised on the graded run's shapes: the check itself says what is wrong with it)."""
    if name not in NOTED:
        return ""
    what, kind, advice = NOTED[name]
    try:
        time.sleep(0.05)                 # let the thread pools of the check's PyTorch references go idle
        parts = measure(name, budget_s)
        scale = probe() / PROBE_S
    except Exception:  # noqa: BLE001 - a note never fails a check that passed
        return ""
    timed = ("step",) if kind == "ConvNet" else ("forward", "backward")   # what "per batch" counts
    mine = sum(parts[k] for k in timed)
    ref = sum(REFERENCE[kind][k] for k in timed) * scale
    run, ref_run = projection(kind, parts, scale), reference_run(scale)
    text = (f"speed: {what} takes {_per_batch_text(mine)} per batch of 100 (float32, Q3's shapes): Q3's graded "
            f"run (10 epochs, {STEPS:,} steps) would take about {duration(run)}")
    if kind != "ConvNet":
        text += " with the rest of the network as fast as the reference"
    text += f"; the reference takes {_per_batch_text(ref)} ({duration(ref_run)} for the run) on this machine."
    if mine > SLOW * ref:
        text += f" {advice}."
    if busy():
        text += " (This machine is busy right now: these times are rough.)"
    return text


def solver_step(steps: int = 200) -> float:
    """The Solver's own work per training step (sampling the batch, the SGD updates of the ConvNet's
    parameters), with a model whose loss costs nothing: seconds per step, by :data:`CLOCK`."""
    from ..solver import Solver

    rng = np.random.default_rng(0)
    shapes = {"W1": (32, 1, 7, 7), "W2": (3872, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}

    class Free:
        params = {k: rng.standard_normal(v).astype(np.float32) for k, v in shapes.items()}
        grads = {k: np.ones(v, np.float32) for k, v in shapes.items()}

        def loss(self, X, y=None):
            return np.zeros((len(X), 10), np.float32) if y is None else (1.0, self.grads)

    data = {"X_train": rng.standard_normal((steps * BATCH, 1, 28, 28)).astype(np.float32),
            "y_train": rng.integers(0, 10, steps * BATCH),
            "X_val": np.zeros((BATCH, 1, 28, 28), np.float32), "y_val": np.zeros(BATCH, np.int64)}
    solver = Solver(Free(), data, update_rule="sgd", optim_config={"learning_rate": 1e-3}, batch_size=BATCH,
                    num_epochs=1, verbose=False, show_progress=False, seed=0)
    start = CLOCK()
    solver.train()
    return (CLOCK() - start) / steps


def measure_reference(runs: int = 7, clock=None) -> dict:
    """The figures of :data:`REFERENCE` for the importable hwlib (the kit's reference solution, when run
    in the kit), by the timing the notes use, with ``clock`` (time.process_time on a busy machine, in a
    process with one BLAS thread). Each run times the probe, the figures and the probe again; a figure
    is the median over the runs of its ratio to its run's probe ("ratios"), stored in seconds at the
    quickest probe seen ("probe", stored as :data:`PROBE_S`). In the kit::

        OPENBLAS_NUM_THREADS=1 python -c "import time; from hwlib.check import speed;
            print(speed.measure_reference(9, time.process_time))"
    """
    global CLOCK
    saved, CLOCK = CLOCK, clock or CLOCK
    ratios, probes = {"conv": [], "pool": [], "ConvNet": [], "solver": []}, []
    try:
        for _ in range(runs):
            before = probe()
            figures = {"conv": measure("conv"), "pool": measure("pool"), "ConvNet": measure("ConvNet.loss"),
                       "solver": {"step": solver_step()}}
            now = (before + probe()) / 2
            probes.append(now)
            for kind, parts in figures.items():
                ratios[kind].append({part: seconds / now for part, seconds in parts.items()})
        fastest = min(probe(repeats=20) for _ in range(5))
    finally:
        CLOCK = saved
    ratio = {kind: {part: float(np.median([r[part] for r in runs_])) for part in runs_[0]}
             for kind, runs_ in ratios.items()}
    return {"ratios": ratio, "probe": fastest, "probes": probes,
            "seconds": {kind: {part: v * fastest for part, v in parts.items()} for kind, parts in ratio.items()}}

"""What a wrong output is, when it is a known mistake: the sentence a failed comparison ends with.

After a value (or shape) mismatch, :func:`explain` compares the student's output with a family of
transformed references, in a fixed order, and names the first that matches within the comparison's
own tolerance (its threshold and floor), e.g. "Your db is the expected one divided by N = 5: did you
average over the batch instead of summing?". The family:

* a constant factor (-1, N, 1/N, T, 1/T, N*T, 2, 1/2, and zero everywhere), N the batch size and T the
  number of time steps of the case's inputs;
* the expected array with its axes permuted (a transpose), or its values in another order (a C/Fortran
  reshape mix-up); for a wrong shape: a transpose, an extra axis to sum over, or a reshape;
* one sample or one time step only (the rest zero, or every sample equal to sample 0's), shifted by one
  time step;
* the kernel flipped (true convolution instead of cross-correlation) of a kernel gradient;
* per layer, from the inputs (the judge has them): the ReLU or its mask missing or inverted,
  max-pooling's gradient spread over the whole window, average instead of max pooling, the softmax
  gradient without its -1 at the label, exp overflowing without the max shift;
* what the reference gives on changed inputs: the upstream gradient of one sample or one time step
  only (a gradient not summed, or overwritten in a loop), the kernel flipped (true convolution instead
  of cross-correlation), every position counted (the <NULL> mask ignored), a Fortran-ordered input read
  as C-ordered, the bias, the previous or the initial hidden state left out.

No diagnosis may be wrong: a candidate is used only when the student's output matches it and it is
itself clearly different from the reference (the comparison would fail it too); anything else gets
no sentence, and the message stays the plain comparison. The diagnosis runs where the verdict is
computed (the public checks, the grader's trusted side); it only reads arrays and calls the target's
reference, never the student's code.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from ..gradient_check import relative_errors

__all__ = ["Mismatch", "explain", "matches", "AXES", "sizes"]

MAX_CANDIDATES = 400            # candidates tried at most for one output (each a small comparison)

# The batch axis and the time axis of the outputs that have them, per target (parameter gradients
# have neither). The upstream gradient ``dout`` has the axes of ``out``.
AXES = {
    "fc": {"out": (0, None), "dx": (0, None)},
    "relu": {"out": (0, None), "dx": (0, None)},
    "conv": {"out": (0, None), "dx": (0, None)},
    "pool": {"out": (0, None), "dx": (0, None)},
    "softmax": {"dx": (0, None)},
    "rnn_step": {"out": (0, None), "dx": (0, None), "dprev_h": (0, None)},
    "rnn": {"out": (1, 0), "dx": (1, 0), "dh0": (0, None)},
    "word_embedding": {"out": (0, 1)},
    "temporal_fc": {"out": (0, 1), "dx": (0, 1)},
    "temporal_softmax": {"dx": (0, 1)},
    "SoftmaxClassifier.loss": {"scores": (0, None)},
    "ConvNet.loss": {"scores": (0, None)},
}


def sizes(name: str, inputs: dict) -> tuple:
    """``(N, T)`` of a case: the batch size and the number of time steps (None where there is none)."""
    def dim(key, axis):
        value = inputs.get(key)
        return int(np.shape(value)[axis]) if isinstance(value, np.ndarray) and np.ndim(value) > axis else None

    if name == "rnn":
        return dim("x", 1), dim("x", 0)
    if name in ("word_embedding", "temporal_fc", "temporal_softmax"):
        return dim("x", 0), dim("x", 1)
    if name == "CaptioningRNN.loss":
        T = dim("captions", 1)
        return dim("features", 0), (T - 1 if T else None)
    if name in ("SoftmaxClassifier.loss", "ConvNet.loss"):
        return dim("X", 0), None
    if name in AXES:
        return dim("x", 0), None
    return None, None


# --- matching ------------------------------------------------------------------------------------

def matches(actual, candidate, threshold: float, floor_scale: float, scale: float = 0.0) -> bool:
    """``actual`` equals ``candidate`` within the comparison's tolerance: the relative error of every entry
    at most ``threshold``, entries below ``floor_scale`` times the largest |candidate| (or ``scale``, for
    a candidate that is zero) judged against that floor. Shapes must agree; NaN or inf never match."""
    a, c = np.asarray(actual), np.asarray(candidate)
    if a.shape != c.shape or not (np.issubdtype(a.dtype, np.number) and np.issubdtype(c.dtype, np.number)):
        return False
    a, c = a.astype(np.float64), c.astype(np.float64)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(c))):
        return False
    if a.size == 0:
        return True
    top = float(np.max(np.abs(c))) or scale
    floor = max(1e-8, floor_scale * top)
    return float(np.max(relative_errors(a, c, floor))) <= threshold


def _label(key: str) -> str:
    """``grads/W1`` -> ``grads['W1']``; other output names as they are."""
    head, sep, tail = key.partition("/")
    return f"{head}[{tail!r}]" if sep and head in ("grads", "params") else key


# --- candidates --------------------------------------------------------------------------------------
# Each generator yields (sentence, candidate array) pairs, cheapest and most specific first; the
# sentence starts with "your <output>".

def _factors(you: str, e: np.ndarray, N, T, name: str, inputs: dict):
    """The expected array times a constant: -1, N, 1/N, T, 1/T, N*T, 1/(N*T), 2, 1/2 (and, for the
    temporal softmax loss, N over the number of counted words); one sentence per distinct value."""
    named: dict[float, list] = {}

    def add(value, text):
        if value and np.isfinite(value) and value != 1:
            named.setdefault(float(value), []).append(text)

    add(-1.0, "-1")
    if N and N > 1:
        add(float(N), "N")
        add(1.0 / N, "1/N")
    if T and T > 1:
        add(float(T), "T")
        add(1.0 / T, "1/T")
        if N and N > 1:
            add(float(N * T), "N*T")
            add(1.0 / (N * T), "1/(N*T)")
    add(2.0, "2")
    add(0.5, "1/2")
    if name == "temporal_softmax" and isinstance(inputs.get("mask"), np.ndarray) and N:
        counted = int(np.count_nonzero(inputs["mask"]))
        if counted and counted != N:
            add(N / counted, "N/counted")
    hints = {
        "N": f"times N = {N} (did you sum over the batch where the mean belongs, or leave out a division by N?)",
        "1/N": f"divided by N = {N} (did you average over the batch instead of summing, or divide by N twice?)",
        "T": f"times T = {T}, the number of time steps (is something added up once per time step too many?)",
        "1/T": f"divided by T = {T}, the number of time steps (did you average over time instead of summing?)",
        "N*T": f"times N*T = {(N or 0) * (T or 0)} (a mean over batch and time where a sum belongs, or the reverse?)",
        "1/(N*T)": f"divided by N*T = {(N or 0) * (T or 0)} (did you average over batch and time steps where the "
                   "loss is summed over time and averaged over N?)",
        "N/counted": "divided by the number of counted (unmasked) words instead of by N (the loss is summed "
                     "over time and averaged over N)",
        "-1": "with its sign flipped (times -1)",
        "2": "twice the expected one (counted twice?)",
        "1/2": "half the expected one",
    }
    for value, names in named.items():
        if len(names) == 1:
            text = hints[names[0]]
        else:           # one value, several readings (N = 2, or N = T): say the number, guess no cause
            symbols = dict.fromkeys(n.replace("1/", "").strip("()") for n in names if n not in ("2", "1/2", "-1"))
            size = value if value > 1 else 1 / value
            text = (f"times {size:g}" if value > 1 else f"divided by {size:g}") + \
                f" (here {' = '.join(symbols)} = {size:g})"
        sentence = f"{you} is {text}" if names[0] in ("2", "1/2") and len(names) == 1 else \
            f"{you} is the expected one {text}"
        yield sentence, e * value


def _orders(you: str, e: np.ndarray):
    """Axis permutations and C/Fortran reshape mix-ups with the shape kept. In 2-D a mix-up is a
    transpose, and it is named so; in more dimensions a mix-up can also be a permutation of the axes
    (reversed), and the mix-up, the likelier mistake, is named first."""
    permutations = []
    if e.ndim >= 2:
        for perm in itertools.permutations(range(e.ndim)):
            if perm != tuple(range(e.ndim)) and e.transpose(perm).shape == e.shape:
                if e.ndim == 2:
                    permutations.append((f"{you} is the transpose of the expected one", e.T))
                else:
                    permutations.append((f"{you} is the expected one with its axes permuted: "
                                         f"expected.transpose{perm}", e.transpose(perm)))
    mixups = []
    if e.ndim >= 2 and e.size > 1:
        shape = e.shape
        ways = [("read in C order and written back in Fortran order", e.reshape(-1).reshape(shape, order="F")),
                ("read in Fortran order and written back in C order", e.reshape(-1, order="F").reshape(shape))]
        for k in range(1, e.ndim - 1) if e.ndim > 2 else ():
            flat = e.reshape(int(np.prod(shape[:k])), -1)
            ways.append((f"flattened to {flat.shape} and reshaped back with order='F'", flat.reshape(shape, order="F")))
            ways.append((f"flattened to {flat.shape}, transposed, and reshaped back", flat.T.reshape(shape)))
        mixups = [(f"{you} holds the expected values in another order: the expected one {how} (a C/Fortran "
                   "reshape mix-up: flatten and reshape with the same order)", candidate) for how, candidate in ways]
    yield from (permutations + mixups) if e.ndim == 2 else (mixups + permutations)


def _samples(you: str, e: np.ndarray, axes):
    """One sample (the first or the last) or one time step right and the rest zero; every sample equal
    to sample 0."""
    batch, time = axes
    if batch is not None and e.ndim > batch and e.shape[batch] > 1:
        n = e.shape[batch]
        for k in (0, n - 1):
            keep = np.zeros_like(e)
            index = [slice(None)] * e.ndim
            index[batch] = k
            keep[tuple(index)] = e[tuple(index)]
            yield f"{you} equals the expected one for sample {k} only ({'the first' if k == 0 else 'the last'}); " \
                  "the other samples are zero", keep
        first = np.take(e, [0], axis=batch)
        yield f"{you} gives every sample the expected values of sample 0", np.broadcast_to(first, e.shape)
    if time is not None and e.ndim > time and e.shape[time] > 1:
        steps = e.shape[time]
        for t in (0, steps - 1):
            keep = np.zeros_like(e)
            index = [slice(None)] * e.ndim
            index[time] = t
            keep[tuple(index)] = e[tuple(index)]
            yield f"{you} equals the expected one at time step {t} only ({'the first' if t == 0 else 'the last'}); " \
                  "the other time steps are zero", keep


def _shifted(you: str, actual: np.ndarray, e: np.ndarray, axes, threshold, floor_scale, scale):
    """Off by one time step: every step but the one at the edge equals its neighbour's expected value."""
    time = axes[1]
    if time is None or e.ndim <= time or e.shape[time] < 3 or actual.shape != e.shape:
        return None
    steps = e.shape[time]
    early, late = np.take(e, range(0, steps - 1), axis=time), np.take(e, range(1, steps), axis=time)
    yours_late = np.take(actual, range(1, steps), axis=time)
    yours_early = np.take(actual, range(0, steps - 1), axis=time)
    if matches(early, late, threshold, floor_scale, scale):          # a sequence constant in time: no shift shows
        return None
    if matches(yours_late, early, threshold, floor_scale, scale):
        return f"{you} is off by one time step: your step t holds the expected step t-1"
    if matches(yours_early, late, threshold, floor_scale, scale):
        return f"{you} is off by one time step: your step t holds the expected step t+1"
    return None


# --- candidates from the reference on changed inputs -----------------------------------------------

def _masked(inputs: dict, key: str, axis_values: dict) -> dict:
    """``inputs`` with ``inputs[key]`` zero except where every ``axis: index`` of ``axis_values`` holds."""
    value = inputs[key]
    keep = np.zeros_like(value)
    index = [slice(None)] * value.ndim
    for axis, where in axis_values.items():
        index[axis] = where
    keep[tuple(index)] = value[tuple(index)]
    return {**inputs, key: keep}


def _changed_inputs(name: str, you: str, key: str, inputs: dict, N, T):
    """``(sentence, changed inputs)``: what the reference gives then is the candidate for ``key``."""
    out_axes = AXES.get(name, {}).get("out")
    dout = inputs.get("dout")
    param = key not in AXES.get(name, {})            # a parameter's gradient: no batch axis of its own
    if isinstance(dout, np.ndarray) and out_axes and key != "out":
        batch, time = out_axes
        if param and N and N > 1:
            for k, which in ((0, "the first"), (N - 1, "the last")):
                why = ("is it summed over the batch?" if k == 0 else
                       "is it overwritten in a loop over the samples instead of accumulated: = where += belongs?")
                yield (f"{you} is what sample {k} alone ({which}) gives: the other samples' contributions are "
                       f"missing ({why})"), _masked(inputs, "dout", {batch: k})
        if param and time is not None and T and T > 1:
            for t, which in ((0, "the first"), (T - 1, "the last")):
                yield (f"{you} is what time step {t} alone ({which}) gives: the other time steps' contributions "
                       "are missing (sum over the time steps too)"), _masked(inputs, "dout", {time: t})
        if name == "conv" and key == "dw" and dout.ndim == 4 and dout.shape[2] * dout.shape[3] > 1:
            n, _, Ho, Wo = dout.shape
            yield (f"{you} holds only the contribution of the last output position (sample {n - 1}, row {Ho - 1}, "
                   f"column {Wo - 1}): it is overwritten in the loop instead of accumulated (= where += belongs)"), \
                _masked(inputs, "dout", {0: n - 1, 2: Ho - 1, 3: Wo - 1})
    if name == "conv" and key in ("out", "dx") and isinstance(inputs.get("w"), np.ndarray):
        flipped = {**inputs, "w": np.ascontiguousarray(inputs["w"][:, :, ::-1, ::-1])}
        if key == "out":
            yield (f"{you} is the true convolution (kernel flipped) where the expected one is the "
                   "cross-correlation: Y[n, f] = sum_c X[n, c] *filt K[f, c] uses the kernel as stored"), flipped
        else:
            yield (f"{you} is the gradient for the flipped kernel (true convolution instead of "
                   "cross-correlation)"), flipped
    if name == "temporal_softmax" and isinstance(inputs.get("mask"), np.ndarray) and not np.all(inputs["mask"]):
        yield (f"{you} counts the masked (<NULL>) positions too: it is the expected one with every position "
               "counted (multiply by the mask)"), {**inputs, "mask": np.ones_like(inputs["mask"])}
    if inputs.get("_layout") == "fortran":
        # Fortran-ordered inputs read as if C-ordered (strides computed from the shape, a raw buffer read):
        # the values the code then sees are the memory's, in C order.
        arrays = [k for k, v in inputs.items() if isinstance(v, np.ndarray) and v.ndim > 1 and not k.startswith("_")]
        for arg in arrays:
            reread = {**inputs, arg: np.asarray(inputs[arg]).ravel(order="F").reshape(inputs[arg].shape)}
            yield (f"{you} is what the expected one would be if the memory of {arg} (Fortran-ordered here) were "
                   f"C-ordered: your code assumes a C-contiguous {arg} (strides computed from the shape?); use "
                   f"its own strides, or np.ascontiguousarray({arg}) first"), reread
    zeroed = {"fc": ("b",), "temporal_fc": ("b",), "rnn_step": ("prev_h", "b"), "rnn": ("h0", "b")}.get(name, ())
    for arg in zeroed:
        if key != "out" or not isinstance(inputs.get(arg), np.ndarray):
            continue
        what = {"b": "the bias b left out (is b added?)", "prev_h": "prev_h left out (is the previous hidden "
                "state used?)", "h0": "h0 left out (does the first step start from h0?)"}[arg]
        yield f"{you} is the expected one with {what}", {**inputs, arg: np.zeros_like(inputs[arg])}


def _layer_specific(name: str, you: str, key: str, e: np.ndarray, inputs: dict, N):
    x = inputs.get("x")
    if name == "relu" and isinstance(x, np.ndarray):
        if key == "out":
            yield f"{you} is x unchanged: the ReLU's max(x, 0) is missing", x
            yield (f"{you} keeps the negative entries of x and zeroes the positive ones: the ReLU is inverted "
                   "(x > 0 is the mask)"), np.where(x < 0, x, 0).astype(x.dtype)
        elif key == "dx" and isinstance(inputs.get("dout"), np.ndarray):
            dout = inputs["dout"]
            yield f"{you} is dout unchanged: the ReLU mask (x > 0) is missing", dout
            yield (f"{you} passes dout where x < 0 and blocks it where x > 0: the ReLU mask is inverted"), \
                np.where(x < 0, dout, 0).astype(dout.dtype)
    if name == "pool" and isinstance(x, np.ndarray) and isinstance(inputs.get("pool_param"), dict):
        p = inputs["pool_param"]
        HH, WW, S = p.get("pool_height"), p.get("pool_width"), p.get("stride")
        if all(isinstance(v, (int, np.integer)) and v > 0 for v in (HH, WW, S)) and HH * WW > 1:
            Ho, Wo = (x.shape[2] - HH) // S + 1, (x.shape[3] - WW) // S + 1
            if key == "out":
                mean = np.zeros(x.shape[:2] + (Ho, Wo))
                for i in range(HH):
                    for j in range(WW):
                        mean += x[:, :, i:i + S * (Ho - 1) + 1:S, j:j + S * (Wo - 1) + 1:S]
                yield f"{you} is the mean of each window (average pooling), not its maximum", mean / (HH * WW)
            elif key == "dx" and np.shape(inputs.get("dout")) == x.shape[:2] + (Ho, Wo):
                spread = np.zeros(x.shape)
                for i in range(HH):
                    for j in range(WW):
                        spread[:, :, i:i + S * (Ho - 1) + 1:S, j:j + S * (Wo - 1) + 1:S] += inputs["dout"]
                yield (f"{you} sends each window's gradient to every entry of the window, not to its maximum "
                       "alone (the max mask is missing)"), spread
                yield (f"{you} spreads each window's gradient evenly over the window (the gradient of average "
                       "pooling), not to its maximum alone"), spread / (HH * WW)
    if name in ("softmax", "temporal_softmax") and key == "dx" and isinstance(inputs.get("y"), np.ndarray) and N:
        y = inputs["y"]
        onehot = np.zeros(e.shape)
        np.put_along_axis(onehot, y[..., None].astype(np.int64), 1.0, axis=-1)
        if name == "temporal_softmax" and isinstance(inputs.get("mask"), np.ndarray):
            onehot *= inputs["mask"][..., None]
        yield (f"{you} lacks the -1 at each sample's label: the gradient of the loss is (softmax - one-hot(y)) / N"), \
            e + onehot / N


def _overflow(name: str, you: str, actual, inputs: dict) -> str | None:
    """NaN or inf from scores large enough that exp overflows, where the expected output is finite."""
    x = inputs.get("x")
    if name not in ("softmax", "temporal_softmax") or not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        return None
    a = np.asarray(actual)
    if not np.issubdtype(a.dtype, np.number) or np.all(np.isfinite(a)):
        return None
    largest = float(np.max(np.abs(x.astype(np.float64)))) if x.size else 0.0
    if largest < np.log(np.finfo(x.dtype).max):
        return None
    return (f"{you} holds NaN or inf where the expected one is finite: np.exp overflows for scores this large "
            f"(largest |x| = {largest:.3g}); subtract each row's maximum before exponentiating")


# --- shapes ------------------------------------------------------------------------------------------

def _shape(you: str, a: np.ndarray, e: np.ndarray, threshold, floor_scale, scale, N) -> str | None:
    """A wrong shape that is a known mistake: a transpose, an axis left to sum over, a reshape."""
    if not np.issubdtype(a.dtype, np.number):
        return None
    if a.ndim == e.ndim and sorted(a.shape) == sorted(e.shape):
        for perm in itertools.permutations(range(e.ndim)):
            if e.transpose(perm).shape == a.shape and matches(a, e.transpose(perm), threshold, floor_scale, scale):
                what = "the transpose of the expected one" if e.ndim == 2 else f"expected.transpose{perm}"
                return f"{you} of shape {a.shape} is {what} (expected shape {e.shape})"
    if a.ndim == e.ndim + 1:
        for axis in range(a.ndim):
            if a.shape[:axis] + a.shape[axis + 1:] == e.shape:
                which = f"axis {axis}" + (" (one entry per sample)" if axis == 0 and N and a.shape[0] == N else "")
                if matches(a.sum(axis=axis), e, threshold, floor_scale, scale):
                    return f"{you} has an extra {which}: summed over it, it is the expected one (sum over the batch)"
                if matches(a.mean(axis=axis), e, threshold, floor_scale, scale):
                    return f"{you} has an extra {which}: averaged over it, it is the expected one"
    if a.size == e.size and a.size > 1:
        for order, how in (("C", ""), ("F", ", order='F'")):
            if matches(a.reshape(e.shape, order=order), e, threshold, floor_scale, scale):
                return f"{you} holds the expected values in shape {a.shape}: reshape it to {e.shape}{how}"
    return None


# --- the diagnosis -----------------------------------------------------------------------------------

def explain(name: str, key: str, actual, expected, inputs: dict | None = None, *, threshold: float,
            floor_scale: float, reference: Callable[[dict], dict] | None = None, N=None, T=None) -> str:
    """The sentence naming what ``actual`` (the output ``key`` of target ``name``) is, or "".

    ``inputs`` and ``reference`` (the target's, inputs -> expected outputs) let it test candidates
    computed from changed inputs; ``N`` and ``T`` default to the case's sizes (:func:`sizes`).
    """
    inputs = inputs or {}
    if actual is None:
        return ""
    try:
        a, e = np.asarray(actual), np.asarray(expected)
    except Exception:  # noqa: BLE001 - whatever the output is, a diagnosis never fails the judge
        return ""
    if a.dtype == object or e.dtype == object or not np.issubdtype(e.dtype, np.number):
        return ""
    if N is None and T is None:
        N, T = sizes(name, inputs)
    you = f"your {_label(key)}"
    scale = float(np.max(np.abs(e))) if e.size and np.all(np.isfinite(e)) else 0.0
    if a.shape != e.shape:
        return _capital(_shape(you, a, e, threshold, floor_scale, scale, N))
    if not np.issubdtype(a.dtype, np.number):
        return ""
    overflow = _overflow(name, you, a, inputs)
    if overflow:
        return _capital(overflow)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(e))):
        return ""

    def fits(candidate) -> bool:
        c = np.asarray(candidate)
        return (c.shape == e.shape and matches(a, c, threshold, floor_scale, scale)
                and not matches(e, c, threshold, floor_scale, scale))     # a candidate the check tells apart

    if e.size and scale > 0 and matches(a, np.zeros_like(e), threshold, floor_scale, scale):
        return _capital(f"{you} is zero everywhere")
    axes = AXES.get(name, {}).get(key, (None, None))
    generic = itertools.chain(_factors(you, e, N, T, name, inputs), _orders(you, e), _samples(you, e, axes))
    for sentence, candidate in itertools.islice(generic, MAX_CANDIDATES):
        if fits(candidate):
            return _capital(sentence)
    shifted = _shifted(you, a, e, axes, threshold, floor_scale, scale)
    if shifted:
        return _capital(shifted)
    if name == "conv" and key == "dw" and e.ndim == 4:
        for sentence, candidate in (
                (f"{you} is the expected one with the kernel flipped (rows and columns reversed): true convolution "
                 "instead of cross-correlation", e[:, :, ::-1, ::-1]),
                (f"{you} is the expected one flipped upside down (rows reversed)", e[:, :, ::-1, :]),
                (f"{you} is the expected one flipped left to right (columns reversed)", e[:, :, :, ::-1])):
            if fits(candidate):
                return _capital(sentence)
    for sentence, candidate in _layer_specific(name, you, key, e, inputs, N):
        if fits(candidate):
            return _capital(sentence)
    if reference is not None and inputs:
        for sentence, changed in _changed_inputs(name, you, key, inputs, N, T):
            try:
                candidate = np.asarray(reference(changed)[key])
            except Exception:  # noqa: BLE001
                continue
            if fits(candidate):
                return _capital(sentence)
    return ""


def _capital(sentence: str | None) -> str:
    return (sentence[0].upper() + sentence[1:]) if sentence else ""


# --- the failure that carries what it compared --------------------------------------------------------

class Mismatch(AssertionError):
    """A comparison's failure (:func:`hwlib.check.engine.compare`) with what it compared, so that the
    judge, which has the case's inputs, can add the diagnosis (:meth:`explained`)."""

    def __init__(self, message: str, key: str = "", actual=None, expected=None, threshold: float = 0.0,
                 floor_scale: float = 0.0, explained: bool = False):
        super().__init__(message)
        self.key, self.actual, self.expected = key, actual, expected
        self.threshold, self.floor_scale, self.done = threshold, floor_scale, explained

    def explained(self, name: str, inputs: dict | None = None, reference=None, **sizes_) -> Mismatch:
        """This failure with the diagnosis appended (itself when there is none, or it has one already)."""
        if self.done:
            return self
        try:
            sentence = explain(name, self.key, self.actual, self.expected, inputs, threshold=self.threshold,
                               floor_scale=self.floor_scale, reference=reference, **sizes_)
        except Exception:  # noqa: BLE001 - a diagnosis never turns a failure into a crash
            sentence = ""
        message = f"{self}. {sentence}" if sentence else str(self)
        return Mismatch(message, self.key, self.actual, self.expected, self.threshold, self.floor_scale, True)

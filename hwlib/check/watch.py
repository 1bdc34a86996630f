"""What a student's call does beyond what it returns: inputs left unchanged, any memory layout, dtypes kept.

Three rules, held by every layer and model check (public and hidden), each applied once, here:

* **inputs unchanged**: a function must not write into the arrays it is given (``x``, ``dout``, the
  forward inputs its cache holds, a model's parameters and data): its caller still needs them (a
  shared upstream gradient, the input a numerical gradient check perturbs, the array a notebook plots
  next). :class:`Watch` runs beside the student's calls (in the sandbox, when graded) and records, after
  each call, the inputs as that call left them (outputs ``_inputs/<function>/<name>``), and any array of
  the forward's own cache that the backward pass changed (``_cache/<function>/<path>/before|after``);
* **any memory layout**: a case may ask for ``layout = "fortran"`` or ``"strided"`` (same values, other
  memory layout). :func:`arrange` makes such inputs; :func:`private` re-makes them from the ``_layout``
  tag on the side that runs the student's code (the grader's job travels through ``.npz``, which keeps
  no views), always as fresh arrays, so that the caller's inputs stay its own;
* **dtypes kept**: every floating output array has the dtype of the expected one, which is the inputs'
  (float32 in gives float32 out, float64 in gives float64 out). A course decides whether a change costs
  points (``strict_dtypes`` of its profile, in the course's description): strict, :func:`require_dtypes`
  fails the case; otherwise :func:`dtype_note` explains the change and what it costs, and the case is
  judged on its values alone (at the threshold of the expected dtype: a float64 result of float32
  inputs is judged at float32's, it is more accurate, not less).

The verdicts (:func:`require_unchanged`, :func:`require_dtypes`) run on the trusted side: what the
watch records is data, and the trusted side compares it with the inputs it sent itself, so a record that
is missing fails the case as surely as one that shows a change.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["LAYOUTS", "ECHO", "CACHE", "DTYPE_COST", "arrange", "private", "Watch", "first_change",
           "require_unchanged", "dtype_changes", "require_dtypes", "dtype_note"]

LAYOUTS = ("C", "fortran", "strided")
ECHO, CACHE = "_inputs", "_cache"     # prefixes of the outputs the watch adds
SKIPPED = ("seed", "init")            # inputs that are no argument of the student's calls (a model's recipe)
MAX_HELD = 32                         # cache arrays watched at most (a cache is small; a hostile one is not)


# --- layouts ---------------------------------------------------------------------------------------

def laid_out(value: np.ndarray, layout: str | None) -> np.ndarray:
    """A fresh array with the values of ``value`` in ``layout``: ``"C"`` (or None) row-major,
    ``"fortran"`` column-major, ``"strided"`` a view taking every other entry of the first and the
    last axis of a larger array (whose other entries are NaN for floats, 0 otherwise)."""
    if layout in (None, "C"):
        return np.array(value, order="C", copy=True)
    if layout == "fortran":
        return np.array(value, order="F", copy=True)
    if layout != "strided":
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    if value.ndim == 0:
        return np.array(value, copy=True)
    axes = {0, value.ndim - 1}
    shape = tuple(2 * n if axis in axes else n for axis, n in enumerate(value.shape))
    base = np.full(shape, np.nan if value.dtype.kind in "fc" else 0, dtype=value.dtype)
    view = base[tuple(slice(None, None, 2) if axis in axes else slice(None) for axis in range(value.ndim))]
    view[...] = value
    return view


def arrange(inputs: dict, layout: str) -> dict:
    """``inputs`` with every array in ``layout``, tagged ``_layout`` (a draw's ``layout`` keyword)."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    return {**{k: laid_out(v, layout) if isinstance(v, np.ndarray) else v for k, v in inputs.items()},
            "_layout": layout}


def private(inputs: dict) -> dict:
    """Fresh copies of the array inputs (dicts copied too), in the layout their ``_layout`` tag asks for:
    what the student's code gets, so that what it does to them never reaches the caller's inputs."""
    layout = inputs.get("_layout")
    return {k: laid_out(v, layout) if isinstance(v, np.ndarray) else dict(v) if isinstance(v, dict) else v
            for k, v in inputs.items()}


# --- the watch (runs beside the student's code) ----------------------------------------------------

def _items(name: str, value) -> dict:
    """The watchable values of an argument: an array, or a dict's numbers and arrays (``name/key``)."""
    if isinstance(value, np.ndarray):
        return {name: value}
    if isinstance(value, dict):
        return {f"{name}/{k}": np.asarray(v) for k, v in value.items()
                if isinstance(v, (np.ndarray, int, float, np.number)) and np.asarray(v).dtype.kind in "biuf"}
    return {}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and first_change(a, b) is None


class Watch:
    """Records what the student's calls leave of their arguments, for the trusted side to judge.

    Give it the objects passed to the student's code; call :meth:`after` after each call (with the
    function's name), :meth:`hold` with a forward's cache; :meth:`outputs` is the record.
    """

    def __init__(self, inputs: dict):
        self.objects = {k: v for k, v in inputs.items() if not k.startswith("_") and k not in SKIPPED}
        self.echo: dict[str, np.ndarray] = {}
        self.before = {k: v.copy() for name, obj in self.objects.items() for k, v in _items(name, obj).items()}
        self.held: list = []                     # (path, the cache's array, its copy after the forward pass)
        self.changed: dict[str, np.ndarray] = {}

    def __repr__(self) -> str:
        return f"Watch({sorted(self.objects)}, {len(self.held)} cache arrays)"

    def after(self, function: str) -> None:
        """Record the inputs as ``function`` left them (a change is kept over later calls that undo it),
        and the cache arrays it changed."""
        now = {k: np.array(v, copy=True) for name, obj in self.objects.items() for k, v in _items(name, obj).items()}
        for key, before in self.before.items():
            record = f"{ECHO}/{function}/{key}"
            kept = self.echo.get(record)
            if kept is None or _same(kept, before):
                # a value that vanished from a dict argument is recorded as missing: no echo at all
                if key in now:
                    self.echo[record] = now[key]
                else:
                    self.echo.pop(record, None)
        for path, array, copy in self.held:
            if not _same(np.asarray(array), copy):
                self.changed[f"{CACHE}/{function}/{path}/before"] = copy
                self.changed[f"{CACHE}/{function}/{path}/after"] = np.array(array, copy=True)

    def hold(self, cache) -> None:
        """Watch the arrays of a forward's ``cache`` (in tuples, lists, dicts) that are no input's memory."""
        inputs = [v for name, obj in self.objects.items() for v in _items(name, obj).values()]
        self.held = [(path, a, a.copy()) for path, a in _arrays(cache)
                     if not any(np.may_share_memory(a, v) for v in inputs)][:MAX_HELD]

    def outputs(self) -> dict:
        return {**self.echo, **self.changed}


def _arrays(value, path: str = "", depth: int = 0):
    """``(path, array)`` for the arrays inside ``value``: ``"1"``, ``"1/0"``, ``"masks/2"``..."""
    if isinstance(value, np.ndarray):
        yield path or "0", value
    elif depth < 3 and isinstance(value, (tuple, list)):
        for i, v in enumerate(value[:MAX_HELD]):
            yield from _arrays(v, f"{path}/{i}".lstrip("/"), depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for i, (k, v) in enumerate(list(value.items())[:MAX_HELD]):
            key = k if isinstance(k, str) and re.fullmatch(r"\w{1,30}", k) else str(i)
            yield from _arrays(v, f"{path}/{key}".lstrip("/"), depth + 1)


# --- the verdicts (trusted side) -------------------------------------------------------------------

def _show(value) -> str:
    if isinstance(value, (float, np.floating)):
        text = f"{float(value):.6g}"
        return text if any(c in text for c in ".enai") else text + ".0"
    return str(value.item() if isinstance(value, np.generic) else value)


def first_change(before, after) -> str | None:
    """Where ``after`` differs from ``before``, bit for bit: ``"at (0, 3): -0.41 became 0.0"``, a change
    of shape or dtype, or None when they are the same."""
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape:
        return f"(its shape {before.shape} became {after.shape})"
    if before.dtype != after.dtype:
        return f"(its dtype {before.dtype} became {after.dtype})"
    flat_before, flat_after = before.reshape(-1), after.reshape(-1)       # row-major, contiguous
    if before.dtype.kind in "biufc" and before.dtype.itemsize in (1, 2, 4, 8):
        bits = np.dtype(f"u{before.dtype.itemsize}")
        differ = flat_before.view(bits) != flat_after.view(bits)
    else:
        differ = flat_before != flat_after
    if not np.any(differ):
        return None
    index = tuple(int(i) for i in np.unravel_index(int(np.argmax(differ)), before.shape))
    at = f"at {index}: " if index else ""
    return f"{at}{_show(before[index])} became {_show(after[index])}"


def _expected_items(inputs: dict) -> dict:
    return {k: v for name, obj in inputs.items() if not name.startswith("_") and name not in SKIPPED
            for k, v in _items(name, obj).items()}


def _label(key: str) -> str:
    name, _, entry = key.partition("/")
    return f"{name}[{entry!r}]" if entry else name


def require_unchanged(name: str, calls: tuple, held: str, outputs: dict, inputs: dict) -> None:
    """Raise ``AssertionError`` unless the record in ``outputs`` shows every input of ``inputs`` unchanged
    after each call of ``calls`` (``(function, its arguments)``, in call order), and no cache array
    changed. ``held`` says where inputs that are no argument of a call live ("the cache", "model.params")."""
    expected = _expected_items(inputs)
    for function, args in calls:
        for key, sent in expected.items():
            arg = key.partition("/")[0]
            what = f"its input {_label(key)}" if arg in args else (
                f"model.params[{key!r}]" if held == "model.params" else
                f"{_label(key)} (an input of {calls[0][0]}, held in {held})")
            got = outputs.get(f"{ECHO}/{function}/{key}")
            if got is None:
                if "/" in key:
                    raise AssertionError(f"{function} removed or replaced {what} in place; leave its arguments as they are")
                raise AssertionError(f"{name}: the record of {_label(key)} after {function} is missing "
                                     "(the checks could not see whether your code changed it)")
            change = first_change(sent, got)
            if change is not None:
                hint = "leave model.params and the data as they are" if held == "model.params" else "return a new array"
                raise AssertionError(f"{function} changed {what} in place {change}; {hint}")
    for key in sorted(k for k in outputs if k.startswith(f"{CACHE}/") and k.endswith("/before")):
        after = outputs.get(key[: -len("before")] + "after")
        _, function, *path, _ = key.split("/")
        change = first_change(outputs[key], after) if after is not None else None
        if change is not None:
            where = "cache" + "".join(f"[{p}]" if p.isdigit() else f"[{p!r}]" for p in path)
            raise AssertionError(f"{function} changed {where[:80]}, an array of its cache, in place {change}; "
                                 "return a new array")


# What float64 costs where float32 was asked for (the notes say it). Measured with the kit's layers on
# one CPU thread: the seed's ConvNet (32 7x7 filters on 28x28 images, hidden 100), loss and gradients of a
# batch of 100, float32 30 ms and float64 60 ms (the convolution's backward pass 17 against 32 ms).
DTYPE_COST = ("float64 arrays take twice the memory, and float64 arithmetic is slower: the seed's ConvNet "
              "trains about 2x slower in float64 (loss and gradients of a batch of 100 images: ~60 ms against "
              "~30 ms in float32, on one CPU thread)")
DTYPE_ADVICE = ("allocate with the input's dtype (np.zeros(shape, dtype=x.dtype), np.zeros_like(x)) or cast the "
                "result (out.astype(x.dtype)): np.zeros, np.empty and np.ones without dtype= allocate float64")


def dtype_changes(outputs: dict, expected: dict) -> list[tuple[str, np.dtype, np.dtype]]:
    """``(output, its dtype, the expected dtype)`` for every floating output array (expected floating, not
    0-d: a loss may be a Python float) that came back with another dtype, in the order of ``expected``."""
    changes = []
    for key, value in expected.items():
        exp = np.asarray(value)
        if exp.dtype.kind != "f" or exp.ndim == 0 or key not in outputs:
            continue
        got = np.asarray(outputs[key]).dtype
        if got != exp.dtype:
            changes.append((key, got, exp.dtype))
    return changes


def _source(source: str, want) -> str:
    return f"a {want} model" if source == "model" else f"{want} inputs"


def require_dtypes(name: str, outputs: dict, expected: dict, source: str = "inputs") -> None:
    """Raise ``AssertionError`` unless every floating output array has the expected dtype, the dtype of
    the inputs (``source`` "inputs") or of the model (``source`` "model")."""
    for key, got, want in dtype_changes(outputs, expected)[:1]:
        of = "the model's dtype" if source == "model" else "the dtype of the inputs"
        raise AssertionError(f"{name} {key} has dtype {got}; expected {want}, {of} (float32 in gives float32 out, "
                             f"float64 in gives float64 out); {DTYPE_ADVICE}")


def dtype_note(name: str, outputs: dict, expected: dict, source: str = "inputs", graded: bool = False) -> str:
    """The note on a dtype change that is not deducted: which outputs changed dtype, that the case is
    judged on its values, what it costs in training and how to keep the dtype ("" when every dtype is
    kept). ``graded``: the note of a hidden case (the course's grading does not deduct it); otherwise a
    public check's (which does not fail on it, whatever the course decides)."""
    changes = dtype_changes(outputs, expected)
    if not changes:
        return ""
    keys = [key for key, _, _ in changes]
    pairs = sorted({(str(got), str(want)) for _, got, want in changes})
    got, want = pairs[0]
    named = ", ".join(keys[:4]) + (f" ... ({len(keys)} in all)" if len(keys) > 4 else "")
    verb = "has" if len(keys) == 1 else "have"
    dtypes = f"dtype {got}" if len(pairs) == 1 else "dtypes " + ", ".join(sorted({g for g, _ in pairs}))
    head = f"note: {name} {named} {verb} {dtypes} for {_source(source, want)}"
    verdict = ("It costs no points in this course's grading" if graded else
               "This check does not fail on it (your course's grading may: see its instructions)")
    if np.dtype(got).kind == "f" and np.dtype(got).itemsize > np.dtype(want).itemsize:
        why = (f"{verdict}: the values are judged at {want}'s threshold. But it costs in training: {DTYPE_COST}. "
               f"{DTYPE_ADVICE[0].upper()}{DTYPE_ADVICE[1:]}.")
    else:
        why = (f"{verdict}: the values are judged at {want}'s threshold, which a less precise dtype may miss "
               "(float32 keeps about 7 significant digits, float64 about 16). Keep the dtype you were given (x.dtype).")
    return f"{head}. {why}"

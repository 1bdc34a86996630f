"""The check engine: what a target is, how outputs are judged, and the public-check loop.

A :class:`Target` is one thing a check exercises (a layer's forward and backward pass, a model's
``__init__`` or ``loss``, a Q5 function). It knows four steps, kept apart so that the grader can run
them in different processes (the student's code in a sandbox, the verdict outside it):

* ``draw``: inputs, from a seed, a dtype and keyword arguments (shapes, constructor arguments);
* ``run``: the outputs of whatever ``hwlib`` is importable (the student's, when graded);
* ``reference``: the expected outputs, computed independently (PyTorch, or the kit's model);
* ``judge``: outputs against expected -> a summary, or an ``AssertionError`` that says what is wrong;
  :func:`notes` says what the judge let pass but the student should know (a dtype change, where the
  course does not deduct it: ``strict_dtypes``).

The functions here take a :class:`Target`; ``hwlib.check`` offers the same ones by name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from ..gradient_check import assert_close, eval_numerical_gradient, eval_numerical_gradient_array
from . import watch as _watch
from . import speed as _speed
from .diagnose import Mismatch

__all__ = ["Target", "THRESHOLDS", "NUMERICAL_FLOOR_SCALE", "compare", "describe", "draw", "run", "reference",
           "judge", "notes", "numerical_gradients", "check", "check_model_gradients"]

# (threshold, floor scale) by dtype: float64 matches PyTorch to round-off. Entries smaller than
# floor scale * max|expected| are judged against that floor (their own digits are round-off).
THRESHOLDS = {np.dtype(np.float64): (1e-8, 1e-6), np.dtype(np.float32): (1e-3, 1e-3)}
# Numerical gradients (centred differences) carry ~1e-10 absolute noise: judge entries below
# 1e-4 * max|expected| against that floor, so round-off never fails a correct layer.
NUMERICAL_FLOOR_SCALE = 1e-4


@dataclass(frozen=True)
class Target:
    """One row of the check table: how to draw inputs, run the student's code, and judge it."""

    name: str                                  # "fc", "SoftmaxClassifier.loss", "freeze", ...
    module: str                                # the student module it runs, e.g. "hwlib.layers"
    draw: Callable[..., dict]                  # (rng, dtype, **kw) -> inputs (seeded: also seed=int)
    run: Callable[[dict], dict]                # inputs -> outputs, of the importable hwlib
    reference: Callable[[dict], dict]          # inputs -> expected outputs, computed independently
    judge: Callable[..., object]               # (outputs, expected, inputs, label) -> summary
    cases: tuple = ()                          # draw keywords of the public cases
    grads: tuple = ()                          # outputs that are gradients w.r.t. the input of that name
    forward: Callable[[dict], object] | None = None   # inputs -> the output ``grads`` differentiate
    public: Callable[[int, bool, bool], None] | None = None  # (seed, verbose, strict_dtypes): a public check
                                                             # of its own
    seeded: bool = False                       # draw takes the integer seed (models, Q5 observers)
    watch: tuple = ()                          # (function, its arguments): the student's calls, in order,
                                               # that must leave the inputs unchanged and keep dtypes
    held: str = "the cache"                    # where inputs that are no argument of a call live

    def __repr__(self) -> str:
        return f"Target({self.name!r}, module={self.module!r})"


# --- the four steps ----------------------------------------------------------------------------

def require(condition, message: str) -> None:
    """Raise ``AssertionError(message)`` unless ``condition``: a verdict's rule, which (unlike an
    ``assert`` statement) ``python -O`` cannot remove."""
    if not condition:
        raise AssertionError(message)


def draw(target: Target, seed=0, dtype=np.float64, **kw) -> dict:
    """Inputs of ``target`` for ``seed`` (an int, or a Generator to go on drawing from) and ``dtype``.

    Keyword arguments override the draw's defaults (shapes; a model's constructor arguments).
    ``layout`` ("C", "fortran" or "strided") gives every array the same values in that memory layout
    (:mod:`.watch`). A seeded target (models, Q5) needs an int: it builds or seeds with it.
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype) if dtype is not None else None
    layout = kw.pop("layout", None)
    if target.seeded:
        if not isinstance(seed, (int, np.integer)):
            raise TypeError(f"{target.name}: its draw needs an integer seed; got {type(seed).__name__}")
        inputs = target.draw(rng, dtype, seed=int(seed), **kw)
    else:
        inputs = target.draw(rng, dtype, **kw)
    return _watch.arrange(inputs, layout) if layout else inputs


def run(target: Target, inputs: dict) -> dict:
    """The outputs of the importable ``hwlib`` on ``inputs``: every call of the student's code goes
    through here. The code gets fresh copies of the inputs, in the layout of their ``_layout`` tag, and
    a watched target adds the record of what each call left of them (:mod:`.watch`) to its outputs."""
    return target.run(_watch.private(inputs))


def reference(target: Target, inputs: dict) -> dict:
    return target.reference(inputs)


def _dtype_source(target: Target) -> str:
    return "model" if target.held == "model.params" else "inputs"


def judge(target: Target, outputs: dict, expected: dict, inputs: dict, label: str = "reference",
          strict_dtypes: bool = False):
    """A summary (worst relative error per output, or a sentence); ``AssertionError`` on a failure.

    A watched target's calls must first have left ``inputs`` (what was sent) unchanged, by the record in
    ``outputs``; then the values are judged, at the threshold of the expected dtype. With
    ``strict_dtypes`` (the course profile's setting), the floating outputs must also have the expected
    dtype (the inputs', or the model's); without, a dtype change is no failure: :func:`notes` explains it.
    """
    if target.watch:
        _watch.require_unchanged(target.name, target.watch, target.held, outputs, inputs)
    try:
        summary = target.judge(outputs, expected, inputs, label)
    except Mismatch as exc:
        raise exc.explained(target.name, inputs, target.reference) from None
    if strict_dtypes:
        _watch.require_dtypes(target.name, outputs, expected, _dtype_source(target))
    return summary


def notes(target: Target, outputs: dict, expected: dict, graded: bool = False) -> list[str]:
    """What a passing case should still tell the student: the dtype changes of its outputs (which
    :func:`judge` fails under ``strict_dtypes``), what they cost, and how to keep the dtype. ``graded``:
    for a hidden case's feedback (the course does not deduct them), else for a public check."""
    note = _watch.dtype_note(target.name, outputs, expected, _dtype_source(target), graded)
    return [note] if note else []


def compare(name: str, outputs: dict, expected: dict, threshold: float | None = None,
            expected_label: str = "expected", floor_scale: float | None = None) -> dict:
    """Assert every expected output matches; return the worst relative error per output.

    ``threshold`` and ``floor_scale`` default to the expected array's dtype (:data:`THRESHOLDS`).
    """
    worst = {}
    for key, value in expected.items():
        if key not in outputs:
            raise AssertionError(f"{name}: output {key} is missing")
        exp = np.asarray(value)
        default, scale = THRESHOLDS.get(exp.dtype, THRESHOLDS[np.dtype(np.float64)])
        limit = threshold if threshold is not None else default
        scale = floor_scale if floor_scale is not None else scale
        floor = max(1e-8, scale * float(np.max(np.abs(exp)))) if exp.size else 1e-8
        try:
            worst[key] = assert_close(outputs[key], exp, name=f"{name} {key}", threshold=limit, floor=floor,
                                      expected_label=expected_label)
        except AssertionError as exc:   # the judge, which has the inputs, adds what the mistake is (diagnose.py)
            raise Mismatch(str(exc), key, outputs[key], exp, limit, scale) from None
    return worst


def describe(inputs: dict) -> str:
    """A case in one line: float dtypes, array shapes, other values (``dout``, ``seed`` and a model's
    constructor arguments left out; a model without array inputs shows its constructor arguments)."""
    arrays = [(k, v) for k, v in inputs.items() if isinstance(v, np.ndarray) and k != "dout"]
    dtypes = sorted({str(v.dtype) for _, v in arrays if v.dtype.kind == "f"})
    shapes = " ".join(f"{k}{tuple(v.shape)}" for k, v in arrays)
    others = " ".join(f"{k}={v}" for k, v in inputs.items() if not isinstance(v, np.ndarray)
                      and not k.startswith("_") and k not in ("seed", "init"))
    layout = {"fortran": "Fortran-ordered", "strided": "strided views"}.get(inputs.get("_layout"), "")
    text = " ".join(x for x in ("/".join(dtypes), shapes, others, layout) if x)
    if not text and isinstance(inputs.get("init"), dict):
        init = dict(inputs["init"])
        text = " ".join([str(init.pop("dtype", "")), *(f"{k}={v}" for k, v in init.items())]).strip()
    return text


# --- numerical gradients -----------------------------------------------------------------------

def numerical_gradients(target: Target, inputs: dict, h: float = 1e-6) -> dict:
    """Numerical gradients of ``sum(forward * dout)`` (or of the loss) w.r.t. each differentiable input."""
    inputs = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
              for k, v in inputs.items()}
    grads = {}
    for gname in target.grads:
        wrt = gname[1:]  # "dx" -> "x"

        def forward(_):
            return target.forward(inputs)

        if "dout" in inputs:
            grads[gname] = eval_numerical_gradient_array(forward, inputs[wrt], inputs["dout"], h=h)
        else:
            grads[gname] = eval_numerical_gradient(forward, inputs[wrt], h=h)
    return grads


def check_model_gradients(model, *loss_args, threshold: float = 1e-6, floor_scale: float = 1e-3,
                          h: float = 1e-5, verbose: bool = True) -> dict:
    """Check ``model.loss(*loss_args)``'s gradient of every parameter against numerical gradients.

    ``model`` has ``params`` (a dict of arrays) and ``loss(...) -> (loss, grads)`` with ``grads``
    keyed like ``params``; use float64 parameters (centred differences need them). Entries below
    ``floor_scale`` times a gradient's largest entry are judged against that floor: the differences
    carry round-off of about 1e-10. Returns the worst relative error per parameter; raises
    ``AssertionError`` naming the parameter, the first bad index and both values, or the parameter or
    argument that ``loss`` changed in place (:mod:`.watch`).
    """
    label = f"{type(model).__name__}.loss"
    args = dict(zip(list(inspect.signature(model.loss).parameters), loss_args))   # X, y or features, captions
    record = _watch.Watch({**model.params, **args})
    _, grads = model.loss(*loss_args)
    record.after(label)
    _watch.require_unchanged(label, ((label, tuple(args)),), "model.params", record.outputs(), record.before)
    worst = {}
    for name in model.params:
        numerical = eval_numerical_gradient(lambda _: model.loss(*loss_args)[0], model.params[name], h=h)
        floor = floor_scale * max(float(np.abs(numerical).max()), 1e-8)
        try:
            worst[name] = assert_close(grads.get(name), numerical, name=f"{label} grads[{name!r}]",
                                       threshold=threshold, floor=floor, expected_label="numerical")
        except AssertionError as exc:   # what the mistake is, where it is a known one (diagnose.py)
            sizes = {"N": len(loss_args[0]) if np.ndim(loss_args[0]) else None,
                     "T": np.shape(loss_args[1])[1] - 1 if len(loss_args) > 1 and np.ndim(loss_args[1]) == 2 else None}
            raise Mismatch(str(exc), f"grads/{name}", grads.get(name), numerical, threshold,
                           floor_scale).explained(label, **sizes) from None
    if verbose:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        print(f"  {label} gradient check (threshold {threshold:.0e}): {errors}")
    return worst


# --- the public check --------------------------------------------------------------------------

def check(target: Target, seed: int = 0, verbose: bool = True, strict_dtypes: bool = False) -> None:
    """The public check of ``target``: its own (models, Q5), or the layers' loop.

    The layers' loop: on every public case, in float64 and float32, the outputs against the
    reference (PyTorch) and the inputs left unchanged; the first case again with Fortran-ordered
    (float64) and strided (float32) inputs; then, on the first case in float64, the gradients against
    numerical ones. All cases are drawn from one generator seeded with ``seed``. A dtype change fails
    with ``strict_dtypes``; otherwise it is printed as a note (once), with what it costs.
    """
    if target.public is not None:
        target.public(seed, verbose, strict_dtypes)
        _speed_note(target, verbose)
        return
    rng = np.random.default_rng(seed)
    conditions = [(case, dtype, None) for case in target.cases for dtype in (np.float64, np.float32)]
    noted = []
    for case, dtype, layout in conditions + [(target.cases[0], np.float64, "fortran"),
                                             (target.cases[0], np.float32, "strided")]:
        inputs = draw(target, rng, dtype, **case, **({"layout": layout} if layout else {}))
        outputs, expected = run(target, inputs), reference(target, inputs)
        try:
            worst = judge(target, outputs, expected, inputs, label="torch", strict_dtypes=strict_dtypes)
        except AssertionError as exc:
            raise AssertionError(f"{exc} (case: {describe(inputs)})") from None
        noted += [note for note in notes(target, outputs, expected) if note not in noted]
        if verbose:
            errors = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
            print(f"  {target.name} {describe(inputs)}: vs PyTorch {errors}")
    if target.grads:
        inputs = draw(target, rng, np.float64, **target.cases[0])
        outputs = run(target, inputs)
        numerical = numerical_gradients(target, inputs)
        try:
            worst = compare(target.name, {k: outputs[k] for k in numerical}, numerical, threshold=1e-6,
                            expected_label="numerical", floor_scale=NUMERICAL_FLOOR_SCALE)
        except Mismatch as exc:
            raise exc.explained(target.name, inputs, target.reference) from None
        if verbose:
            errors = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
            print(f"  {target.name} gradient check (threshold 1e-06): {errors}")
    show_notes(noted, verbose)
    _speed_note(target, verbose)


def _speed_note(target: Target, verbose: bool) -> None:
    """After a passing public check of conv, pool or ConvNet.loss: what Q3's graded run would take with
    the student's code (:mod:`.speed`; a note, never a failure; never in the grader's hidden checks)."""
    if verbose and target.name in _speed.NOTED:
        text = _speed.note(target.name)
        if text:
            print(f"  {text}")


def show_notes(noted: list, verbose: bool = True) -> None:
    """Print the notes of a public check (not indented: ``python -m hwlib.submit`` lists them)."""
    if verbose:
        for note in noted:
            print(note)

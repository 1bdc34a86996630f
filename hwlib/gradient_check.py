"""Numerical gradients, relative errors, and an assert that explains itself.

The one place in the kit that defines ``rel_error``: notebooks, public checks, tests and the
grader all import it from here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "rel_error",
    "relative_errors",
    "eval_numerical_gradient",
    "eval_numerical_gradient_array",
    "assert_close",
    "check_gradient",
    "format_pair",
]


def relative_errors(actual, expected, floor: float = 1e-8) -> np.ndarray:
    """Element-wise ``|a - e| / max(|a| + |e|, floor)``.

    ``floor`` keeps entries where both values are (nearly) zero from dividing by zero; raise
    it to the scale of the array when tiny entries are pure round-off.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    return np.abs(a - e) / np.maximum(np.abs(a) + np.abs(e), floor)


def rel_error(x, y, floor: float = 1e-8) -> float:
    """Largest element-wise relative error between ``x`` and ``y`` (0.0 for empty arrays)."""
    errors = relative_errors(x, y, floor)
    return float(errors.max()) if errors.size else 0.0


def eval_numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5,
                            verbose: bool = False) -> np.ndarray:
    """Centred-difference gradient of a scalar function ``f`` at ``x``.

    ``x`` is perturbed in place one entry at a time and restored afterwards.
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = float(f(x))
        x[ix] = old - h
        fxmh = float(f(x))
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, df: np.ndarray,
                                  h: float = 1e-5) -> np.ndarray:
    """Numerical gradient of ``sum(f(x) * df)`` with respect to ``x`` (``df`` is the upstream gradient)."""
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def format_pair(actual, expected) -> tuple[str, str]:
    """Two numbers as a message shows them: plain (``2.2297``, not ``np.float64(2.2297490853822413)``),
    with 5 significant digits, or as many more as it takes for the two to print differently (up to
    the precision of their dtype: 17 digits for float64, 9 for float32)."""
    values = (np.asarray(actual)[()], np.asarray(expected)[()])
    if not all(isinstance(v, np.floating) or type(v) is float for v in values):
        return tuple(str(v.item() if isinstance(v, np.generic) else v) for v in values)
    most = max(min(np.finfo(v.dtype).precision + 3, 17) if isinstance(v, np.floating) else 17 for v in values)
    for digits in range(5, max(most, 5) + 1):
        shown = tuple(repr(float(f"{float(v):.{digits}g}")) for v in values)
        if shown[0] != shown[1]:
            break
    return shown


def assert_close(actual, expected, *, name: str = "value", threshold: float = 1e-7, floor: float = 1e-8,
                 actual_label: str = "yours", expected_label: str = "expected") -> float:
    """Assert that ``actual`` matches ``expected`` element-wise within a relative error ``threshold``.

    Returns the worst relative error. On failure the ``AssertionError`` names the worst error, the
    threshold, and the first index over it with both values, e.g.::

        dw: worst relative error 3.2e-01 > threshold 1e-07; first bad index (0, 2, 1, 1):
        yours=0.8125, expected=1.2031 (shape (4, 3, 3, 3))
    """
    if actual is None:
        raise AssertionError(f"{name}: got None (did the function return all of its values?)")
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: expected shape {tuple(e.shape)}, got shape {tuple(a.shape)}")
    if not np.issubdtype(a.dtype, np.number):
        raise AssertionError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    errors = np.array(relative_errors(a, e, floor))  # a writable array, 0-d included
    errors[np.isnan(errors)] = np.inf  # a NaN anywhere is a failure, never a pass
    worst = float(errors.max()) if errors.size else 0.0
    if worst > threshold:
        bad = np.argwhere(errors > threshold)[0]
        index = tuple(int(i) for i in bad)
        yours, theirs = format_pair(a[index], e[index])
        raise AssertionError(
            f"{name}: worst relative error {worst:.2e} > threshold {threshold:.0e}; "
            f"first bad index {index}: {actual_label}={yours}, {expected_label}={theirs} "
            f"(shape {tuple(a.shape)})"
        )
    return worst


def check_gradient(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, analytic, *, df: np.ndarray | None = None,
                   name: str = "gradient", threshold: float = 1e-7, h: float = 1e-5) -> float:
    """Compare an analytic gradient with the numerical one and print the result.

    ``f`` maps ``x`` to a scalar (``df=None``) or to an array whose upstream gradient is ``df``.
    """
    if df is None:
        numerical = eval_numerical_gradient(f, x, h=h)
    else:
        numerical = eval_numerical_gradient_array(f, x, df, h=h)
    worst = assert_close(analytic, numerical, name=name, threshold=threshold, expected_label="numerical")
    print(f"{name}: relative error {worst:.2e} (threshold {threshold:.0e}) OK")
    return worst

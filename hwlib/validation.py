"""Input validation shared by every hwlib function.

Errors name the argument, the expected shape and the received shape, so a student sees
``ValueError: conv_forward: w must have 4 dimensions (F, C, HH, WW); got shape (3, 3)``
instead of a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_array", "require_ndim", "require", "require_finite", "require_labels",
           "positive_int", "float_dtype", "as_generator"]


def as_array(func: str, name: str, value) -> np.ndarray:
    """Return ``value`` as a floating NumPy array, or raise a clear ``ValueError``."""
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{func}: {name} must be an array; could not convert {type(value).__name__}: {exc}") from None
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{func}: {name} must be a numeric array; got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def require_ndim(func: str, name: str, arr: np.ndarray, ndim: int | tuple[int, ...], layout: str) -> None:
    """Raise unless ``arr.ndim`` is ``ndim`` (or one of them); ``layout`` names the axes, e.g. ``(N, C, H, W)``."""
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(f"{func}: {name} must have {want} dimensions {layout}; got shape {tuple(arr.shape)}")


def require(condition: bool, func: str, message: str) -> None:
    """Raise ``ValueError(f"{func}: {message}")`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(f"{func}: {message}")


def require_finite(func: str, name: str, arr: np.ndarray) -> None:
    """Raise if ``arr`` holds NaN or infinity (say where the first one is)."""
    finite = np.isfinite(arr)
    if not finite.all():
        index = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise ValueError(
            f"{func}: {name} must be finite; found {arr[index]} at index {index} (shape {tuple(arr.shape)}). "
            "A NaN or inf here usually means the learning rate or the weight scale is too large."
        )


def require_labels(func: str, name: str, y, num_samples: int, num_classes: int) -> np.ndarray:
    """Return ``y`` as an int array of shape ``(num_samples,)`` with values in ``[0, num_classes)``."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != num_samples:
        raise ValueError(f"{func}: {name} must have shape ({num_samples},) (one label per sample); got shape {tuple(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        if y.size and np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        else:
            raise ValueError(f"{func}: {name} must hold integer class labels; got dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = int(np.flatnonzero((y < 0) | (y >= num_classes))[0])
        raise ValueError(
            f"{func}: {name} must hold labels in [0, {num_classes}) for {num_classes} classes; "
            f"got {int(y[bad])} at index {bad}"
        )
    return y


def positive_int(func: str, name: str, value, allow_none: bool = False) -> int | None:
    """Return ``value`` as an ``int`` >= 1 (or None when ``allow_none``), or raise naming ``name``."""
    if value is None and allow_none:
        return None
    require(isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1, func,
            f"{name} must be a positive integer{' or None' if allow_none else ''}; got {value!r}")
    return int(value)


def float_dtype(func: str, value) -> np.dtype:
    """Return ``value`` as ``np.dtype(float32)`` or ``np.dtype(float64)``, or raise."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    require(dtype is not None and dtype in (np.dtype(np.float32), np.dtype(np.float64)), func,
            f"dtype must be np.float32 or np.float64; got {value!r}")
    return dtype


def as_generator(func: str, rng) -> np.random.Generator:
    """``rng`` as a Generator: None (fresh, unseeded), a non-negative int seed, or a Generator (used as is)."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    require(isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0, func,
            f"rng must be a np.random.Generator, a non-negative int seed or None; got {rng!r}")
    return np.random.default_rng(int(rng))

"""Input validation shared by every hwlib function.

Errors name the argument, the expected shape and the received shape, so a student sees
``ValueError: conv_forward: w must have 4 dimensions (F, C, HH, WW); got shape (3, 3)``
instead of a broadcasting error from deep inside NumPy.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["as_array", "require_ndim", "require", "require_finite", "require_ids", "require_labels",
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


def require_ids(func: str, name: str, values, num_ids: int, *, ndim: int | None = None, layout: str = "",
                what: str = "ids", integer_what: str | None = None, of: str = "") -> np.ndarray:
    """Return ``values`` as an integer array with entries in ``[0, num_ids)``, or raise a clear ``ValueError``.

    The one check of every id-like input: class labels (:func:`require_labels`), word ids and
    captions. Floats holding whole numbers (``1.0``) are accepted and converted to int64.

    Inputs:
    - ndim, layout: the rank ``values`` must have and its axes, e.g. ``2, "(N, T)"`` (None: any rank)
    - what: what the entries are, for the messages ("ids", "labels"); ``integer_what`` replaces
      ``"integer " + what`` in the message about a non-integer dtype
    - of: what ``num_ids`` counts, e.g. ``"the vocabulary size V = 5"``
    """
    arr = np.asarray(values)
    if ndim is not None:
        require_ndim(func, name, arr, ndim, layout)
    if not np.issubdtype(arr.dtype, np.integer):
        whole = (np.issubdtype(arr.dtype, np.floating) and bool(np.all(np.isfinite(arr)))
                 and bool(np.all(arr == np.round(arr))))
        require(whole, func, f"{name} must hold {integer_what or 'integer ' + what}; got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_ids):
        bad = tuple(int(i) for i in np.argwhere((arr < 0) | (arr >= num_ids))[0])
        where = bad[0] if arr.ndim == 1 else bad
        raise ValueError(f"{func}: {name} must hold {what} in [0, {num_ids})" + (f" ({of})" if of else "")
                         + f"; got {int(arr[bad])} at index {where} (shape {tuple(arr.shape)})")
    return arr


def require_labels(func: str, name: str, y, num_samples: int, num_classes: int) -> np.ndarray:
    """Return ``y`` as an int array of shape ``(num_samples,)`` with values in ``[0, num_classes)``."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != num_samples:
        raise ValueError(f"{func}: {name} must have shape ({num_samples},) (one label per sample); got shape {tuple(y.shape)}")
    return require_ids(func, name, y, num_classes, what="labels", integer_what="integer class labels",
                       of=f"{num_classes} classes")


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

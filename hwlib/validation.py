"""Input validation shared by every hwlib function.

Errors name the argument, the expected shape and the received shape, so a student sees
``ValueError: conv_forward: w must have 4 dimensions (F, C, HH, WW); got shape (3, 3)``
instead of a broadcasting error from deep inside NumPy.

Every check is O(1) in the size of the data (its type, dtype, shape and strides), except
:func:`require_finite`, :func:`require_ids` and :func:`require_labels`, which read the values. Three
kinds of bad input get their own helpers:

* a cache from the wrong place: :func:`layer_cache` marks the tuple a forward pass returns with the
  forward's name (a :class:`LayerCache`, a tuple in every other respect), :func:`require_cache` and
  :func:`require_array_cache` check it at the top of the backward pass;
* a size the machine cannot hold: :func:`require_memory` refuses at once, before anything is allocated,
  what would need more than a fraction of the memory available (:func:`memory_limit`);
* a complex, string or object array: :func:`as_array` refuses it instead of dropping the imaginary part.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

__all__ = ["as_array", "require_ndim", "require", "require_finite", "require_ids", "require_labels",
           "positive_int", "float_dtype", "as_generator",
           "LayerCache", "layer_cache", "require_cache", "require_array_cache", "describe", "describe_layout",
           "MEMORY_FRACTION", "MEMORY_FALLBACK", "MEMORY_UNCHECKED", "available_memory", "memory_limit",
           "require_memory", "nbytes"]

# dtype kinds a layer computes with: bool, signed and unsigned integers, real floating point. Not
# complex (the imaginary part would be lost), timedelta/datetime, strings, bytes, void or object.
_REAL_KINDS = frozenset("biuf")


def as_array(func: str, name: str, value) -> np.ndarray:
    """Return ``value`` as a floating NumPy array, or raise a clear ``ValueError``.

    Floating arrays are returned as they are (no copy, whatever their strides); bool and integer
    arrays are converted to float64. Complex, string, object, datetime and timedelta arrays are
    refused: converting them would silently drop the imaginary part or fail inside NumPy.
    """
    if isinstance(value, np.ndarray):
        arr = value
    else:
        try:
            arr = np.asarray(value)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{func}: {name} must be an array; could not convert {type(value).__name__}: {exc}") from None
    if arr.dtype.kind not in _REAL_KINDS:
        why = " (a complex array: its imaginary part would be lost)" if arr.dtype.kind == "c" else ""
        raise ValueError(f"{func}: {name} must be a numeric array of real floating or integer numbers; "
                         f"got dtype {arr.dtype}{why}")
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
    """Return ``value`` as an ``int`` >= 1 (or None when ``allow_none``), or raise naming ``name``.

    Python and NumPy integers are accepted; booleans are not (``True`` is an ``int`` to Python, but
    ``stride=True`` is a mistake, not a stride of 1), nor are floats, even whole ones.
    """
    if value is None and allow_none:
        return None
    if not (isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) and value >= 1):
        why = " (a bool, not an integer)" if isinstance(value, (bool, np.bool_)) else ""
        raise ValueError(f"{func}: {name} must be a positive integer{' or None' if allow_none else ''}; got {value!r}{why}")
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


# --- caches: the backward pass gets the cache of its own forward pass ------------------------------

class LayerCache(tuple):
    """The cache a forward pass returned: the tuple it built, marked with the forward's name.

    A tuple in every respect (unpacking, indexing, ``len``, ``==``, ``repr``); the mark (``forward``)
    lets a backward pass refuse another layer's cache at once, and ``info`` keeps what the given code
    knew about the forward's inputs (shapes, dtype) for the backward pass's memory estimate. Copies
    and pickles keep both; ``tuple(cache)`` and ``cache[:]`` are plain tuples again.
    """

    def __new__(cls, items=(), forward: str = "", info: dict | None = None):
        self = super().__new__(cls, items)
        self.forward = forward
        self.info = info if info is not None else {}
        return self

    def __reduce__(self):
        return (LayerCache, (tuple(self), self.forward, self.info))


# The layouts (type and length) of the caches each forward pass returned in this process, a few at
# most: for a backward pass whose cache the given code does not define (the student's choice), the
# reference for a cache that lost its mark.
_LAYOUTS: dict[str, set] = {}
_MAX_LAYOUTS = 8


def _layout(value) -> tuple[str, int | None]:
    if isinstance(value, LayerCache) or type(value) is tuple:
        return "tuple", len(value)
    if isinstance(value, (tuple, list, dict)):
        return type(value).__name__, len(value)
    return type(value).__name__, None


def layer_cache(forward: str, cache, **info):
    """The cache ``forward`` returns, marked as its: a plain tuple becomes a :class:`LayerCache`
    holding ``info``; any other cache (a list, a dict, a namedtuple, an array) is returned as it is.

    Also records the cache's layout (type and length), the reference for :func:`require_cache`
    when a backward pass gets a cache without a mark. O(1): no array is copied.
    """
    is_tuple = type(cache) is tuple or isinstance(cache, LayerCache)
    layout = ("tuple", len(cache)) if is_tuple else _layout(cache)
    seen = _LAYOUTS.get(forward)
    if seen is None or (layout not in seen and len(seen) < _MAX_LAYOUTS):
        _LAYOUTS.setdefault(forward, set()).add(layout)
    return LayerCache(cache, forward, info) if is_tuple else cache


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def describe(value, depth: int = 1) -> str:
    """A short one-line description of ``value`` for an error message ("a tuple of 2 items (...)")."""
    if value is None:
        return "None"
    if isinstance(value, LayerCache):
        return f"the cache of {value.forward or 'a forward pass'} (a tuple of {len(value)} items)"
    if isinstance(value, np.ndarray):
        return f"an array of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        kind = "tuple" if type(value) is tuple else type(value).__name__
        text = f"{_article(kind)} of {len(value)} item{'s' if len(value) != 1 else ''}"
        if depth > 0 and 0 < len(value) <= 6:
            text += " (" + ", ".join(describe(v, depth - 1) for v in value) + ")"
        return text
    if isinstance(value, dict):
        return f"a dict of {len(value)} items"
    return _article(type(value).__name__)


def _refuse_cache(func: str, cache, forward: str, expected: str) -> None:
    got = describe(cache)
    hint = ""
    if isinstance(cache, (tuple, list)) and len(cache) == 2 and isinstance(cache[1], LayerCache):
        hint = (f"; that is the (out, cache) pair {cache[1].forward} returns: pass its second item"
                if cache[1].forward == forward else "")
    raise ValueError(f"{func}: cache must be the cache {forward} returned{expected}; got {got}{hint}")


def _rank_ok(arr, rank) -> bool:
    if not isinstance(arr, np.ndarray):
        return False
    if rank is None:
        return True
    if isinstance(rank, tuple):                     # (at least, at most or None)
        return arr.ndim >= rank[0] and (rank[1] is None or arr.ndim <= rank[1])
    return arr.ndim == rank


def require_cache(func: str, cache, forward: str, layout: str = "", ranks: tuple | None = None):
    """Return ``cache`` when it is the cache ``forward`` returned; else raise a one-line ``ValueError``
    naming ``func``, what was expected and what was got (``describe``).

    Cheap (O(1)): the type, length and ranks are checked, never the values. A cache marked by
    :func:`layer_cache` is accepted when the mark is ``forward`` and refused when it is another layer's.
    A cache without the mark (rebuilt by hand, ``tuple(cache)``) must have the given structure:

    - layout, ranks: the cache is a tuple of arrays, e.g. ``"(x, w, b)"`` and ``((2, None), 2, 1)``,
      one rank per item: an int, ``(at_least, at_most)`` (None: no bound) or None (any);
    - without them (the cache is whatever the forward's solution builds): the cache must have the
      type and length of a cache ``forward`` returned in this process (anything but None when it
      returned none yet).
    """
    if isinstance(cache, LayerCache):
        if cache.forward == forward:
            return cache
        ok = False
    elif ranks is not None:
        ok = (type(cache) in (tuple, list) and len(cache) == len(ranks)
              and all(_rank_ok(a, r) for a, r in zip(cache, ranks)))
    else:
        seen = _LAYOUTS.get(forward)
        ok = cache is not None and (not seen or _layout(cache) in seen)
    if ok:
        return cache
    if layout:
        expected = f" (a tuple {layout})"
    else:
        seen = sorted(_LAYOUTS.get(forward, ()), key=str)
        expected = (" (here " + " or ".join(describe_layout(*s) for s in seen) + ")") if seen else ""
    _refuse_cache(func, cache, forward, expected)


def describe_layout(kind: str, length: int | None) -> str:
    """``("tuple", 4)`` as "a tuple of 4 items"."""
    return _article(kind) + (f" of {length} item{'s' if length != 1 else ''}" if length is not None else "")


def require_array_cache(func: str, cache, forward: str, name: str = "x") -> np.ndarray:
    """Return ``cache`` when it is an array (the cache of a forward pass that keeps its input ``name``
    alone, as the ReLU does); else raise a one-line ``ValueError`` as :func:`require_cache` does."""
    if isinstance(cache, np.ndarray):
        return cache
    _refuse_cache(func, cache, forward, f" (the array {name})")


# --- memory: refuse at once what the machine cannot hold -------------------------------------------

MEMORY_FRACTION = 0.8            # of the memory available: the most one layer call may ask for
MEMORY_FALLBACK = 8 * 2**30      # bytes assumed available where the machine's figure cannot be read
MEMORY_UNCHECKED = 32 * 2**20    # needs up to this size are never checked (no file read on the hot path)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> tuple[int, str]:
    """``(bytes, source)``: the memory this process can still get, and where that figure comes from.

    On Linux, ``MemAvailable`` of ``/proc/meminfo`` (free memory plus the page cache the kernel can
    drop), capped by the memory limit of the container (cgroup v2 ``memory.max``, v1
    ``memory.limit_in_bytes``) where one is set: in a JupyterHub container the limit is what an
    allocation runs into (the kernel is killed, not given a MemoryError). Elsewhere (macOS) the
    machine's physical memory (``os.sysconf``), and where that cannot be read either,
    ``MEMORY_FALLBACK`` (8 GiB). Read afresh on every call: memory comes and goes.
    """
    figures = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    figures.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
                    break
    except (OSError, ValueError, IndexError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read_int(path)
        if limit is not None and limit < 2**60:     # cgroup v1 writes a huge number for "no limit"
            figures.append((limit, f"the container's limit in {path}"))
            break
    if not figures:
        try:
            figures.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "the machine's physical memory"))
        except (AttributeError, OSError, ValueError):
            figures.append((MEMORY_FALLBACK, "an assumed figure: the machine's memory could not be read"))
    return min(figures)


def memory_limit() -> tuple[int, int, str]:
    """``(limit, available, source)``: the most bytes one layer call may ask for, ``MEMORY_FRACTION``
    (80%) of :func:`available_memory` (the rest is left for the arrays the caller holds, the
    interpreter and the other processes), the figure it is a fraction of, and where that comes from."""
    available, source = available_memory()
    return int(MEMORY_FRACTION * available), available, source


def _gib(n: int) -> str:
    """``n`` bytes in GiB, 3 significant digits (MiB below 0.01 GiB, which no refusal reaches in use)."""
    g = n / 2**30
    if g >= 10:
        return f"{g:,.1f} GiB"
    return f"{g:.3g} GiB" if g >= 0.01 or n == 0 else f"{n / 2**20:.3g} MiB"


def nbytes(shape, itemsize) -> int:
    """The bytes of an array of ``shape`` whose items take ``itemsize`` bytes (an int, or a dtype), as a
    Python int (no overflow, whatever the shape)."""
    size = itemsize if type(itemsize) is int else np.dtype(itemsize).itemsize
    return math.prod(map(int, shape)) * size


def require_memory(func: str, need: int, explain) -> None:
    """Raise ``MemoryError`` at once, before anything is allocated, when a call of ``func`` would need
    more than :func:`memory_limit` bytes; ``need`` counts its outputs and its large temporaries
    (computed from the shapes and dtypes: O(1)).

    ``explain()`` returns ``(subject, detail)``, the input and its shape and what the memory is for;
    it is called only to write the error, so the hot path formats no string. One line names the
    function, the subject, the size needed in GiB, the detail and the limit. Needs up to
    ``MEMORY_UNCHECKED`` (32 MiB) are never checked, so that the small calls of a training loop read
    no file. Without this check NumPy gets such an allocation from an overcommitting kernel and fails,
    or is killed, only once it touches the pages, after tens of seconds and gigabytes of swapping.
    """
    if need <= MEMORY_UNCHECKED:
        return
    limit, available, source = memory_limit()
    if need > limit:
        subject, detail = explain()
        raise MemoryError(
            f"{func}: {subject} would need about {_gib(need)} ({detail}), more than the {_gib(limit)} one call "
            f"may use ({MEMORY_FRACTION:.0%} of the {_gib(available)} available, {source}); use a smaller batch"
        )

"""Data augmentation for the optional tuned runs of Q2 and Q3: random shifts of the training images.

A handwritten digit moved by a pixel or two is still the same digit, so every minibatch can show
the network slightly moved copies of its images: the network sees "new" digits every epoch and
overfits less. :func:`random_shifts` builds a batch sampler for :class:`hwlib.solver.Solver`::

    sampler = random_shifts(data["X_train"], data["y_train"], max_shift=2)
    solver = Solver(model, {**data, "num_train": len(data["y_train"])}, batch_sampler=sampler, ...)

Given code: nothing here is graded.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .validation import as_array, require

__all__ = ["random_shifts"]


def random_shifts(X, y, max_shift: int = 2):
    """A batch sampler ``(rng, batch_size) -> (X_batch, y_batch)`` drawing images with replacement,
    each moved by its own random offset of at most ``max_shift`` pixels in each direction.

    Inputs:
    - X: images of shape (N, C, H, W); the border that a shift uncovers takes the value of the
      images' background (their minimum), so normalised images stay normalised
    - y: labels of shape (N,)
    - max_shift: a non-negative int (0: no shift, the plain images)
    """
    X = as_array("random_shifts", "X", X)
    require(X.ndim == 4, "random_shifts", f"X must be images of shape (N, C, H, W); got shape {X.shape}")
    y = np.asarray(y)
    require(np.issubdtype(y.dtype, np.integer), "random_shifts", f"y must hold integer labels; got dtype {y.dtype}")
    require(y.shape == (X.shape[0],), "random_shifts", f"y must have shape ({X.shape[0]},), one label per image; "
            f"got shape {y.shape}")
    require(isinstance(max_shift, (int, np.integer)) and not isinstance(max_shift, bool) and max_shift >= 0,
            "random_shifts", f"max_shift must be an int >= 0; got {max_shift!r}")
    s = int(max_shift)
    H, W = X.shape[2:]
    padded = np.pad(X, ((0, 0), (0, 0), (s, s), (s, s)), constant_values=X.min())
    windows = sliding_window_view(padded, (H, W), axis=(2, 3))   # (N, C, 2s+1, 2s+1, H, W), no copy

    def sample(rng: np.random.Generator, batch_size: int):
        idx = rng.integers(0, len(y), size=batch_size)
        dy, dx = rng.integers(0, 2 * s + 1, size=(2, batch_size))
        return windows[idx, :, dy, dx], y[idx]

    return sample

"""The convolution operations and the convolutional layer's formulas, term by term (Q1.4 and Q6).

Given code, the one home of the definitions that notebooks 01 and 06, the tests and the grading
samples check ``hwlib.layers.conv_forward`` / ``conv_backward`` against. Indices from 0 here, from 1
in the notebooks' math.

On 2-D arrays: A (H, W), a kernel B (H', W') with H' <= H, W' <= W, and G (M, M').

* ``filt(A, B)``: filtering (cross-correlation, the kernel as stored), shape (H - H' + 1, W - W' + 1);
* ``valid(A, B)``: valid convolution, filtering with the kernel flipped in both axes;
* ``full(G, B)``: full convolution, G zero-padded by (H' - 1, W' - 1) on every side, then valid
  convolution: shape (M + H' - 1, M' + W' - 1).

On the layer (X (N, C, H, W), K (F, C, H', W'), stride 1, no padding, no bias), one 2-D slice at a
time, exactly as the formulas read:

* ``conv_by_definition(X, K)``: ``Y[n, f] = sum_c X[n, c] *filt K[f, c]``;
* ``dx_by_formula(dY, K)``: ``dX[n, c] = sum_f dY[n, f] *full K[f, c]``;
* ``dk_by_formula(X, dY)``: ``dK[f, c] = sum_n X[n, c] *filt dY[n, f]``.

They are written for reading, not for speed; ``scipy.signal`` (``correlate2d(mode="valid")``,
``convolve2d(mode="valid" / "full")``) computes the same three operations, which the notebooks
and tests use as an independent check.
"""

from __future__ import annotations

import numpy as np

__all__ = ["filt", "valid", "full", "conv_by_definition", "dx_by_formula", "dk_by_formula"]


# --- the three operations on 2-D arrays ----------------------------------------------------------

def filt(A, B):
    """A *filt B: the sum over kernel entries (p, q) of B[p, q] times A shifted by (p, q)."""
    A, B = np.asarray(A), np.asarray(B)
    Ho, Wo = A.shape[0] - B.shape[0] + 1, A.shape[1] - B.shape[1] + 1
    return sum(B[p, q] * A[p:p + Ho, q:q + Wo] for p in range(B.shape[0]) for q in range(B.shape[1]))


def valid(A, B):
    """A *valid B: filtering with B flipped in both axes (rotated by 180 degrees)."""
    return filt(A, np.asarray(B)[::-1, ::-1])


def full(G, B):
    """G *full B: G zero-padded by (H' - 1, W' - 1) on every side, then valid convolution with B."""
    B = np.asarray(B)
    return valid(np.pad(G, ((B.shape[0] - 1,) * 2, (B.shape[1] - 1,) * 2)), B)


# --- the layer and its gradients, one 2-D slice at a time ----------------------------------------

def conv_by_definition(X, K):
    """Y[n, f] = sum_c X[n, c] *filt K[f, c]: the output (N, F, H - H' + 1, W - W' + 1)."""
    N, C = X.shape[:2]
    F = K.shape[0]
    return np.array([[sum(filt(X[n, c], K[f, c]) for c in range(C)) for f in range(F)] for n in range(N)])


def dx_by_formula(dY, K):
    """dX[n, c] = sum_f dY[n, f] *full K[f, c]: the input gradient (N, C, H, W)."""
    N = dY.shape[0]
    F, C = K.shape[:2]
    return np.array([[sum(full(dY[n, f], K[f, c]) for f in range(F)) for c in range(C)] for n in range(N)])


def dk_by_formula(X, dY):
    """dK[f, c] = sum_n X[n, c] *filt dY[n, f]: the kernel gradient (F, C, H', W')."""
    N, C = X.shape[:2]
    F = dY.shape[1]
    return np.array([[sum(filt(X[n, c], dY[n, f]) for n in range(N)) for c in range(C)] for f in range(F)])

"""Feed-forward layers of Q1 and Q3: fully connected, ReLU, convolution, max-pooling, softmax loss.

Conventions (as in cs231n's ``layers.py``):

* one sample per row (row-major); shape letters N (batch), D (features), C (channels),
  F (filters), H/W (height/width), HH/WW (kernel or pool window);
* every ``*_forward`` returns ``(out, cache)``; every ``*_backward(dout, cache)`` returns the
  gradients in the order of the forward inputs;
* bad input raises ``ValueError`` naming the argument, the expected and the received shape.

Everything is vectorized: no Python loop over samples, channels, filters or output pixels.
The only loop (in ``conv_backward``) runs over the HH*WW kernel offsets, which is faster than
the alternatives for the kit's shapes (see ``bench/``).

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write; the
student release replaces each such region with ``raise NotImplementedError``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .validation import as_array, require, require_finite, require_labels, require_ndim

__all__ = [
    "fc_forward", "fc_backward",
    "relu_forward", "relu_backward",
    "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward",
    "softmax_loss",
]


# --- fully connected ---------------------------------------------------------------------------

def fc_forward(x, w, b):
    """Fully connected (affine) layer: ``out = x.reshape(N, D) @ w + b``.

    Inputs:
    - x: (N, d_1, ..., d_k) input; each sample is flattened to D = d_1 * ... * d_k values
    - w: (D, M) weights
    - b: (M,) biases

    Returns ``(out, cache)``: out (N, M); cache for ``fc_backward``.
    """
    x, w, b = as_array("fc_forward", "x", x), as_array("fc_forward", "w", w), as_array("fc_forward", "b", b)
    require(x.ndim >= 2, "fc_forward", f"x must have at least 2 dimensions (N, D) or (N, d_1, ..., d_k); got shape {x.shape}")
    require_ndim("fc_forward", "w", w, 2, "(D, M)")
    D = int(np.prod(x.shape[1:]))
    require(w.shape[0] == D, "fc_forward",
            f"w must have shape ({D}, M) to match x of shape {x.shape} (D = {D} features per sample); got shape {w.shape}")
    require(b.shape == (w.shape[1],), "fc_forward", f"b must have shape ({w.shape[1]},) to match w {w.shape}; got shape {b.shape}")
    ### BEGIN SOLUTION
    out = x.reshape(x.shape[0], D) @ w + b
    ### END SOLUTION
    cache = (x, w, b)
    return out, cache


def fc_backward(dout, cache):
    """Backward pass of ``fc_forward``.

    Inputs:
    - dout: (N, M) upstream gradient
    - cache: ``(x, w, b)`` from ``fc_forward``

    Returns ``(dx, dw, db)``: dx shaped like x (N, d_1, ..., d_k), dw (D, M), db (M,).
    """
    x, w, b = cache
    dout = as_array("fc_backward", "dout", dout)
    require(dout.shape == (x.shape[0], w.shape[1]), "fc_backward",
            f"dout must have shape {(x.shape[0], w.shape[1])} (the forward output); got shape {dout.shape}")
    ### BEGIN SOLUTION
    x_flat = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape)
    dw = x_flat.T @ dout
    db = dout.sum(axis=0)
    ### END SOLUTION
    return dx, dw, db


# --- ReLU ----------------------------------------------------------------------------------------

def relu_forward(x):
    """Rectified linear unit, element-wise ``max(0, x)`` for an input of any shape.

    Returns ``(out, cache)``: out shaped like x; cache for ``relu_backward``.
    """
    x = as_array("relu_forward", "x", x)
    ### BEGIN SOLUTION
    out = np.maximum(x, 0)
    ### END SOLUTION
    cache = x
    return out, cache


def relu_backward(dout, cache):
    """Backward pass of ``relu_forward``: the gradient flows where ``x > 0`` (0 at the kink).

    Returns dx shaped like x.
    """
    x = cache
    dout = as_array("relu_backward", "dout", dout)
    require(dout.shape == x.shape, "relu_backward", f"dout must have shape {x.shape} (the forward input); got shape {dout.shape}")
    ### BEGIN SOLUTION
    dx = dout * (x > 0)
    ### END SOLUTION
    return dx


# --- convolution ---------------------------------------------------------------------------------

def conv_forward(x, w):
    """Convolutional layer (stride 1, no padding, no bias), by filtering.

    ``Y[n, f] = sum_c X[n, c] *filt K[f, c]``: filtering (cross-correlation) of each input channel
    with the kernel as stored, i.e. valid convolution with the kernel flipped in both axes.

    Inputs:
    - x: (N, C, H, W) input
    - w: (F, C, HH, WW) kernels, HH <= H and WW <= W

    Returns ``(out, cache)``: out (N, F, H - HH + 1, W - WW + 1); cache for ``conv_backward``.
    """
    x, w = as_array("conv_forward", "x", x), as_array("conv_forward", "w", w)
    require_ndim("conv_forward", "x", x, 4, "(N, C, H, W)")
    require_ndim("conv_forward", "w", w, 4, "(F, C, HH, WW)")
    N, C, H, W = x.shape
    F, Cw, HH, WW = w.shape
    require(Cw == C, "conv_forward", f"w must have {C} channels to match x {x.shape}: expected shape ({F}, {C}, {HH}, {WW}); got shape {w.shape}")
    require(HH <= H and WW <= W, "conv_forward",
            f"kernel w {w.shape} is larger than the image x {x.shape}: need HH <= H and WW <= W")
    ### BEGIN SOLUTION
    Ho, Wo = H - HH + 1, W - WW + 1
    # im2col through a strided view: cols[n, (c, i, j), (y, x)] = x[n, c, y + i, x + j].
    windows = sliding_window_view(x, (HH, WW), axis=(2, 3))          # (N, C, Ho, Wo, HH, WW), no copy
    cols = np.ascontiguousarray(windows.transpose(0, 1, 4, 5, 2, 3)).reshape(N, C * HH * WW, Ho * Wo)
    w_mat = w.reshape(F, C * HH * WW)
    out = np.matmul(w_mat, cols).reshape(N, F, Ho, Wo)              # one GEMM per sample, batched
    cache = (x.shape, w, cols)
    ### END SOLUTION
    return out, cache


def conv_backward(dout, cache):
    """Backward pass of ``conv_forward``.

    ``dX[n, c] = sum_f dY[n, f] *full K[f, c]`` and ``dK[f, c] = sum_n X[n, c] *filt dY[n, f]``.

    Inputs:
    - dout: (N, F, H', W') upstream gradient
    - cache: from ``conv_forward``

    Returns ``(dx, dw)``: dx (N, C, H, W), dw (F, C, HH, WW).
    """
    dout = as_array("conv_backward", "dout", dout)
    require_ndim("conv_backward", "dout", dout, 4, "(N, F, H', W')")
    ### BEGIN SOLUTION
    x_shape, w, cols = cache
    N, C, H, W = x_shape
    F, _, HH, WW = w.shape
    Ho, Wo = H - HH + 1, W - WW + 1
    require(dout.shape == (N, F, Ho, Wo), "conv_backward",
            f"dout must have shape {(N, F, Ho, Wo)} (the forward output); got shape {dout.shape}")
    dout_mat = dout.reshape(N, F, Ho * Wo)
    # dK = sum_n X[n] *filt dY[n]: the filtering is the product with the im2col matrix.
    dw = np.matmul(dout_mat, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    # dX = sum_f dY[n, f] *full K[f, c]: each output pixel sends dY * K back to the HH x WW
    # pixels it read; summing those shifted copies is the full convolution.
    dcols = np.matmul(w.reshape(F, C * HH * WW).T, dout_mat).reshape(N, C, HH, WW, Ho, Wo)
    dx = np.zeros(x_shape, dtype=np.result_type(dout, w))
    for i in range(HH):
        for j in range(WW):
            dx[:, :, i:i + Ho, j:j + Wo] += dcols[:, :, i, j]
    ### END SOLUTION
    return dx, dw


# --- max-pooling ---------------------------------------------------------------------------------

def _pool_geometry(func, x_shape, pool_param):
    """Validate ``pool_param`` against an input shape; return (HH, WW, stride, Ho, Wo)."""
    if not isinstance(pool_param, dict):
        raise ValueError(f"{func}: pool_param must be a dict with keys pool_height, pool_width, stride; got {type(pool_param).__name__}")
    missing = [k for k in ("pool_height", "pool_width", "stride") if k not in pool_param]
    require(not missing, func, f"pool_param is missing {missing}; expected keys pool_height, pool_width, stride")
    HH, WW, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    for key, v in (("pool_height", HH), ("pool_width", WW), ("stride", S)):
        require(isinstance(v, (int, np.integer)) and v >= 1, func, f"pool_param['{key}'] must be a positive integer; got {v!r}")
    _, _, H, W = x_shape
    require(HH <= H and WW <= W, func, f"pool window ({HH}, {WW}) does not fit in x of shape {tuple(x_shape)}: need pool_height <= H and pool_width <= W")
    require((H - HH) % S == 0 and (W - WW) % S == 0, func,
            f"pool window ({HH}, {WW}) with stride {S} does not tile x of shape {tuple(x_shape)}: "
            f"(H - pool_height) and (W - pool_width) must be multiples of the stride, got {H - HH} and {W - WW}")
    return int(HH), int(WW), int(S), (H - HH) // S + 1, (W - WW) // S + 1


def max_pool_forward(x, pool_param):
    """Max-pooling over HH x WW windows moved by ``stride`` (windows may tile or overlap).

    Inputs:
    - x: (N, C, H, W) input
    - pool_param: dict with ``pool_height``, ``pool_width``, ``stride``; the windows must fit:
      ``(H - pool_height)`` and ``(W - pool_width)`` multiples of the stride

    Returns ``(out, cache)``: out (N, C, H', W') with ``H' = (H - pool_height) // stride + 1``.
    """
    x = as_array("max_pool_forward", "x", x)
    require_ndim("max_pool_forward", "x", x, 4, "(N, C, H, W)")
    HH, WW, S, Ho, Wo = _pool_geometry("max_pool_forward", x.shape, pool_param)
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    if S == HH == WW:
        # Non-overlapping windows: a reshape exposes them without copying.
        out = x.reshape(N, C, Ho, HH, Wo, WW).max(axis=(3, 5))
    else:
        out = sliding_window_view(x, (HH, WW), axis=(2, 3))[:, :, ::S, ::S].max(axis=(4, 5))
    cache = (x, (HH, WW, S, Ho, Wo))
    ### END SOLUTION
    return out, cache


def max_pool_backward(dout, cache):
    """Backward pass of ``max_pool_forward``.

    Each window's gradient goes to the position of its maximum (the first one in row-major order
    when several entries tie, as PyTorch does); overlapping windows add up.

    Returns dx (N, C, H, W).
    """
    dout = as_array("max_pool_backward", "dout", dout)
    ### BEGIN SOLUTION
    x, (HH, WW, S, Ho, Wo) = cache
    N, C, H, W = x.shape
    require(dout.shape == (N, C, Ho, Wo), "max_pool_backward",
            f"dout must have shape {(N, C, Ho, Wo)} (the forward output); got shape {dout.shape}")
    dtype = np.result_type(dout, x)
    if S == HH == WW:
        windows = x.reshape(N, C, Ho, HH, Wo, WW).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, Ho, Wo, HH * WW)
        first_max = windows.argmax(axis=-1)
        dwin = (np.arange(HH * WW) == first_max[..., None]) * dout[..., None].astype(dtype, copy=False)
        dx = dwin.reshape(N, C, Ho, Wo, HH, WW).transpose(0, 1, 2, 4, 3, 5).reshape(N, C, H, W)
    else:
        windows = sliding_window_view(x, (HH, WW), axis=(2, 3))[:, :, ::S, ::S].reshape(N, C, Ho, Wo, HH * WW)
        first_max = windows.argmax(axis=-1)
        # Flat index of each window's maximum in its (H, W) plane, then one scatter-add per plane.
        rows = np.arange(Ho)[:, None] * S + first_max // WW
        cols = np.arange(Wo)[None, :] * S + first_max % WW
        plane = (np.arange(N * C) * (H * W)).reshape(N, C, 1, 1)
        flat = (plane + rows * W + cols).ravel()
        dx = np.bincount(flat, weights=dout.ravel(), minlength=N * C * H * W).astype(dtype, copy=False).reshape(N, C, H, W)
    ### END SOLUTION
    return dx


# --- softmax loss --------------------------------------------------------------------------------

def softmax_loss(x, y):
    """Softmax cross-entropy loss averaged over the batch, and its gradient.

    Inputs:
    - x: (N, C) class scores (any magnitude: the computation is shifted by the row maximum)
    - y: (N,) integer labels, 0 <= y[i] < C

    Returns ``(loss, dx)``: loss a float, dx (N, C).
    """
    x = as_array("softmax_loss", "x", x)
    require_ndim("softmax_loss", "x", x, 2, "(N, C)")
    require(x.shape[0] > 0 and x.shape[1] > 0, "softmax_loss", f"x must have at least one sample and one class; got shape {x.shape}")
    require_finite("softmax_loss", "x", x)
    y = require_labels("softmax_loss", "y", y, x.shape[0], x.shape[1])
    ### BEGIN SOLUTION
    N = x.shape[0]
    shifted = x - x.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(N), y].mean())
    dx = np.exp(log_probs)
    dx[np.arange(N), y] -= 1
    dx /= N
    ### END SOLUTION
    return loss, dx

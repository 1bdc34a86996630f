"""Feed-forward layers of Q1 and Q3: fully connected, ReLU, convolution, max-pooling, softmax loss.

Conventions (as in cs231n's ``layers.py``):

* one sample per row (row-major); shape letters N (batch), D (features), C (channels),
  F (filters), H/W (height/width), HH/WW (kernel or pool window);
* every ``*_forward`` returns ``(out, cache)``; every ``*_backward(dout, cache)`` returns the
  gradients in the order of the forward inputs;
* bad input raises ``ValueError`` naming the argument, the expected and the received shape: a
  complex, string or object array, a bool where an integer is expected, a cache from another layer
  (every ``*_backward`` checks its cache first); a call that would need more memory than the
  machine has raises ``MemoryError`` at once, before allocating anything (``hwlib.validation``).

Vectorize: no Python loop over samples, channels, filters or output pixels. A loop over the few
offsets of a kernel or a pooling window, each step one whole-array operation, is fine (and fast).

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write; the
student release replaces each such region with ``raise NotImplementedError``.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view  # noqa: F401  (for students: im2col by strided views)

from .validation import (as_array, layer_cache, nbytes, positive_int, require, require_array_cache, require_cache,
                         require_finite, require_labels, require_memory, require_ndim)

__all__ = [
    "NoGrad", "no_grad",
    "fc_forward", "fc_backward",
    "relu_forward", "relu_backward",
    "conv_forward", "conv_backward",
    "max_pool_forward", "max_pool_backward",
    "softmax_loss",
]


# --- inputs whose gradient nobody needs -----------------------------------------------------------

class NoGrad(np.ndarray):
    """An array whose gradient nobody needs, such as the images fed to a network: ``no_grad(X)``.

    A layer's backward pass may skip the gradient of such an input and return None in its place,
    as PyTorch does for a tensor without ``requires_grad`` (for the first layer of a network that
    is a third of the backward pass's work); computing it anyway is right too. The mark is the
    array's type and nothing else: the values are X's, and arithmetic on it gives plain arrays.
    """

    def __array_wrap__(self, array, context=None, return_scalar=False):
        array = np.asarray(array)
        return array[()] if return_scalar else array


def no_grad(x) -> NoGrad:
    """``x`` marked as an input whose gradient nobody needs (a view of it: no copy)."""
    return np.asarray(x).view(NoGrad)


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
    # The output, twice (the product and the sum), and a copy of x if it cannot be flattened in place.
    # (Every input is floating: the result's items are the widest of theirs.)
    size = max(x.itemsize, w.itemsize, b.itemsize)
    require_memory("fc_forward", 2 * nbytes((x.shape[0], w.shape[1]), size) + (0 if x.flags.c_contiguous else nbytes(x.shape, size)),
                   lambda: (f"x of shape {x.shape} and w of shape {w.shape}", f"the output ({x.shape[0]}, {w.shape[1]}) "
                            f"{np.result_type(x, w, b)}" + ("" if x.flags.c_contiguous else " and a flattened copy of x")))
    ### BEGIN SOLUTION
    out = x.reshape(x.shape[0], D) @ w + b
    ### END SOLUTION
    cache = layer_cache("fc_forward", (x, w, b))
    return out, cache


def fc_backward(dout, cache):
    """Backward pass of ``fc_forward``.

    Inputs:
    - dout: (N, M) upstream gradient
    - cache: ``(x, w, b)`` from ``fc_forward``

    Returns ``(dx, dw, db)``: dx shaped like x (N, d_1, ..., d_k), dw (D, M), db (M,). dx may be
    None when x was marked ``no_grad(x)``.
    """
    x, w, b = require_cache("fc_backward", cache, "fc_forward", "(x, w, b)", ((2, None), 2, 1))
    dout = as_array("fc_backward", "dout", dout)
    require(dout.shape == (x.shape[0], w.shape[1]), "fc_backward",
            f"dout must have shape {(x.shape[0], w.shape[1])} (the forward output); got shape {dout.shape}")
    size = max(dout.itemsize, x.itemsize, w.itemsize)
    require_memory("fc_backward", nbytes(x.shape, size) * (1 if x.flags.c_contiguous else 2) + nbytes(w.shape, size),
                   lambda: (f"dout of shape {dout.shape} and x of shape {x.shape} (from the cache)",
                            f"dx {x.shape} and dw {w.shape}, {np.result_type(dout, x, w)}"))
    ### BEGIN SOLUTION
    x_flat = x.reshape(x.shape[0], -1)
    dx = None if isinstance(x, NoGrad) else (dout @ w.T).reshape(x.shape)
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
    require_memory("relu_forward", nbytes(x.shape, x.itemsize), lambda: (f"x of shape {x.shape}", f"the output, {x.dtype}"))
    ### BEGIN SOLUTION
    out = np.maximum(x, 0)
    ### END SOLUTION
    cache = x
    return out, cache


def relu_backward(dout, cache):
    """Backward pass of ``relu_forward``: the gradient flows where ``x > 0`` (0 at the kink).

    Returns dx shaped like x.
    """
    x = require_array_cache("relu_backward", cache, "relu_forward", "x")
    dout = as_array("relu_backward", "dout", dout)
    require(dout.shape == x.shape, "relu_backward", f"dout must have shape {x.shape} (the forward input); got shape {dout.shape}")
    require_memory("relu_backward", nbytes(x.shape, max(dout.itemsize, x.itemsize) + 1),
                   lambda: (f"dout of shape {dout.shape}", f"dx, {np.result_type(dout, x)}, and the mask x > 0"))
    ### BEGIN SOLUTION
    dx = dout * (x > 0)
    ### END SOLUTION
    return dx


# --- convolution ---------------------------------------------------------------------------------

def _conv_bytes(x_shape, w_shape, itemsize: int) -> int:
    """The bytes a convolution pass by im2col allocates at once: the input-sized array (a copy of x,
    or dx), the output-sized one (the output, or a copy of dout) and the im2col matrix (or its gradient)."""
    (N, C, H, W), (F, _, HH, WW) = x_shape, w_shape
    Ho, Wo = H - HH + 1, W - WW + 1
    return nbytes((N, C, H, W), itemsize) + nbytes((N, F, Ho, Wo), itemsize) + nbytes((C * HH * WW, Ho * Wo * N), itemsize)


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
    size = max(x.itemsize, w.itemsize)
    require_memory("conv_forward", _conv_bytes((N, C, H, W), (F, C, HH, WW), size), lambda: (
        f"x of shape {x.shape} and w of shape {w.shape}",
        f"the output ({N}, {F}, {H - HH + 1}, {W - WW + 1}), the im2col matrix ({C * HH * WW}, {(H - HH + 1) * (W - WW + 1) * N}) "
        f"and a copy of x, {np.result_type(x, w)}"))
    ### BEGIN SOLUTION
    Ho, Wo = H - HH + 1, W - WW + 1
    dtype = np.result_type(x, w)
    # im2col: cols[(c, i, j), (y, x, n)] = x[n, c, y + i, x + j], so that a single matrix product
    # K (F, C*HH*WW) @ cols computes the whole batch: one large product runs much faster than N
    # small ones, whose BLAS calls cost more to start than to run at these sizes.
    # The sample index n goes last (innermost): then the window of each kernel offset (i, j) is,
    # for each (c, y), one contiguous run of Wo*N numbers instead of N runs of Wo, and the strided
    # copy below (one per kernel offset) runs several times faster.
    x_t = np.ascontiguousarray(x.transpose(1, 2, 3, 0), dtype=dtype)           # (C, H, W, N)
    cols = np.empty((C, HH, WW, Ho, Wo, N), dtype=dtype)
    for i in range(HH):
        for j in range(WW):
            cols[:, i, j] = x_t[:, i:i + Ho, j:j + Wo]
    cols = cols.reshape(C * HH * WW, Ho * Wo * N)
    out = w.reshape(F, C * HH * WW).astype(dtype, copy=False) @ cols          # (F, Ho*Wo*N)
    # Returned as an (N, F, Ho, Wo) view of the product, without copying it back to row-major: the
    # ReLU and the pooling that follow keep this layout (the batch innermost, where their strided
    # windows leave it contiguous), and conv_backward gets its dout in the layout it needs.
    out = out.reshape(F, Ho, Wo, N).transpose(3, 0, 1, 2)
    cache = (x.shape, w, cols, not isinstance(x, NoGrad))
    ### END SOLUTION
    cache = layer_cache("conv_forward", cache, x_shape=(N, C, H, W), w_shape=(F, C, HH, WW), itemsize=size)
    return out, cache


def conv_backward(dout, cache):
    """Backward pass of ``conv_forward``.

    ``dX[n, c] = sum_f dY[n, f] *full K[f, c]`` and ``dK[f, c] = sum_n X[n, c] *filt dY[n, f]``.

    Inputs:
    - dout: (N, F, H', W') upstream gradient
    - cache: from ``conv_forward``

    Returns ``(dx, dw)``: dx (N, C, H, W), dw (F, C, HH, WW). dx may be None when x was marked
    ``no_grad(x)``.
    """
    cache = require_cache("conv_backward", cache, "conv_forward")
    dout = as_array("conv_backward", "dout", dout)
    require_ndim("conv_backward", "dout", dout, 4, "(N, F, H', W')")
    info = getattr(cache, "info", None)
    if info:   # the shapes of the forward pass: dout (a copy), dx and the im2col-sized gradient
        require_memory("conv_backward", _conv_bytes(info["x_shape"], info["w_shape"], max(dout.itemsize, info["itemsize"])),
                       lambda: (f"dout of shape {dout.shape} and x of shape {info['x_shape']} (from the cache)",
                                "dx, a copy of dout and the im2col-sized gradient"))
    ### BEGIN SOLUTION
    x_shape, w, cols, needs_dx = cache
    N, C, H, W = x_shape
    F, _, HH, WW = w.shape
    Ho, Wo = H - HH + 1, W - WW + 1
    require(dout.shape == (N, F, Ho, Wo), "conv_backward",
            f"dout must have shape {(N, F, Ho, Wo)} (the forward output); got shape {dout.shape}")
    dtype = np.result_type(dout, cols)
    # dY laid out like the columns of cols: dout_mat[f, (y, x, n)] = dout[n, f, y, x] (no copy when
    # dout comes back in the layout of the forward output).
    dout_mat = np.ascontiguousarray(dout.transpose(1, 2, 3, 0), dtype=dtype).reshape(F, Ho * Wo * N)
    # dK = sum_n X[n] *filt dY[n]: the filtering is the product with the im2col matrix.
    dw = (dout_mat @ cols.T).reshape(w.shape)
    if not needs_dx:
        return None, dw
    # dX = sum_f dY[n, f] *full K[f, c]: each output pixel sends dY * K back to the HH x WW pixels
    # it read. dcols = K^T @ dY holds those contributions, one row (c, i, j) per kernel offset;
    # adding up the rows, each shifted by its offset (col2im), is the full convolution. As in the
    # forward pass, n innermost makes each shifted add one long contiguous run per (c, y).
    dcols = (w.reshape(F, C * HH * WW).T.astype(dtype, copy=False) @ dout_mat).reshape(C, HH, WW, Ho, Wo, N)
    dx_t = np.zeros((C, H, W, N), dtype=dtype)
    for i in range(HH):
        for j in range(WW):
            dx_t[:, i:i + Ho, j:j + Wo] += dcols[:, i, j]
    dx = dx_t.transpose(3, 0, 1, 2)                                          # (N, C, H, W) view
    ### END SOLUTION
    return dx, dw


# --- max-pooling ---------------------------------------------------------------------------------

def _pool_geometry(func, x_shape, pool_param):
    """Validate ``pool_param`` against an input shape; return (HH, WW, stride, Ho, Wo)."""
    if not isinstance(pool_param, dict):
        raise ValueError(f"{func}: pool_param must be a dict with keys pool_height, pool_width, stride; got {type(pool_param).__name__}")
    missing = [k for k in ("pool_height", "pool_width", "stride") if k not in pool_param]
    require(not missing, func, f"pool_param is missing {missing}; expected keys pool_height, pool_width, stride")
    HH, WW, S = (positive_int(func, f"pool_param['{key}']", pool_param[key]) for key in ("pool_height", "pool_width", "stride"))
    _, _, H, W = x_shape
    require(HH <= H and WW <= W, func, f"pool window ({HH}, {WW}) does not fit in x of shape {tuple(x_shape)}: need pool_height <= H and pool_width <= W")
    require((H - HH) % S == 0 and (W - WW) % S == 0, func,
            f"pool window ({HH}, {WW}) with stride {S} does not tile x of shape {tuple(x_shape)}: "
            f"(H - pool_height) and (W - pool_width) must be multiples of the stride, got {H - HH} and {W - WW}")
    return int(HH), int(WW), int(S), (H - HH) // S + 1, (W - WW) // S + 1


def _pool_bytes(x_shape, itemsize: int, geometry) -> int:
    """The bytes max-pooling's forward pass allocates at once: the output (and its row-major copy)
    and two masks of one byte per window entry; with overlapping windows also the maxima along the
    rows, (N, C, H, Wo), and their masks."""
    (N, C, H, _), (HH, WW, S, Ho, Wo) = x_shape, geometry
    out = nbytes((N, C, Ho, Wo), itemsize)
    if S >= HH and S >= WW:
        return 2 * out + 2 * HH * WW * nbytes((N, C, Ho, Wo), 1)
    rows = nbytes((N, C, H, Wo), itemsize)
    return 2 * out + rows + 2 * WW * nbytes((N, C, H, Wo), 1) + 2 * HH * nbytes((N, C, Ho, Wo), 1)


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
    N, C, H, W = x.shape
    require_memory("max_pool_forward", _pool_bytes(x.shape, x.itemsize, (HH, WW, S, Ho, Wo)), lambda: (
        f"x of shape {x.shape}", f"the output ({N}, {C}, {Ho}, {Wo}) {x.dtype} and the masks of the window maxima"))
    ### BEGIN SOLUTION
    # The maximum over a window is taken offset by offset on strided views (no copies): the view of
    # offset (i, j) holds, for every window, its entry in row i, column j. Alongside it we record
    # which offset held the first maximum, all the backward pass needs.
    def first_max(views):
        """Element-wise maximum of ``views`` and, per view, the mask of where it holds the first
        maximum (on ties the earliest view wins, as in PyTorch)."""
        if len(views) == 1:
            return views[0].copy(), [np.ones(views[0].shape, dtype=bool)]
        gains = [views[1] > views[0]]               # gains[k - 1]: views[k] beats all of views[:k]
        best = np.maximum(views[0], views[1])
        for view in views[2:]:
            gains.append(view > best)               # strict: a tie keeps the earlier offset
            np.maximum(best, view, out=best)
        firsts, later = [None] * len(views), gains[-1]   # later: some view after k beat those before it
        firsts[-1] = gains[-1]
        for k in range(len(views) - 2, 0, -1):
            firsts[k] = gains[k - 1] & ~later
            later = later | gains[k - 1]
        firsts[0] = ~later
        return best, firsts

    if S >= HH and S >= WW:
        # Windows that do not overlap (the usual 2x2 pooling with stride 2): one pass over the
        # HH * WW offsets in row-major order, so the first maximum is the one of the earliest offset.
        out, firsts = first_max([x[:, :, i:i + S * (Ho - 1) + 1:S, j:j + S * (Wo - 1) + 1:S]
                                 for i in range(HH) for j in range(WW)])
        masks = (firsts, None)
    else:
        # Overlapping windows share their entries: two passes compare each entry fewer times. The
        # first maximum of a window lies in the first row holding its maximum, at that row's first
        # maximum. Pass 1, along the width: for every row of x, the maximum over each window's WW
        # columns; pass 2, along the height: the maximum of those over each window's HH rows.
        row_max, col_first = first_max([x[:, :, :, j:j + S * (Wo - 1) + 1:S] for j in range(WW)])  # (N, C, H, Wo)
        out, row_first = first_max([row_max[:, :, i:i + S * (Ho - 1) + 1:S] for i in range(HH)])   # (N, C, Ho, Wo)
        masks = (col_first, row_first)
    cache = (x.shape, x.dtype, (HH, WW, S, Ho, Wo)) + masks
    # The output row-major, whatever the layout of x: the fully connected layer that usually follows
    # flattens it per sample, which is free on a row-major array.
    out = np.ascontiguousarray(out)
    ### END SOLUTION
    cache = layer_cache("max_pool_forward", cache, x_shape=(N, C, H, W), itemsize=x.itemsize, geometry=(HH, WW, S, Ho, Wo))
    return out, cache


def max_pool_backward(dout, cache):
    """Backward pass of ``max_pool_forward``.

    Each window's gradient goes to the position of its maximum (the first one in row-major order
    when several entries tie, as PyTorch does); overlapping windows add up.

    Returns dx (N, C, H, W).
    """
    cache = require_cache("max_pool_backward", cache, "max_pool_forward")
    dout = as_array("max_pool_backward", "dout", dout)
    info = getattr(cache, "info", None)
    if info:   # dx, dout in the layout of x and, for overlapping windows, the gradient between the two passes
        size = max(dout.itemsize, info["itemsize"])
        N, C, H, W = info["x_shape"]
        HH, WW, S, Ho, Wo = info["geometry"]
        need = nbytes((N, C, H, W), size) + 2 * nbytes((N, C, Ho, Wo), size)
        if S < HH or S < WW:
            need += nbytes((N, C, H, Wo), size)
        require_memory("max_pool_backward", need, lambda: (
            f"dout of shape {dout.shape} and x of shape {info['x_shape']} (from the cache)", "dx and a copy of dout"))
    ### BEGIN SOLUTION
    x_shape, x_dtype, (HH, WW, S, Ho, Wo), col_first, row_first = cache
    N, C, H, W = x_shape
    require(dout.shape == (N, C, Ho, Wo), "max_pool_backward",
            f"dout must have shape {(N, C, Ho, Wo)} (the forward output); got shape {dout.shape}")
    dtype = np.result_type(dout, x_dtype)

    def like_x(shape, zeroed=True):
        """An array in the memory layout of the forward input (the masks have it): the products
        below then run over matching strides."""
        return (np.zeros_like if zeroed else np.empty_like)(col_first[0], dtype, shape=shape)

    if row_first is None:
        # Windows did not overlap: col_first holds one mask per offset (i, j), and the slots of
        # different offsets are disjoint. Entries in no window (stride > size) keep their zero;
        # windows that tile x (stride = size) assign every entry once, so no zeroing is needed.
        dx = like_x((N, C, H, W), zeroed=not (S == HH and S == WW))
        dout_x = np.empty_like(col_first[0], dtype)          # dout in the layout of x: one copy
        dout_x[...] = dout
        for k, first in enumerate(col_first):
            i, j = divmod(k, WW)
            np.multiply(dout_x, first, out=dx[:, :, i:i + S * (Ho - 1) + 1:S, j:j + S * (Wo - 1) + 1:S])
        return dx

    def scatter(grad, firsts, shape, axis):
        """Undo one pass of the forward: send ``grad`` to the offset (along ``axis``) that held the
        first maximum. The slots of one offset never overlap, so they are assigned; those of later
        offsets add up where windows overlap (stride < size). Elements in no window (stride > size)
        keep a zero; where windows tile (stride == size) every element is assigned exactly once."""
        size = len(firsts)
        target = like_x(shape, zeroed=size != S)
        index = [slice(None)] * 4
        for k, first in enumerate(firsts):
            index[axis] = slice(k, k + S * (grad.shape[axis] - 1) + 1, S)
            slot = target[tuple(index)]
            if k == 0 or S >= size:
                np.multiply(grad, first, out=slot)
            else:
                slot += grad * first
        return target

    d_row_max = scatter(dout, row_first, (N, C, H, Wo), axis=2)      # undo pass 2 (rows)
    dx = scatter(d_row_max, col_first, (N, C, H, W), axis=3)         # undo pass 1 (columns)
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
    require_memory("softmax_loss", 4 * nbytes(x.shape, x.itemsize),
                   lambda: (f"x of shape {x.shape}", f"dx and three temporaries of its size, {x.dtype}"))
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

"""Recurrent layers of Q4: a vanilla (tanh) RNN, word embeddings, temporal affine and softmax loss.

Shape letters: N (batch), T (time steps), D (input size), H (hidden size), V (vocabulary
size), M (output size).

Layouts, as in the seed:

* the RNN is **time-major**: ``rnn_forward`` takes x of shape (T, N, D) and returns h of shape
  (T, N, H), like ``torch.nn.RNN(batch_first=False)``;
* word embeddings, the temporal affine layer and the temporal softmax loss are **batch-major**:
  (N, T, ...), like the captions they work on. The model transposes at the boundary.

Every ``*_forward`` returns ``(out, cache)``; every ``*_backward(dout, cache)`` returns the
gradients in the order of the forward inputs. Bad input raises ``ValueError`` naming the
argument, the expected and the received shape; every ``*_backward`` first checks that its cache is
the one its forward pass returned (``hwlib.validation.require_cache``).

Vectorized over the batch everywhere, and over time wherever the math allows: the embeddings,
the temporal affine layer, the loss, and the RNN's input projections ``x[t] @ Wx`` for all t
at once. Only the recurrence itself loops over time (h[t] needs h[t - 1]).

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write; the
student release replaces each such region with ``raise NotImplementedError``.
"""

from __future__ import annotations

import numpy as np

from .validation import as_array, layer_cache, require, require_cache, require_finite, require_ids, require_ndim

__all__ = [
    "rnn_step_forward", "rnn_step_backward",
    "rnn_forward", "rnn_backward",
    "word_embedding_forward", "word_embedding_backward",
    "temporal_fc_forward", "temporal_fc_backward",
    "temporal_softmax_loss",
]


def _require_shape(func: str, name: str, arr: np.ndarray, shape: tuple, why: str) -> None:
    require(tuple(arr.shape) == tuple(shape), func, f"{name} must have shape {tuple(shape)} {why}; got shape {tuple(arr.shape)}")


def _rnn_weights(func: str, Wx, Wh, b, D: int):
    """Validate the RNN weights against an input size D; return them as arrays and H."""
    Wx, Wh, b = as_array(func, "Wx", Wx), as_array(func, "Wh", Wh), as_array(func, "b", b)
    require_ndim(func, "Wx", Wx, 2, "(D, H)")
    H = Wx.shape[1]
    _require_shape(func, "Wx", Wx, (D, H), f"(D, H) to match the input size D = {D}")
    _require_shape(func, "Wh", Wh, (H, H), f"(H, H) with H = {H} from Wx {Wx.shape}")
    _require_shape(func, "b", b, (H,), f"(H,) with H = {H} from Wx {Wx.shape}")
    return Wx, Wh, b, H


# --- one RNN step --------------------------------------------------------------------------------

def rnn_step_forward(x, prev_h, Wx, Wh, b):
    """One time step of a vanilla RNN with a tanh activation.

    ``next_h = tanh(x @ Wx + prev_h @ Wh + b)``

    Inputs:
    - x: (N, D) input at this time step
    - prev_h: (N, H) hidden state of the previous time step
    - Wx: (D, H) input-to-hidden weights
    - Wh: (H, H) hidden-to-hidden weights
    - b: (H,) biases

    Returns ``(next_h, cache)``: next_h (N, H); cache for ``rnn_step_backward``.
    """
    func = "rnn_step_forward"
    x, prev_h = as_array(func, "x", x), as_array(func, "prev_h", prev_h)
    require_ndim(func, "x", x, 2, "(N, D)")
    N, D = x.shape
    Wx, Wh, b, H = _rnn_weights(func, Wx, Wh, b, D)
    _require_shape(func, "prev_h", prev_h, (N, H), f"(N, H) with N = {N} from x {x.shape} and H = {H} from Wx {Wx.shape}")
    ### BEGIN SOLUTION
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    ### END SOLUTION
    cache = layer_cache("rnn_step_forward", (x, prev_h, Wx, Wh, next_h))
    return next_h, cache


def rnn_step_backward(dnext_h, cache):
    """Backward pass of ``rnn_step_forward``.

    Inputs:
    - dnext_h: (N, H) upstream gradient with respect to next_h
    - cache: ``(x, prev_h, Wx, Wh, next_h)`` from ``rnn_step_forward``

    Returns ``(dx, dprev_h, dWx, dWh, db)``: dx (N, D), dprev_h (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x, prev_h, Wx, Wh, next_h = require_cache("rnn_step_backward", cache, "rnn_step_forward",
                                              "(x, prev_h, Wx, Wh, next_h)", (2, 2, 2, 2, 2))
    dnext_h = as_array("rnn_step_backward", "dnext_h", dnext_h)
    _require_shape("rnn_step_backward", "dnext_h", dnext_h, next_h.shape, "(N, H), the shape of next_h")
    ### BEGIN SOLUTION
    da = dnext_h * (1 - next_h ** 2)  # tanh'(a) = 1 - tanh(a)^2, with tanh(a) = next_h
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    ### END SOLUTION
    return dx, dprev_h, dWx, dWh, db


# --- a whole sequence ----------------------------------------------------------------------------

def rnn_forward(x, h0, Wx, Wh, b):
    """A vanilla RNN run over a whole sequence of T inputs (time-major).

    ``h[t] = tanh(x[t] @ Wx + h[t - 1] @ Wh + b)`` for t = 0, ..., T - 1, with ``h[-1] = h0``.

    Inputs:
    - x: (T, N, D) input sequence, time first
    - h0: (N, H) initial hidden state
    - Wx: (D, H) input-to-hidden weights
    - Wh: (H, H) hidden-to-hidden weights
    - b: (H,) biases

    Returns ``(h, cache)``: h (T, N, H), the hidden states of all time steps; cache for
    ``rnn_backward``.
    """
    func = "rnn_forward"
    x, h0 = as_array(func, "x", x), as_array(func, "h0", h0)
    require_ndim(func, "x", x, 3, "(T, N, D)")
    T, N, D = x.shape
    require(T >= 1, func, f"x must hold at least one time step (T >= 1); got shape {x.shape}")
    Wx, Wh, b, H = _rnn_weights(func, Wx, Wh, b, D)
    _require_shape(func, "h0", h0, (N, H), f"(N, H) with N = {N} from x {x.shape} (T, N, D) and H = {H} from Wx {Wx.shape}")
    ### BEGIN SOLUTION
    # The input projections do not depend on the recurrence: one matrix product for all t.
    xw = x @ Wx + b                                       # (T, N, H)
    h = np.empty((T, N, H), dtype=np.result_type(xw, h0, Wh))
    prev_h = h0
    for t in range(T):
        prev_h = h[t] = np.tanh(xw[t] + prev_h @ Wh)
    ### END SOLUTION
    cache = layer_cache("rnn_forward", (x, h0, Wx, Wh, h))
    return h, cache


def rnn_backward(dh, cache):
    """Backward pass of ``rnn_forward`` (backpropagation through time).

    Inputs:
    - dh: (T, N, H) upstream gradients of all hidden states (each h[t] may feed a loss)
    - cache: ``(x, h0, Wx, Wh, h)`` from ``rnn_forward``

    Returns ``(dx, dh0, dWx, dWh, db)``: dx (T, N, D), dh0 (N, H), dWx (D, H), dWh (H, H), db (H,).
    """
    x, h0, Wx, Wh, h = require_cache("rnn_backward", cache, "rnn_forward", "(x, h0, Wx, Wh, h)", (3, 2, 2, 2, 3))
    dh = as_array("rnn_backward", "dh", dh)
    _require_shape("rnn_backward", "dh", dh, h.shape, "(T, N, H), the shape of the forward output h")
    ### BEGIN SOLUTION
    T, N, H = h.shape
    da = np.empty(h.shape, dtype=np.result_type(dh, h))  # gradients of the pre-activations
    dprev = np.zeros((N, H), dtype=da.dtype)              # gradient reaching h[t] from step t + 1
    for t in reversed(range(T)):
        da[t] = (dh[t] + dprev) * (1 - h[t] ** 2)
        dprev = da[t] @ Wh.T
    dh0 = dprev
    # Everything else is a sum over time: one product over all (t, n) rows at once.
    h_prev = np.concatenate([h0[None], h[:-1]], axis=0)  # h[t - 1] for every t
    da_rows = da.reshape(T * N, H)
    dx = da @ Wx.T
    dWx = x.reshape(T * N, -1).T @ da_rows
    dWh = h_prev.reshape(T * N, H).T @ da_rows
    db = da_rows.sum(axis=0)
    ### END SOLUTION
    return dx, dh0, dWx, dWh, db


# --- word embeddings -----------------------------------------------------------------------------

def word_embedding_forward(x, W):
    """Word embeddings: look up the vector of every word id.

    Inputs:
    - x: (N, T) integer word ids, 0 <= x[n, t] < V
    - W: (V, D) embedding matrix, one row per word of the vocabulary

    Returns ``(out, cache)``: out (N, T, D) with ``out[n, t] = W[x[n, t]]``; cache for
    ``word_embedding_backward``.
    """
    func = "word_embedding_forward"
    W = as_array(func, "W", W)
    require_ndim(func, "W", W, 2, "(V, D)")
    x = require_ids(func, "x", x, W.shape[0], ndim=2, layout="(N, T)", of=f"the vocabulary size V = {W.shape[0]}")
    ### BEGIN SOLUTION
    out = W[x]
    ### END SOLUTION
    cache = layer_cache("word_embedding_forward", (x, W))
    return out, cache


def word_embedding_backward(dout, cache):
    """Backward pass of ``word_embedding_forward``.

    A word that occurs several times gets the sum of the gradients of all its occurrences.

    Inputs:
    - dout: (N, T, D) upstream gradient
    - cache: ``(x, W)`` from ``word_embedding_forward``

    Returns dW (V, D). (The word ids get no gradient.)
    """
    x, W = require_cache("word_embedding_backward", cache, "word_embedding_forward", "(x, W)", (2, 2))
    dout = as_array("word_embedding_backward", "dout", dout)
    _require_shape("word_embedding_backward", "dout", dout, (*x.shape, W.shape[1]), "(N, T, D), the shape of the forward output")
    ### BEGIN SOLUTION
    dW = np.zeros(W.shape, dtype=np.result_type(dout, W))
    np.add.at(dW, x.ravel(), dout.reshape(-1, W.shape[1]))  # unbuffered: repeated ids add up
    ### END SOLUTION
    return dW


# --- temporal affine layer -----------------------------------------------------------------------

def temporal_fc_forward(x, w, b):
    """A fully connected layer applied at every time step (the same weights for every t).

    Inputs:
    - x: (N, T, D) inputs
    - w: (D, M) weights
    - b: (M,) biases

    Returns ``(out, cache)``: out (N, T, M) with ``out[n, t] = x[n, t] @ w + b``; cache for
    ``temporal_fc_backward``.
    """
    func = "temporal_fc_forward"
    x, w, b = as_array(func, "x", x), as_array(func, "w", w), as_array(func, "b", b)
    require_ndim(func, "x", x, 3, "(N, T, D)")
    require_ndim(func, "w", w, 2, "(D, M)")
    D = x.shape[2]
    _require_shape(func, "w", w, (D, w.shape[1]), f"(D, M) to match x {x.shape} (N, T, D)")
    _require_shape(func, "b", b, (w.shape[1],), f"(M,) to match w {w.shape}")
    ### BEGIN SOLUTION
    out = x @ w + b
    ### END SOLUTION
    cache = layer_cache("temporal_fc_forward", (x, w, b))
    return out, cache


def temporal_fc_backward(dout, cache):
    """Backward pass of ``temporal_fc_forward``.

    Inputs:
    - dout: (N, T, M) upstream gradient
    - cache: ``(x, w, b)`` from ``temporal_fc_forward``

    Returns ``(dx, dw, db)``: dx (N, T, D), dw (D, M), db (M,).
    """
    x, w, b = require_cache("temporal_fc_backward", cache, "temporal_fc_forward", "(x, w, b)", (3, 2, 1))
    dout = as_array("temporal_fc_backward", "dout", dout)
    N, T, D = x.shape
    M = w.shape[1]
    _require_shape("temporal_fc_backward", "dout", dout, (N, T, M), "(N, T, M), the shape of the forward output")
    ### BEGIN SOLUTION
    dx = dout @ w.T
    dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
    db = dout.sum(axis=(0, 1))
    ### END SOLUTION
    return dx, dw, db


# --- temporal softmax loss -----------------------------------------------------------------------

def temporal_softmax_loss(x, y, mask):
    """Softmax cross-entropy at every time step, summed over time and averaged over the batch.

    ``loss = -(1 / N) * sum_{n, t} mask[n, t] * log softmax(x[n, t])[y[n, t]]``: the mask drops
    the padding (<NULL>) positions of captions shorter than T.

    Inputs:
    - x: (N, T, V) scores over the vocabulary
    - y: (N, T) integer targets, 0 <= y[n, t] < V
    - mask: (N, T) booleans, True where the target counts

    Returns ``(loss, dx)``: loss a float, dx (N, T, V).
    """
    func = "temporal_softmax_loss"
    x = as_array(func, "x", x)
    require_ndim(func, "x", x, 3, "(N, T, V)")
    N, T, V = x.shape
    require(N > 0 and V > 0, func, f"x must have at least one sample and one word; got shape {x.shape}")
    require_finite(func, "x", x)
    y = require_ids(func, "y", y, V, ndim=2, layout="(N, T)", of=f"the vocabulary size V = {V}")
    _require_shape(func, "y", y, (N, T), f"(N, T) to match x {x.shape} (N, T, V)")
    mask = np.asarray(mask)
    require_ndim(func, "mask", mask, 2, "(N, T)")
    _require_shape(func, "mask", mask, (N, T), f"(N, T) to match y {y.shape} and x {x.shape}")
    if mask.dtype != bool:
        require(np.issubdtype(mask.dtype, np.number) and bool(np.isin(mask, (0, 1)).all()), func,
                f"mask must hold booleans (or 0/1); got dtype {mask.dtype}")
        mask = mask.astype(bool)
    ### BEGIN SOLUTION
    shifted = x - x.max(axis=2, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))   # (N, T, V)
    picked = np.take_along_axis(log_probs, y[..., None], axis=2)[..., 0]         # (N, T)
    loss = float(-(picked * mask).sum() / N)
    dx = np.exp(log_probs)
    np.put_along_axis(dx, y[..., None], np.take_along_axis(dx, y[..., None], axis=2) - 1, axis=2)
    dx *= mask[..., None] / N
    ### END SOLUTION
    return loss, dx

"""Naive Python-loop layers: the straightforward first version a student writes.

One Python iteration per output element (or per upstream-gradient element, or per sample), with
NumPy doing only the small window or dot product inside. Same conventions and results as
``hwlib.layers``, except that ReLU and softmax return float64 whatever the input dtype (``np.zeros``
allocates them so; the sample submission built from them casts back, since the checks require the
input's dtype). The one home of these loops: ``bench.layers`` times them to show what vectorizing buys, and
``grading/samples.py`` reads their source (as text: importing ``bench`` pins thread counts) into the
solution regions of a sample submission that must get full marks.
"""

from __future__ import annotations

import numpy as np


# --- fully connected ---------------------------------------------------------------------------

def fc_forward(x, w, b):
    """``out[n, m] = x[n] . w[:, m] + b[m]``, one dot product per output element."""
    x_flat = x.reshape(x.shape[0], -1)
    N, M = x_flat.shape[0], w.shape[1]
    out = np.empty((N, M), dtype=np.result_type(x, w, b))
    for n in range(N):
        for m in range(M):
            out[n, m] = x_flat[n] @ w[:, m] + b[m]
    return out, (x, w, b)


def fc_backward(dout, cache):
    x, w, b = cache
    x_flat = x.reshape(x.shape[0], -1)
    dx = np.zeros(x_flat.shape, dtype=dout.dtype)
    dw = np.zeros(w.shape, dtype=dout.dtype)
    db = np.zeros(b.shape, dtype=dout.dtype)
    for n in range(dout.shape[0]):
        for m in range(dout.shape[1]):
            dx[n] += dout[n, m] * w[:, m]
            dw[:, m] += dout[n, m] * x_flat[n]
            db[m] += dout[n, m]
    return dx.reshape(x.shape), dw, db


# --- ReLU ----------------------------------------------------------------------------------------

def relu_forward(x):
    """``out[i] = x[i]`` where ``x[i] > 0``, else 0, one element per iteration."""
    out = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        out[index] = x[index] if x[index] > 0 else 0.0
    return out, x


def relu_backward(dout, cache):
    x = cache
    dx = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        dx[index] = dout[index] if x[index] > 0 else 0.0
    return dx


# --- convolution (stride 1, no padding, no bias) -------------------------------------------------

def conv_forward(x, w):
    """``out[n, f, y, x] = sum(X[n, :, y:y+HH, x:x+WW] * K[f])``, one window per iteration."""
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    Ho, Wo = H - HH + 1, W - WW + 1
    out = np.empty((N, F, Ho, Wo), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, f, i, j] = np.sum(x[n, :, i:i + HH, j:j + WW] * w[f])
    return out, (x, w)


def conv_backward(dout, cache):
    """Each output element sends ``dY * K`` back to the window it read and ``dY * X`` to the kernel."""
    x, w = cache
    N, F, Ho, Wo = dout.shape
    _, _, HH, WW = w.shape
    dx = np.zeros(x.shape, dtype=dout.dtype)
    dw = np.zeros(w.shape, dtype=dout.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    dx[n, :, i:i + HH, j:j + WW] += dout[n, f, i, j] * w[f]
                    dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]
    return dx, dw


# --- max-pooling ---------------------------------------------------------------------------------

def max_pool_forward(x, pool_param):
    """``out[n, c, y, x]`` = maximum of the window at ``(y * stride, x * stride)``."""
    HH, WW, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = (H - HH) // S + 1, (W - WW) // S + 1
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, c, i, j] = x[n, c, i * S:i * S + HH, j * S:j * S + WW].max()
    return out, (x, pool_param)


def max_pool_backward(dout, cache):
    """Each window's gradient goes to its first maximum (``argmax`` is row-major, first wins)."""
    x, pool_param = cache
    HH, WW, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = x[n, c, i * S:i * S + HH, j * S:j * S + WW]
                    a, b = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * S + a, j * S + b] += dout[n, c, i, j]
    return dx


# --- softmax loss --------------------------------------------------------------------------------

def softmax_loss(x, y):
    """Loss and gradient one sample (row) at a time, each row shifted by its maximum."""
    N = x.shape[0]
    loss, dx = 0.0, np.zeros(x.shape)
    for i in range(N):
        row = x[i] - np.max(x[i])
        log_norm = np.log(np.sum(np.exp(row)))
        loss -= (row[y[i]] - log_norm) / N
        dx[i] = np.exp(row - log_norm) / N
        dx[i, y[i]] -= 1.0 / N
    return loss, dx

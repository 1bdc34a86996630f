"""PyTorch-backed layer families, so that a bug in one question costs points only there.

In the grader's sandbox, a check of a model (Q2-Q4) first replaces the layers of *other* questions
in ``hwlib.layers`` by versions computed by PyTorch through the layer targets' references
(:func:`hwlib.check.reference`): the SoftmaxClassifier check then depends on the student's
``softmax_loss`` and model code, not on their ``fc_forward``. :func:`install` must run before the
model's module is imported, since the models bind the layer functions on import.
"""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np

from . import reference

__all__ = ["FAMILIES", "install"]


def _common(*arrays):
    """PyTorch wants one dtype where NumPy would promote."""
    dtype = np.result_type(*arrays)
    return [np.asarray(a, dtype=dtype) for a in arrays]


def fc_forward(x, w, b):
    x, w, b = _common(x, w, b)
    zero = np.zeros((x.shape[0], w.shape[1]), dtype=x.dtype)
    return reference("fc", {"x": x, "w": w, "b": b, "dout": zero})["out"], ("fc", x, w, b)


def fc_backward(dout, cache):
    _, x, w, b = cache
    r = reference("fc", {"x": x, "w": w, "b": b, "dout": np.asarray(dout, dtype=np.result_type(x, w))})
    return r["dx"], r["dw"], r["db"]


def relu_forward(x):
    x = np.asarray(x)
    return reference("relu", {"x": x, "dout": np.zeros_like(x)})["out"], ("relu", x)


def relu_backward(dout, cache):
    x = cache[1]
    return reference("relu", {"x": x, "dout": np.asarray(dout, dtype=x.dtype)})["dx"]


def softmax_loss(x, y):
    r = reference("softmax", {"x": np.asarray(x), "y": np.asarray(y)})
    return float(r["loss"]), r["dx"]


def conv_forward(x, w):
    x, w = _common(x, w)
    shape = (x.shape[0], w.shape[0], x.shape[2] - w.shape[2] + 1, x.shape[3] - w.shape[3] + 1)
    return reference("conv", {"x": x, "w": w, "dout": np.zeros(shape, dtype=x.dtype)})["out"], ("conv", x, w)


def conv_backward(dout, cache):
    _, x, w = cache
    r = reference("conv", {"x": x, "w": w, "dout": np.asarray(dout, dtype=np.result_type(x, w))})
    return r["dx"], r["dw"]


def max_pool_forward(x, pool_param):
    x, p = np.asarray(x), dict(pool_param)
    S = p["stride"]
    shape = (x.shape[0], x.shape[1], (x.shape[2] - p["pool_height"]) // S + 1, (x.shape[3] - p["pool_width"]) // S + 1)
    out = reference("pool", {"x": x, "pool_param": p, "dout": np.zeros(shape, dtype=x.dtype)})["out"]
    return out, ("pool", x, p)


def max_pool_backward(dout, cache):
    _, x, p = cache
    return reference("pool", {"x": x, "pool_param": p, "dout": np.asarray(dout, dtype=x.dtype)})["dx"]


FAMILIES = {"fc": (fc_forward, fc_backward), "relu": (relu_forward, relu_backward), "softmax": (softmax_loss,),
            "conv": (conv_forward, conv_backward), "pool": (max_pool_forward, max_pool_backward)}


def install(families) -> None:
    """Replace the named layer families (keys of :data:`FAMILIES`) in ``hwlib.layers``; when the
    student's module does not import, an empty one takes its place first."""
    try:
        layers = importlib.import_module("hwlib.layers")
    except BaseException:  # noqa: BLE001 (a student's module can raise anything on import)
        import hwlib
        layers = types.ModuleType("hwlib.layers")
        sys.modules["hwlib.layers"] = layers
        hwlib.layers = layers
    for name in families:
        for func in FAMILIES[name]:
            setattr(layers, func.__name__, func)

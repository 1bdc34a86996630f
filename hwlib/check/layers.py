"""Targets of the layers of ``hwlib.layers`` (Q1-Q3): ``fc``, ``relu``, ``conv``, ``pool``, ``softmax``.

Every layer is called the same way (:class:`LayerCall`: forward, then backward on an upstream
gradient ``dout``; a loss returns its gradient itself) and judged against PyTorch (forward and
autograd) by :func:`hwlib.check.engine.compare`. Inputs are drawn without ties or near-ties (ReLU
inputs away from 0, pooling windows with one clear maximum), so every correct implementation gives
the same answer.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from .engine import Target, compare
from .watch import Watch

__all__ = ["LayerCall", "layer_target", "TARGETS"]


@dataclass(frozen=True)
class LayerCall:
    """How a layer is called: its module, its functions, its inputs in call order, and the names
    of the gradients its backward returns, in order (a loss has no backward: it returns ``(loss, dx)``)."""

    module: str                 # the student module, imported at call time (the sandbox's own)
    forward: str
    backward: str | None
    args: tuple
    grads: tuple

    @property
    def calls(self) -> tuple:
        """``(function, its arguments)`` in call order: what :mod:`.watch` records and judges."""
        forward = ((self.forward, self.args),)
        return forward if self.backward is None else forward + ((self.backward, ("dout",)),)

    def run(self, inputs: dict, forward_only: bool = False) -> dict:
        """Outputs ``out`` (``loss`` for a loss) and the gradients, and the watch's record of what the
        calls left of their inputs (:class:`hwlib.check.watch.Watch`); only ``out`` when ``forward_only``."""
        module = importlib.import_module(self.module)
        args = [dict(inputs[a]) if isinstance(inputs[a], dict) else inputs[a] for a in self.args]
        if forward_only:
            out = getattr(module, self.forward)(*args)
            return {"out": out[0]}
        record = Watch({**inputs, **dict(zip(self.args, args))})   # the very objects the calls get
        if self.backward is None:
            loss, dx = getattr(module, self.forward)(*args)
            record.after(self.forward)
            return {"loss": np.asarray(loss, dtype=np.float64), self.grads[0]: dx, **record.outputs()}
        out, cache = getattr(module, self.forward)(*args)
        record.after(self.forward)
        record.hold(cache)
        grads = getattr(module, self.backward)(inputs["dout"], cache)
        record.after(self.backward)
        if len(self.grads) == 1:
            return {"out": out, self.grads[0]: grads, **record.outputs()}
        grads = tuple(grads)
        if len(grads) != len(self.grads):
            raise ValueError(f"{self.backward} must return {len(self.grads)} gradients "
                             f"({', '.join(self.grads)}); got {len(grads)}")
        return {"out": out, **dict(zip(self.grads, grads)), **record.outputs()}

    def output(self, inputs: dict):
        """The forward output alone: what the numerical gradients differentiate."""
        return self.run(inputs, forward_only=True)["out"]


def layer_target(name: str, call: LayerCall, draw, reference, cases: tuple) -> Target:
    """A layer's row of the table: judged output by output against ``reference``."""
    def judge(outputs, expected, inputs, label="reference"):
        return compare(name, outputs, expected, expected_label=label)

    return Target(name, call.module, draw, call.run, reference, judge, cases=cases, grads=call.grads,
                  forward=call.output, watch=call.calls)


# --- draws -----------------------------------------------------------------------------------------

def _away_from_zero(rng, shape, dtype, margin=0.05):
    """Standard normal values with |v| >= margin (no ReLU kinks within a numerical-gradient step)."""
    v = rng.standard_normal(shape)
    v = np.where(v >= 0, v + margin, v - margin)
    return v.astype(dtype)


def _distinct(rng, shape, dtype, gap=1e-2):
    """Values that are pairwise at least ``gap`` apart: every pooling window has one clear maximum."""
    size = int(np.prod(shape))
    return (rng.permutation(size).reshape(shape) * gap - size * gap / 2).astype(dtype)


# --- fc ----------------------------------------------------------------------------------------------

def _fc_inputs(rng, dtype, N=4, in_shape=(3, 5), M=6):
    D = int(np.prod(in_shape))
    return {"x": rng.standard_normal((N, *in_shape)).astype(dtype),
            "w": rng.standard_normal((D, M)).astype(dtype),
            "b": rng.standard_normal(M).astype(dtype),
            "dout": rng.standard_normal((N, M)).astype(dtype)}


def _fc_ref(i):
    import torch
    x, w, b = (torch.tensor(i[k], requires_grad=True) for k in ("x", "w", "b"))
    out = x.reshape(x.shape[0], -1) @ w + b
    dx, dw, db = torch.autograd.grad(out, (x, w, b), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dw": dw.numpy(), "db": db.numpy()}


# --- relu --------------------------------------------------------------------------------------------

def _relu_inputs(rng, dtype, shape=(4, 5, 3)):
    return {"x": _away_from_zero(rng, shape, dtype), "dout": rng.standard_normal(shape).astype(dtype)}


def _relu_ref(i):
    import torch
    x = torch.tensor(i["x"], requires_grad=True)
    out = torch.relu(x)
    (dx,) = torch.autograd.grad(out, (x,), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy()}


# --- conv --------------------------------------------------------------------------------------------

def _conv_inputs(rng, dtype, N=2, C=3, H=7, W=6, F=4, HH=3, WW=2):
    return {"x": rng.standard_normal((N, C, H, W)).astype(dtype),
            "w": rng.standard_normal((F, C, HH, WW)).astype(dtype),
            "dout": rng.standard_normal((N, F, H - HH + 1, W - WW + 1)).astype(dtype)}


def _conv_ref(i):
    import torch
    x, w = torch.tensor(i["x"], requires_grad=True), torch.tensor(i["w"], requires_grad=True)
    out = torch.nn.functional.conv2d(x, w)  # PyTorch's conv2d is cross-correlation: filtering
    dx, dw = torch.autograd.grad(out, (x, w), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dw": dw.numpy()}


# --- max-pool ----------------------------------------------------------------------------------------

def _pool_inputs(rng, dtype, N=2, C=3, H=8, W=6, pool_height=2, pool_width=2, stride=2):
    Ho, Wo = (H - pool_height) // stride + 1, (W - pool_width) // stride + 1
    return {"x": _distinct(rng, (N, C, H, W), dtype),
            "pool_param": {"pool_height": pool_height, "pool_width": pool_width, "stride": stride},
            "dout": rng.standard_normal((N, C, Ho, Wo)).astype(dtype)}


def _pool_ref(i):
    import torch
    p = i["pool_param"]
    x = torch.tensor(i["x"], requires_grad=True)
    out = torch.nn.functional.max_pool2d(x, (p["pool_height"], p["pool_width"]), p["stride"])
    (dx,) = torch.autograd.grad(out, (x,), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy()}


# --- softmax loss ------------------------------------------------------------------------------------

def _softmax_inputs(rng, dtype, N=6, C=5, scale=1.0):
    return {"x": (scale * rng.standard_normal((N, C))).astype(dtype), "y": rng.integers(0, C, size=N)}


def _softmax_ref(i):
    import torch
    x = torch.tensor(i["x"], requires_grad=True)
    loss = torch.nn.functional.cross_entropy(x, torch.as_tensor(i["y"]))
    (dx,) = torch.autograd.grad(loss, (x,))
    return {"loss": np.asarray(loss.item(), dtype=i["x"].dtype), "dx": dx.numpy()}


# --- the table ---------------------------------------------------------------------------------------

_L = "hwlib.layers"

TARGETS = (
    layer_target("fc", LayerCall(_L, "fc_forward", "fc_backward", ("x", "w", "b"), ("dx", "dw", "db")),
                 _fc_inputs, _fc_ref,
                 ({"N": 4, "in_shape": (3, 5), "M": 6}, {"N": 7, "in_shape": (11,), "M": 3},
                  {"N": 2, "in_shape": (2, 3, 4), "M": 5})),
    layer_target("relu", LayerCall(_L, "relu_forward", "relu_backward", ("x",), ("dx",)),
                 _relu_inputs, _relu_ref,
                 ({"shape": (4, 5, 3)}, {"shape": (10, 7)}, {"shape": (2, 3, 4, 5)})),
    layer_target("conv", LayerCall(_L, "conv_forward", "conv_backward", ("x", "w"), ("dx", "dw")),
                 _conv_inputs, _conv_ref,
                 ({"N": 2, "C": 3, "H": 7, "W": 6, "F": 4, "HH": 3, "WW": 2},
                  {"N": 3, "C": 1, "H": 9, "W": 8, "F": 2, "HH": 4, "WW": 5},
                  {"N": 1, "C": 2, "H": 5, "W": 5, "F": 3, "HH": 5, "WW": 5})),
    layer_target("pool", LayerCall(_L, "max_pool_forward", "max_pool_backward", ("x", "pool_param"), ("dx",)),
                 _pool_inputs, _pool_ref,
                 ({"N": 2, "C": 3, "H": 8, "W": 6, "pool_height": 2, "pool_width": 2, "stride": 2},
                  {"N": 2, "C": 2, "H": 7, "W": 9, "pool_height": 3, "pool_width": 3, "stride": 2},
                  {"N": 1, "C": 2, "H": 6, "W": 7, "pool_height": 2, "pool_width": 3, "stride": 1})),
    layer_target("softmax", LayerCall(_L, "softmax_loss", None, ("x", "y"), ("dx",)),
                 _softmax_inputs, _softmax_ref,
                 ({"N": 6, "C": 5}, {"N": 3, "C": 10, "scale": 1e4}, {"N": 9, "C": 2})),
)

"""Public checks for your layers: ``python -m hwlib.check [fc relu conv pool softmax ...]``.

These checks are public and are *not* your grade: the autograder runs other cases (other shapes,
other seeds, other dtypes). They tell you early, with a clear message, where a layer goes wrong.

The checking engine is shared with the hidden grading checks, which differ only in their cases:

* a *spec* per layer knows how to draw inputs (:func:`make_inputs`), how to run a forward and
  backward pass of any implementation of ``hwlib.layers`` (:func:`run_layer`, which only
  *produces* outputs), and how PyTorch computes the same outputs (:func:`torch_reference`);
* :func:`compare` judges outputs against a reference, with :func:`hwlib.gradient_check.assert_close`.

Inputs are drawn without ties or near-ties (ReLU inputs away from 0, pooling windows with one clear
maximum), so every correct implementation gives the same answer.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .gradient_check import assert_close, eval_numerical_gradient, eval_numerical_gradient_array

__all__ = ["LayerSpec", "SPECS", "register", "make_inputs", "run_layer", "torch_reference", "compare",
           "numerical_gradients", "check_layer", "main"]

# (threshold, floor scale) by dtype: float64 matches PyTorch to round-off. Entries smaller than
# floor scale * max|expected| are judged against that floor (their own digits are round-off).
THRESHOLDS = {np.dtype(np.float64): (1e-8, 1e-6), np.dtype(np.float32): (1e-3, 1e-3)}
# Numerical gradients (centred differences) carry ~1e-10 absolute noise: judge entries below
# 1e-4 * max|expected| against that floor, so round-off never fails a correct layer.
NUMERICAL_FLOOR_SCALE = 1e-4


@dataclass(frozen=True)
class LayerSpec:
    """How to draw inputs for one layer, run it, and compute its reference outputs."""

    name: str
    inputs: Callable[..., dict]              # (rng, dtype, **shape) -> inputs
    run: Callable[[object, dict], dict]      # (layers module, inputs) -> outputs
    reference: Callable[[dict], dict]        # inputs -> outputs, independently (PyTorch)
    grads: tuple[str, ...]                   # outputs that are gradients w.r.t. inputs of the same name
    shapes: tuple[dict, ...]                 # shapes of the public cases


SPECS: dict[str, LayerSpec] = {}


def register(spec: LayerSpec) -> LayerSpec:
    SPECS[spec.name] = spec
    return spec


def _spec(layer: str) -> LayerSpec:
    if layer not in SPECS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {sorted(SPECS)}")
    return SPECS[layer]


def make_inputs(layer: str, rng: np.random.Generator, dtype=np.float64, **shape) -> dict:
    """Draw inputs (and an upstream gradient ``dout``) for ``layer``; ``shape`` overrides the defaults."""
    return _spec(layer).inputs(rng, np.dtype(dtype), **shape)


def run_layer(layer: str, inputs: dict, layers_module=None) -> dict:
    """Run forward and backward of ``layers_module`` (default: ``hwlib.layers``) on ``inputs``."""
    if layers_module is None:
        from . import layers as layers_module
    return _spec(layer).run(layers_module, inputs)


def torch_reference(layer: str, inputs: dict) -> dict:
    """The same outputs as :func:`run_layer`, computed by PyTorch (forward and autograd)."""
    return _spec(layer).reference(inputs)


def compare(layer: str, outputs: dict, expected: dict, threshold: float | None = None,
            expected_label: str = "expected", floor_scale: float | None = None) -> dict:
    """Assert every expected output matches; return the worst relative error per output.

    ``threshold`` and ``floor_scale`` default to the expected array's dtype (:data:`THRESHOLDS`).
    """
    worst = {}
    for key, value in expected.items():
        if key not in outputs:
            raise AssertionError(f"{layer}: output {key} is missing")
        exp = np.asarray(value)
        default, scale = THRESHOLDS.get(exp.dtype, THRESHOLDS[np.dtype(np.float64)])
        limit = threshold if threshold is not None else default
        scale = floor_scale if floor_scale is not None else scale
        floor = max(1e-8, scale * float(np.max(np.abs(exp)))) if exp.size else 1e-8
        worst[key] = assert_close(outputs[key], exp, name=f"{layer} {key}", threshold=limit, floor=floor,
                                  expected_label=expected_label)
    return worst


def numerical_gradients(layer: str, inputs: dict, layers_module=None, h: float = 1e-6) -> dict:
    """Numerical gradients of ``sum(forward * dout)`` (or of the loss) w.r.t. each differentiable input."""
    spec = _spec(layer)
    inputs = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
              for k, v in inputs.items()}
    grads = {}
    for gname in spec.grads:
        wrt = gname[1:]  # "dx" -> "x"

        def forward(_):
            return run_layer(layer, {**inputs, "_forward_only": True}, layers_module)["out"]

        if "dout" in inputs:
            grads[gname] = eval_numerical_gradient_array(forward, inputs[wrt], inputs["dout"], h=h)
        else:
            grads[gname] = eval_numerical_gradient(forward, inputs[wrt], h=h)
    return grads


def check_layer(layer: str, seed: int = 0, layers_module=None, verbose: bool = True) -> None:
    """Public checks of one layer: PyTorch comparison on random shapes, then a numerical gradient check."""
    spec = _spec(layer)
    rng = np.random.default_rng(seed)
    for shape in spec.shapes:
        for dtype in (np.float64, np.float32):
            inputs = make_inputs(layer, rng, dtype, **shape)
            worst = compare(layer, run_layer(layer, inputs, layers_module), torch_reference(layer, inputs),
                            expected_label="torch")
            if verbose:
                errors = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
                print(f"  {layer} {np.dtype(dtype).name} {_describe(inputs)}: vs PyTorch {errors}")
    inputs = make_inputs(layer, rng, np.float64, **spec.shapes[0])
    outputs = run_layer(layer, inputs, layers_module)
    numerical = numerical_gradients(layer, inputs, layers_module)
    worst = compare(layer, {k: outputs[k] for k in numerical}, numerical, threshold=1e-6,
                    expected_label="numerical", floor_scale=NUMERICAL_FLOOR_SCALE)
    if verbose:
        errors = ", ".join(f"{k} {v:.1e}" for k, v in worst.items())
        print(f"  {layer} gradient check (threshold 1e-06): {errors}")


def _describe(inputs: dict) -> str:
    return " ".join(f"{k}{tuple(v.shape)}" for k, v in inputs.items()
                    if isinstance(v, np.ndarray) and not k.startswith("_") and k != "dout")


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


def _torch():
    import torch
    return torch


def _t(torch, a, grad=False):
    return torch.tensor(a, requires_grad=grad)


# --- fc ----------------------------------------------------------------------------------------------

def _fc_inputs(rng, dtype, N=4, in_shape=(3, 5), M=6):
    D = int(np.prod(in_shape))
    return {"x": rng.standard_normal((N, *in_shape)).astype(dtype),
            "w": rng.standard_normal((D, M)).astype(dtype),
            "b": rng.standard_normal(M).astype(dtype),
            "dout": rng.standard_normal((N, M)).astype(dtype)}


def _fc_run(L, i):
    out, cache = L.fc_forward(i["x"], i["w"], i["b"])
    if i.get("_forward_only"):
        return {"out": out}
    dx, dw, db = L.fc_backward(i["dout"], cache)
    return {"out": out, "dx": dx, "dw": dw, "db": db}


def _fc_ref(i):
    torch = _torch()
    x, w, b = _t(torch, i["x"], True), _t(torch, i["w"], True), _t(torch, i["b"], True)
    out = x.reshape(x.shape[0], -1) @ w + b
    dx, dw, db = torch.autograd.grad(out, (x, w, b), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dw": dw.numpy(), "db": db.numpy()}


register(LayerSpec("fc", _fc_inputs, _fc_run, _fc_ref, ("dx", "dw", "db"),
                   ({"N": 4, "in_shape": (3, 5), "M": 6}, {"N": 7, "in_shape": (11,), "M": 3},
                    {"N": 2, "in_shape": (2, 3, 4), "M": 5})))


# --- relu --------------------------------------------------------------------------------------------

def _relu_inputs(rng, dtype, shape=(4, 5, 3)):
    return {"x": _away_from_zero(rng, shape, dtype), "dout": rng.standard_normal(shape).astype(dtype)}


def _relu_run(L, i):
    out, cache = L.relu_forward(i["x"])
    if i.get("_forward_only"):
        return {"out": out}
    return {"out": out, "dx": L.relu_backward(i["dout"], cache)}


def _relu_ref(i):
    torch = _torch()
    x = _t(torch, i["x"], True)
    out = torch.relu(x)
    (dx,) = torch.autograd.grad(out, (x,), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy()}


register(LayerSpec("relu", _relu_inputs, _relu_run, _relu_ref, ("dx",),
                   ({"shape": (4, 5, 3)}, {"shape": (10, 7)}, {"shape": (2, 3, 4, 5)})))


# --- conv --------------------------------------------------------------------------------------------

def _conv_inputs(rng, dtype, N=2, C=3, H=7, W=6, F=4, HH=3, WW=2):
    return {"x": rng.standard_normal((N, C, H, W)).astype(dtype),
            "w": rng.standard_normal((F, C, HH, WW)).astype(dtype),
            "dout": rng.standard_normal((N, F, H - HH + 1, W - WW + 1)).astype(dtype)}


def _conv_run(L, i):
    out, cache = L.conv_forward(i["x"], i["w"])
    if i.get("_forward_only"):
        return {"out": out}
    dx, dw = L.conv_backward(i["dout"], cache)
    return {"out": out, "dx": dx, "dw": dw}


def _conv_ref(i):
    torch = _torch()
    x, w = _t(torch, i["x"], True), _t(torch, i["w"], True)
    out = torch.nn.functional.conv2d(x, w)  # PyTorch's conv2d is cross-correlation: filtering
    dx, dw = torch.autograd.grad(out, (x, w), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dw": dw.numpy()}


register(LayerSpec("conv", _conv_inputs, _conv_run, _conv_ref, ("dx", "dw"),
                   ({"N": 2, "C": 3, "H": 7, "W": 6, "F": 4, "HH": 3, "WW": 2},
                    {"N": 3, "C": 1, "H": 9, "W": 8, "F": 2, "HH": 4, "WW": 5},
                    {"N": 1, "C": 2, "H": 5, "W": 5, "F": 3, "HH": 5, "WW": 5})))


# --- max-pool ----------------------------------------------------------------------------------------

def _pool_inputs(rng, dtype, N=2, C=3, H=8, W=6, pool_height=2, pool_width=2, stride=2):
    Ho, Wo = (H - pool_height) // stride + 1, (W - pool_width) // stride + 1
    return {"x": _distinct(rng, (N, C, H, W), dtype),
            "pool_param": {"pool_height": pool_height, "pool_width": pool_width, "stride": stride},
            "dout": rng.standard_normal((N, C, Ho, Wo)).astype(dtype)}


def _pool_run(L, i):
    out, cache = L.max_pool_forward(i["x"], dict(i["pool_param"]))
    if i.get("_forward_only"):
        return {"out": out}
    return {"out": out, "dx": L.max_pool_backward(i["dout"], cache)}


def _pool_ref(i):
    torch = _torch()
    p = i["pool_param"]
    x = _t(torch, i["x"], True)
    out = torch.nn.functional.max_pool2d(x, (p["pool_height"], p["pool_width"]), p["stride"])
    (dx,) = torch.autograd.grad(out, (x,), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy()}


register(LayerSpec("pool", _pool_inputs, _pool_run, _pool_ref, ("dx",),
                   ({"N": 2, "C": 3, "H": 8, "W": 6, "pool_height": 2, "pool_width": 2, "stride": 2},
                    {"N": 2, "C": 2, "H": 7, "W": 9, "pool_height": 3, "pool_width": 3, "stride": 2},
                    {"N": 1, "C": 2, "H": 6, "W": 7, "pool_height": 2, "pool_width": 3, "stride": 1})))


# --- softmax loss ------------------------------------------------------------------------------------

def _softmax_inputs(rng, dtype, N=6, C=5, scale=1.0):
    return {"x": (scale * rng.standard_normal((N, C))).astype(dtype), "y": rng.integers(0, C, size=N)}


def _softmax_run(L, i):
    loss, dx = L.softmax_loss(i["x"], i["y"])
    if i.get("_forward_only"):
        return {"out": loss}
    return {"loss": np.asarray(loss, dtype=np.float64), "dx": dx}


def _softmax_ref(i):
    torch = _torch()
    x = _t(torch, i["x"], True)
    loss = torch.nn.functional.cross_entropy(x, torch.as_tensor(i["y"]))
    (dx,) = torch.autograd.grad(loss, (x,))
    return {"loss": np.asarray(loss.item(), dtype=i["x"].dtype), "dx": dx.numpy()}


register(LayerSpec("softmax", _softmax_inputs, _softmax_run, _softmax_ref, ("dx",),
                   ({"N": 6, "C": 5}, {"N": 3, "C": 10, "scale": 1e4}, {"N": 9, "C": 2})))


# The RNN layers' specs live in their own module; importing it registers them here.
from . import checks_rnn  # noqa: E402,F401


# --- command line ------------------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwlib.check", description=__doc__.splitlines()[0])
    parser.add_argument("layers", nargs="*", help=f"layers to check (default: all of {', '.join(SPECS)})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    names = args.layers or list(SPECS)
    failed = []
    for name in names:
        print(f"{name}:")
        try:
            check_layer(name, seed=args.seed)
            print(f"{name}: PASS")
        except NotImplementedError:
            failed.append(name)
            print(f"{name}: NOT IMPLEMENTED yet")
        except Exception as exc:  # a check failure or a crash in the layer: report and go on
            failed.append(name)
            print(f"{name}: FAIL: {type(exc).__name__}: {exc}")
            if not isinstance(exc, AssertionError):
                traceback.print_exc(limit=-2)
    print(f"{len(names) - len(failed)}/{len(names)} layers pass" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    # Run the registry of the importable module (the one checks_rnn registered into), not __main__'s copy.
    from hwlib.check import main as _main

    sys.exit(_main())

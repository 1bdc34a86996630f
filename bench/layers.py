"""Layer benchmark: hwlib against PyTorch CPU (float64 and float32) and against naive Python loops.

Cases are the shapes of the kit's ConvNet on MNIST (batch 50): its conv layer, a small multi-channel
conv, its 2x2 max-pool, an overlapping 3x3/2 max-pool, and its fully connected layer. Every
implementation computes forward and forward+backward on the same data (drawn from the same seed in
each process); PyTorch computes the gradients of the same inputs with ``torch.autograd.grad`` (its
forward is timed with autograd recording, as in training).

Targets (float64, ``bench.THREADS`` threads; median of the per-round ratios): conv fwd+bwd within
1.2x of PyTorch, the ConvNet's 2x2 max-pool within 1.2x, and the naive-loop conv at least 300x slower
than hwlib.
"""

from __future__ import annotations

import numpy as np

from . import Check, Row, median_of, ratios, setup_torch, spread, time_block

CONV_TARGET, POOL_TARGET, NAIVE_SPEEDUP_TARGET = 1.2, 1.2, 300.0

# (label, layer, shapes, naive-loop samples): the naive loops run on that many samples and are
# scaled linearly to the full batch, because every sample costs the same in a per-sample loop.
CASES = [
    ("conv x(50,1,28,28) w(32,1,7,7)", "conv", ((50, 1, 28, 28), (32, 1, 7, 7)), 2),
    ("conv x(50,16,12,12) w(32,16,3,3)", "conv", ((50, 16, 12, 12), (32, 16, 3, 3)), 2),
    ("max-pool 2x2/2 x(50,32,22,22)", "pool", ((50, 32, 22, 22), (2, 2, 2)), 5),
    ("max-pool 3x3/2 x(50,32,21,21)", "pool", ((50, 32, 21, 21), (3, 3, 2)), 5),
    ("fc x(50,3872) w(3872,100)", "fc", ((50, 32 * 11 * 11), (32 * 11 * 11, 100)), 50),
]
# One process each; "naive f64" runs in the first round only (it is 300x slower and steady).
IMPLS = ("hwlib f64", "torch f64", "hwlib f32", "torch f32", "naive f64")
ONCE = ("naive f64",)
PAIRS = (("hwlib f64", "torch f64"), ("hwlib f32", "torch f32"))


def _problem(index, kind, shapes):
    """Inputs (float64) of one case and the upstream gradient of its output, the same in every process."""
    rng = np.random.default_rng(545 + index)
    if kind == "conv":
        x_shape, w_shape = shapes
        args = (rng.standard_normal(x_shape), rng.standard_normal(w_shape))
        out_shape = (x_shape[0], w_shape[0], x_shape[2] - w_shape[2] + 1, x_shape[3] - w_shape[3] + 1)
    elif kind == "pool":
        x_shape, (ph, pw, s) = shapes
        args = (rng.standard_normal(x_shape), {"pool_height": ph, "pool_width": pw, "stride": s})
        out_shape = (x_shape[0], x_shape[1], (x_shape[2] - ph) // s + 1, (x_shape[3] - pw) // s + 1)
    else:
        x_shape, w_shape = shapes
        args = (rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[1]))
        out_shape = (x_shape[0], w_shape[1])
    return args, rng.standard_normal(out_shape)


def _numpy_fns(module, kind, args, dout):
    """(forward, forward+backward) closures of ``module`` (hwlib.layers or bench.naive)."""
    fwd, bwd = {
        "conv": (module.conv_forward, module.conv_backward),
        "pool": (module.max_pool_forward, module.max_pool_backward),
        "fc": (module.fc_forward, module.fc_backward),
    }[kind]
    return (lambda: fwd(*args)), (lambda: bwd(dout, fwd(*args)[1]))


def _torch_fns(torch, kind, args, dout, dtype):
    """(forward, forward+backward) closures of the PyTorch layer, gradients for every input."""
    F = torch.nn.functional
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    inputs = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]
    grad_out = torch.tensor(dout, dtype=dtype)
    if kind == "conv":
        def forward():
            return F.conv2d(inputs[0], inputs[1])
    elif kind == "pool":
        p = args[1]
        def forward():
            return F.max_pool2d(inputs[0], (p["pool_height"], p["pool_width"]), p["stride"])
    else:
        def forward():
            return torch.addmm(inputs[2], inputs[0], inputs[1])
    return forward, (lambda: torch.autograd.grad(forward(), inputs, grad_out))


def measure(impl: str, quick: bool = False) -> dict:
    """Time every case with one implementation (in this process); ``{case: {"fwd", "fwdbwd"}}``."""
    library, tag = impl.split()
    dtype = {"f64": np.float64, "f32": np.float32}[tag]
    if library == "torch":
        torch = setup_torch()
    elif library == "hwlib":
        from hwlib import layers as module
    else:
        from . import naive as module
    budget_s = 0.5 if quick else 1.0
    result = {}
    for index, (label, kind, shapes, naive_n) in enumerate(CASES):
        args, dout = _problem(index, kind, shapes)
        args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) else a for a in args)
        dout = dout.astype(dtype)
        if library == "torch":
            fwd, fwdbwd = _torch_fns(torch, kind, args, dout, {np.float64: torch.float64, np.float32: torch.float32}[dtype])
        elif library == "hwlib":
            fwd, fwdbwd = _numpy_fns(module, kind, args, dout)
        else:
            # Naive loops: a few calls on naive_n samples, scaled to the batch.
            N = args[0].shape[0]
            fwd, fwdbwd = _numpy_fns(module, kind, (args[0][:naive_n],) + args[1:], dout[:naive_n])
            result[label] = {key: time_block(fn, warmup=1, min_calls=1 if quick else 3, max_calls=3, budget_s=0) * N / naive_n
                             for key, fn in (("fwd", fwd), ("fwdbwd", fwdbwd))}
            result[label]["note"] = f"timed on {naive_n} of {N} samples, x{N / naive_n:g}" if naive_n != N else ""
            continue
        result[label] = {"fwd": time_block(fwd, budget_s), "fwdbwd": time_block(fwdbwd, budget_s)}
    return result


def report(results: dict, quick: bool = False):
    """Rows (medians over rounds, per-round ratios) and the targets' checks."""
    rows, checks = [], []
    for label, kind, _, _ in CASES:
        for impl, ref in PAIRS:
            r_fwd, r_fb = ratios(results, impl, ref, label, "fwd"), ratios(results, impl, ref, label, "fwdbwd")
            med = np.median(r_fb)
            rows.append(Row(label, impl, median_of(results, impl, label, "fwd"), median_of(results, impl, label, "fwdbwd"),
                            float(np.median(r_fwd)), float(med), ref, f"fwd+bwd {spread(r_fb)}"))
            rows.append(Row(label, ref, median_of(results, ref, label, "fwd"), median_of(results, ref, label, "fwdbwd")))
            if impl == "hwlib f64" and (kind == "conv" or label.startswith("max-pool 2x2")):
                checks.append(Check(f"{label}: hwlib/torch f64 fwd+bwd", float(med), "<=",
                                    CONV_TARGET if kind == "conv" else POOL_TARGET, spread(r_fb), label, impl, ref))
        naive = results["naive f64"][0][label]
        hw_f, hw_fb = median_of(results, "hwlib f64", label, "fwd"), median_of(results, "hwlib f64", label, "fwdbwd")
        rows.append(Row(label, "naive f64", naive["fwd"], naive["fwdbwd"], naive["fwd"] / hw_f, naive["fwdbwd"] / hw_fb,
                        "hwlib f64", naive["note"]))
        if kind == "conv":
            checks.append(Check(f"{label}: naive/hwlib f64 fwd+bwd", naive["fwdbwd"] / hw_fb, ">=", NAIVE_SPEEDUP_TARGET,
                                case=label, impl="hwlib f64"))
    return rows, checks

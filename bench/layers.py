"""Layer benchmark: hwlib against PyTorch CPU (float64 and float32) and against naive Python loops.

Cases are the shapes of the kit's ConvNet on MNIST (batch 50): its conv layer, a small multi-channel
conv, its 2x2 max-pool, an overlapping 3x3/2 max-pool, and its fully connected layer. Every
implementation computes forward and forward+backward on the same data; PyTorch computes the
gradients of the same inputs with ``torch.autograd.grad`` (its forward is timed with autograd
recording, as in training).

Targets (float64, ``bench.THREADS`` threads): conv fwd+bwd within 1.3x of PyTorch, the ConvNet's
max-pool within 1.2x, and the naive-loop conv at least 300x slower than hwlib.
"""

from __future__ import annotations

import numpy as np

from hwlib import layers

from . import Check, Row, naive, setup_torch, time_interleaved

CONV_TARGET, POOL_TARGET, NAIVE_SPEEDUP_TARGET = 1.3, 1.2, 300.0

# (label, layer, shapes, naive-loop samples): the naive loops run on that many samples and are
# scaled linearly to the full batch, because every sample costs the same in a per-sample loop.
CASES = [
    ("conv x(50,1,28,28) w(32,1,7,7)", "conv", ((50, 1, 28, 28), (32, 1, 7, 7)), 2),
    ("conv x(50,16,12,12) w(32,16,3,3)", "conv", ((50, 16, 12, 12), (32, 16, 3, 3)), 2),
    ("max-pool 2x2/2 x(50,32,22,22)", "pool", ((50, 32, 22, 22), (2, 2, 2)), 5),
    ("max-pool 3x3/2 x(50,32,21,21)", "pool", ((50, 32, 21, 21), (3, 3, 2)), 5),
    ("fc x(50,3872) w(3872,100)", "fc", ((50, 32 * 11 * 11), (32 * 11 * 11, 100)), 50),
]


def _problem(kind, shapes, rng):
    """Inputs (float64) of one case and the upstream gradient of its output."""
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


def _cast(args, dtype):
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) else a for a in args)


def run(quick: bool = False):
    """Time every case; return ``(rows, checks)``."""
    torch = setup_torch()
    rng = np.random.default_rng(545)
    budget_s = 1.5 if quick else 4.0
    rows, checks = [], []
    for label, kind, shapes, naive_n in CASES:
        args64, dout64 = _problem(kind, shapes, rng)
        args32, dout32 = _cast(args64, np.float32), dout64.astype(np.float32)
        candidates = {}
        for name, (fwd, fwdbwd) in {
            "hwlib f64": _numpy_fns(layers, kind, args64, dout64),
            "torch f64": _torch_fns(torch, kind, args64, dout64, torch.float64),
            "hwlib f32": _numpy_fns(layers, kind, args32, dout32),
            "torch f32": _torch_fns(torch, kind, args32, dout32, torch.float32),
        }.items():
            candidates[(name, "fwd")] = fwd
            candidates[(name, "fwdbwd")] = fwdbwd
        fastest = {}
        t = time_interleaved(candidates, budget_s=budget_s, min_repeats=5 if quick else 15, minima=fastest)

        # Naive loops: a few repeats on naive_n samples, scaled to the batch.
        N = args64[0].shape[0]
        sub_args = (args64[0][:naive_n],) + args64[1:]
        naive_fwd, naive_fwdbwd = _numpy_fns(naive, kind, sub_args, dout64[:naive_n])
        tn = time_interleaved({"fwd": naive_fwd, "fwdbwd": naive_fwdbwd}, repeats=1 if quick else 3, warmup=1)
        scale = N / naive_n

        for impl, ref in (("hwlib f64", "torch f64"), ("torch f64", None), ("hwlib f32", "torch f32"), ("torch f32", None)):
            f, fb = t[(impl, "fwd")], t[(impl, "fwdbwd")]
            row = Row(label, impl, f, fb)
            if ref:
                row.ratio_fwd, row.ratio_fwdbwd, row.ratio_to = f / t[(ref, "fwd")], fb / t[(ref, "fwdbwd")], ref
            rows.append(row)
        nf, nfb = tn["fwd"] * scale, tn["fwdbwd"] * scale
        rows.append(Row(label, "naive f64", nf, nfb, nf / t[("hwlib f64", "fwd")], nfb / t[("hwlib f64", "fwdbwd")],
                        "hwlib f64", f"timed on {naive_n} of {N} samples, x{scale:g}" if naive_n != N else ""))

        ratio = t[("hwlib f64", "fwdbwd")] / t[("torch f64", "fwdbwd")]
        best = f"ratio of the fastest calls {fastest[('hwlib f64', 'fwdbwd')] / fastest[('torch f64', 'fwdbwd')]:.2f}"
        if kind == "conv":
            checks.append(Check(f"{label}: hwlib/torch f64 fwd+bwd", ratio, "<=", CONV_TARGET, best))
            checks.append(Check(f"{label}: naive/hwlib f64 fwd+bwd", nfb / t[("hwlib f64", "fwdbwd")], ">=", NAIVE_SPEEDUP_TARGET))
        elif label.startswith("max-pool 2x2"):
            checks.append(Check(f"{label}: hwlib/torch f64 fwd+bwd", ratio, "<=", POOL_TARGET, best))
    return rows, checks

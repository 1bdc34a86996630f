"""Model benchmark: one training iteration of the kit's networks, hwlib against PyTorch CPU.

An iteration is forward + backward + a plain SGD step on one minibatch of MNIST-shaped inputs:

* hwlib: ``model.loss(X, y)``, then :func:`hwlib.optim.sgd` on every parameter;
* PyTorch: the same network (same layers, same weights, same dtype, same batch) with
  ``zero_grad``, forward, ``cross_entropy``, ``backward`` and ``torch.optim.SGD.step`` (no
  momentum). Before timing, the two must give the same loss (else the suite refuses to run).

Cases: the ConvNet (32 filters 7x7, 100 hidden units) in float32, its default dtype, and the
two-layer net (100 hidden units) in float64 (its default) and float32, at batches of 50 and 100.
In the table, ``fwd`` is a forward pass giving the scores and ``fwd+bwd`` the whole training
iteration; the note gives the epoch-equivalent time (55,000 images / batch x iteration).

Targets (training iteration, batch 100): the ConvNet within 1.5x of PyTorch, the two-layer net
within 1.2x.
"""

from __future__ import annotations

import numpy as np

from hwlib.classifiers import ConvNet, SoftmaxClassifier
from hwlib.optim import sgd

from . import Check, Row, setup_torch, time_interleaved

NUM_TRAIN = 55_000          # MNIST training images per epoch (the seed's split)
LEARNING_RATE = 1e-3
CONVNET_TARGET, TWO_LAYER_TARGET = 1.5, 1.2

# (model name, dtype, target ratio of the training iteration hwlib / PyTorch)
CASES = (
    ("ConvNet", np.float32, CONVNET_TARGET),
    ("SoftmaxClassifier", np.float64, TWO_LAYER_TARGET),
    ("SoftmaxClassifier", np.float32, TWO_LAYER_TARGET),
)
BATCH_SIZES = (50, 100)
TARGET_BATCH = 100


def _hwlib_model(name, dtype, rng):
    if name == "ConvNet":
        return ConvNet(weight_scale=1e-2, dtype=dtype, rng=rng)
    return SoftmaxClassifier(weight_scale=1e-2, dtype=dtype, rng=rng)


def _torch_model(torch, model):
    """The same network as ``model`` in PyTorch, with ``model``'s weights and dtype."""
    nn = torch.nn
    p = {k: torch.from_numpy(np.array(v)) for k, v in model.params.items()}
    if isinstance(model, ConvNet):
        F, C, k, _ = p["W1"].shape
        conv, fc1, fc2 = nn.Conv2d(C, F, k, bias=False), nn.Linear(*p["W2"].shape), nn.Linear(*p["W3"].shape)
        net = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(), fc1, nn.ReLU(), fc2)
        weights = {conv.weight: p["W1"], fc1.weight: p["W2"].T, fc1.bias: p["b2"],
                   fc2.weight: p["W3"].T, fc2.bias: p["b3"]}
    else:
        fc1, fc2 = nn.Linear(*p["W1"].shape), nn.Linear(*p["W2"].shape)
        net = nn.Sequential(nn.Flatten(), fc1, nn.ReLU(), fc2)
        weights = {fc1.weight: p["W1"].T, fc1.bias: p["b1"], fc2.weight: p["W2"].T, fc2.bias: p["b2"]}
    net = net.to(p["W1"].dtype)
    with torch.no_grad():
        for param, value in weights.items():
            param.copy_(value)
    return net


def _hwlib_fns(model, X, y):
    """(scores, training iteration) closures of an hwlib model."""
    def step():
        _, grads = model.loss(X, y)
        for k, w in model.params.items():
            model.params[k], _ = sgd(w, grads[k], {"learning_rate": LEARNING_RATE})
    return (lambda: model.loss(X)), step


def _torch_fns(torch, net, X, y):
    """(scores, training iteration) closures of a PyTorch network."""
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()

    def scores():
        with torch.no_grad():
            return net(X)
    return scores, step


def _check_same_network(torch, model, net, X, y):
    """Refuse to time two networks that do not compute the same loss."""
    ours, _ = model.loss(X, y)
    theirs = torch.nn.functional.cross_entropy(net(torch.from_numpy(X)), torch.from_numpy(y)).item()
    if not abs(ours - theirs) <= 1e-4 * abs(theirs):
        raise RuntimeError(f"bench.models: {type(model).__name__}: hwlib loss {ours} != PyTorch loss {theirs}")


def run(quick: bool = False):
    """Time every case; return ``(rows, checks)``."""
    torch = setup_torch()
    rng = np.random.default_rng(545)
    budget_s = 2.0 if quick else 8.0
    rows, checks = [], []
    for name, dtype, target in CASES:
        tag = "f32" if dtype == np.float32 else "f64"
        for batch in BATCH_SIZES:
            model = _hwlib_model(name, dtype, rng)
            net = _torch_model(torch, model)
            X = rng.standard_normal((batch, 1, 28, 28)).astype(dtype)
            y = rng.integers(0, 10, size=batch)
            _check_same_network(torch, model, net, X, y)
            candidates = {}
            for impl, (fwd, step) in ((f"hwlib {tag}", _hwlib_fns(model, X, y)),
                                      (f"torch {tag}", _torch_fns(torch, net, X, y))):
                candidates[(impl, "fwd")], candidates[(impl, "step")] = fwd, step
            t = time_interleaved(candidates, budget_s=budget_s, min_repeats=5 if quick else 11)
            label = f"{name} train step batch {batch}"
            ref = f"torch {tag}"
            for impl in (f"hwlib {tag}", ref):
                f, s = t[(impl, "fwd")], t[(impl, "step")]
                row = Row(label, impl, f, s, note=f"epoch ~{s * NUM_TRAIN / batch:.1f} s")
                if impl != ref:
                    row.ratio_fwd, row.ratio_fwdbwd, row.ratio_to = f / t[(ref, "fwd")], s / t[(ref, "step")], ref
                rows.append(row)
            if batch == TARGET_BATCH:
                checks.append(Check(f"{label}: hwlib/torch {tag} training iteration",
                                    t[(f"hwlib {tag}", "step")] / t[(ref, "step")], "<=", target))
    return rows, checks


if __name__ == "__main__":  # python -m bench.models: this suite alone
    from .__main__ import print_table

    rows, checks = run(quick="--quick" in __import__("sys").argv)
    print_table("models", rows)
    for c in checks:
        print(f"{'PASS' if c.passed else 'FAIL'}  {c.name} = {c.value:.2f}  (target {c.op} {c.target:g})")

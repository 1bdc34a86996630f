"""Model benchmark: one training iteration of the kit's networks, hwlib against PyTorch CPU.

An iteration is forward + backward + a plain SGD step on one minibatch of MNIST-shaped inputs:

* hwlib: ``model.loss(X, y)``, then :func:`hwlib.optim.sgd` on every parameter;
* PyTorch: the same network (same layers, same initial weights, same dtype, same batch) with
  ``zero_grad``, forward, ``cross_entropy``, ``backward`` and ``torch.optim.SGD.step`` (no
  momentum). Both processes report the loss of the first batch; the suite refuses to compare two
  networks whose losses differ.

Cases: the ConvNet (32 filters 7x7, 100 hidden units) in float32, its default dtype, and the
two-layer net (100 hidden units) in float64 (its default) and float32, at batches of 50 and 100.
In the table, ``fwd`` is a forward pass giving the scores and ``fwd+bwd`` the whole training
iteration; the note gives the epoch-equivalent time (55,000 images / batch x iteration).

Targets (training iteration, batch 100, median of the per-round ratios): the ConvNet and the
two-layer net at most as slow as PyTorch (1.0x).
"""

from __future__ import annotations

import numpy as np

from . import Check, Row, median_of, ratios, setup_torch, spread, time_block

NUM_TRAIN = 55_000          # MNIST training images per epoch (the seed's split)
LEARNING_RATE = 1e-3
CONVNET_TARGET, TWO_LAYER_TARGET = 1.0, 1.0

# (model name, dtype tag, target ratio of the training iteration hwlib / PyTorch)
CASES = (
    ("ConvNet", "f32", CONVNET_TARGET),
    ("SoftmaxClassifier", "f64", TWO_LAYER_TARGET),
    ("SoftmaxClassifier", "f32", TWO_LAYER_TARGET),
)
BATCH_SIZES = (50, 100)
TARGET_BATCH = 100
IMPLS = ("hwlib f64", "torch f64", "hwlib f32", "torch f32")
ONCE = ()
DTYPES = {"f32": np.float32, "f64": np.float64}


def _label(name, batch):
    return f"{name} train step batch {batch}"


def hwlib_model(name, dtype, seed):
    """The network as hwlib builds it (its initial weights also seed the PyTorch copy)."""
    from hwlib.classifiers import ConvNet, SoftmaxClassifier

    rng = np.random.default_rng(seed)
    if name == "ConvNet":
        return ConvNet(weight_scale=1e-2, dtype=dtype, rng=rng)
    return SoftmaxClassifier(weight_scale=1e-2, dtype=dtype, rng=rng)


def torch_model(torch, model):
    """The same network as the hwlib ``model`` in PyTorch, with ``model``'s weights and dtype."""
    nn = torch.nn
    p = {k: torch.from_numpy(np.array(v)) for k, v in model.params.items()}
    if "W3" in p:   # ConvNet: conv (no bias) - relu - 2x2 pool - fc - relu - fc
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
    """(first loss, scores, training iteration) of an hwlib model."""
    from hwlib.optim import sgd

    def step():
        _, grads = model.loss(X, y)
        for k, w in model.params.items():
            model.params[k], _ = sgd(w, grads[k], {"learning_rate": LEARNING_RATE})
    return model.loss(X, y)[0], (lambda: model.loss(X)), step


def _torch_fns(torch, net, X, y):
    """(first loss, scores, training iteration) of a PyTorch network."""
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)

    def step():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()

    def scores():
        with torch.no_grad():
            return net(X)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(net(X), y).item()
    return loss, scores, step


def measure(impl: str, quick: bool = False) -> dict:
    """Time every case of ``impl``'s dtype; ``{case: {"fwd", "fwdbwd", "loss"}}``."""
    library, tag = impl.split()
    torch = setup_torch() if library == "torch" else None
    budget_s = 0.5 if quick else 1.5
    result = {}
    for index, (name, case_tag, _) in enumerate(CASES):
        if case_tag != tag:
            continue
        for batch in BATCH_SIZES:
            rng = np.random.default_rng(1000 * index + batch)
            X = rng.standard_normal((batch, 1, 28, 28)).astype(DTYPES[tag])
            y = rng.integers(0, 10, size=batch)
            model = hwlib_model(name, DTYPES[tag], seed=index)
            if torch is None:
                loss, fwd, step = _hwlib_fns(model, X, y)
            else:
                loss, fwd, step = _torch_fns(torch, torch_model(torch, model), X, y)
            result[_label(name, batch)] = {"loss": loss, "fwd": time_block(fwd, budget_s),
                                           "fwdbwd": time_block(step, budget_s)}
    return result


def report(results: dict, quick: bool = False):
    """Rows (medians over rounds, per-round ratios) and the targets' checks."""
    rows, checks = [], []
    for name, tag, target in CASES:
        impl, ref = f"hwlib {tag}", f"torch {tag}"
        for batch in BATCH_SIZES:
            label = _label(name, batch)
            ours, theirs = results[impl][0][label]["loss"], results[ref][0][label]["loss"]
            if not abs(ours - theirs) <= 1e-4 * abs(theirs):
                raise RuntimeError(f"bench.models: {label} {tag}: hwlib loss {ours} != PyTorch loss {theirs}: "
                                   "not the same network, the times would not compare")
            r_f, r_s = ratios(results, impl, ref, label, "fwd"), ratios(results, impl, ref, label, "fwdbwd")
            for who in (impl, ref):
                step = median_of(results, who, label, "fwdbwd")
                row = Row(label, who, median_of(results, who, label, "fwd"), step,
                          note=f"epoch ~{step * NUM_TRAIN / batch:.1f} s")
                if who == impl:
                    row.ratio_fwd, row.ratio_fwdbwd, row.ratio_to = float(np.median(r_f)), float(np.median(r_s)), ref
                    row.note += f"; step {spread(r_s)}"
                rows.append(row)
            if batch == TARGET_BATCH:
                checks.append(Check(f"{label}: hwlib/torch {tag} training iteration", float(np.median(r_s)), "<=",
                                    target, spread(r_s), label, impl, ref))
    return rows, checks

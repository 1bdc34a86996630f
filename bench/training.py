"""Training benchmark: notebook 03's graded run, hwlib's Solver against the same training in PyTorch.

The case is the seed's Q3 procedure on the full MNIST set (55,000 training and 5,000 validation
images, raw pixels 0..255, float32): ``ConvNet(num_filters=32, filter_size=7, hidden_dim=100,
weight_scale=1e-3)``, SGD at 1e-3 with ``lr_decay=0.95`` per epoch, batch 100, 10 epochs, and the
Solver's accuracy checks (1,000 training and all validation images after the first iteration and
after every epoch). PyTorch trains the same network from the same initial weights with
``torch.optim.SGD`` and the same schedule, batches and accuracy checks. The figure is the wall time
of the whole training (data already in memory), one round by default: each takes minutes.

It needs the full MNIST set in the data root: ``python -m bench --only training --data-root DIR``
(``make bench`` leaves it out; ``make bench-training`` runs it with the shared data when present).

Target: hwlib within 1.1x of PyTorch.
"""

from __future__ import annotations

import time

import numpy as np

from . import Check, Row, median_of, ratios, setup_torch, spread

TARGET = 1.1
CASE = "ConvNet 10 epochs, full MNIST (notebook 03's graded run)"
IMPLS = ("hwlib f32", "torch f32")
ONCE = ()
ROUNDS = 1
SETTINGS = dict(update_rule="sgd", optim_config={"learning_rate": 1e-3}, lr_decay=0.95, num_epochs=10, batch_size=100)


def _data(quick: bool):
    from hwlib.data import load_mnist
    from hwlib.data.mnist import FULL_SOURCE

    data = load_mnist(normalize=False, verbose=False,
                      max_per_split={"train": 2000, "val": 500, "test": 10} if quick else None)
    if data["source"] != FULL_SOURCE and not quick:
        raise RuntimeError("bench training: the full MNIST set is not in the data root; get it with "
                           "`python -m hwlib.data fetch mnist` or pass --data-root DIR (a folder with mnist/)")
    return data


def _hwlib(data, model, epochs):
    from hwlib.solver import Solver

    solver = Solver(model, data, **{**SETTINGS, "num_epochs": epochs}, verbose=False, show_progress=False, seed=0)
    start = time.perf_counter()
    solver.train()
    return time.perf_counter() - start, float(solver.best_val_acc)


def _torch(data, model, epochs):
    """The Solver's loop, in PyTorch: per epoch a fresh permutation, SGD, decay, accuracy checks."""
    from .models import torch_model

    torch = setup_torch()
    net = torch_model(torch, model)
    X, y = torch.from_numpy(data["X_train"]), torch.from_numpy(data["y_train"])
    X_val, y_val = torch.from_numpy(data["X_val"]), torch.from_numpy(data["y_val"])
    opt = torch.optim.SGD(net.parameters(), lr=SETTINGS["optim_config"]["learning_rate"])
    rng = np.random.default_rng(0)
    batch = SETTINGS["batch_size"]

    def accuracy(images, labels):
        with torch.no_grad():
            hits = sum(int((net(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum())
                       for i in range(0, len(labels), batch))
        return hits / len(labels)

    def check():
        sample = torch.from_numpy(rng.choice(len(y), 1000, replace=False))
        accuracy(X[sample], y[sample])
        return accuracy(X_val, y_val)

    start = time.perf_counter()
    best = 0.0
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        for it in range(len(y) // batch):
            idx = order[it * batch:(it + 1) * batch]
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
            if epoch == 0 and it == 0:
                best = max(best, check())
        for group in opt.param_groups:
            group["lr"] *= SETTINGS["lr_decay"]
        best = max(best, check())
    return time.perf_counter() - start, best


def measure(impl: str, quick: bool = False) -> dict:
    """Train once with ``impl``; ``{CASE: {"seconds", "val_acc"}}``."""
    from hwlib.classifiers import ConvNet

    data = _data(quick)
    model = ConvNet(num_filters=32, filter_size=7, hidden_dim=100, weight_scale=1e-3, rng=np.random.default_rng(0))
    epochs = 1 if quick else SETTINGS["num_epochs"]
    seconds, val_acc = (_hwlib if impl.startswith("hwlib") else _torch)(data, model, epochs)
    return {CASE: {"fwd": float("nan"), "fwdbwd": seconds, "val_acc": val_acc}}


def report(results: dict, quick: bool = False):
    r = ratios(results, "hwlib f32", "torch f32", CASE, "fwdbwd")
    rows = []
    for impl in IMPLS:
        acc = ", ".join(f"{run[CASE]['val_acc']:.4f}" for run in results[impl])
        row = Row(CASE, impl, float("nan"), median_of(results, impl, CASE, "fwdbwd"), note=f"best val acc {acc}")
        if impl == "hwlib f32":
            row.ratio_fwdbwd, row.ratio_to = float(np.median(r)), "torch f32"
            row.note += f"; {spread(r)}"
        rows.append(row)
    return rows, [Check(f"{CASE}: hwlib/torch f32 wall time", float(np.median(r)), "<=", TARGET, spread(r), CASE, "hwlib f32",
                        "torch f32")]

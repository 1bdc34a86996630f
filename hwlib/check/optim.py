"""Targets of the update rules of ``hwlib.optim`` (Q2, extended profile): ``sgd_momentum``, ``rmsprop``, ``adam``.

A case runs a rule for several steps from a drawn state that is not zero (as in the middle of
training), passing each call the ``next_w`` and the config that the previous call returned, and
compares every ``next_w`` and the final state with PyTorch's optimisers run from the same state:

* ``sgd_momentum``: ``torch.optim.SGD(momentum=momentum)``. cs231n keeps a velocity
  (``v = momentum * v - lr * dw``; ``w + v``), PyTorch a momentum buffer (``b = momentum * b + dw``;
  ``w - lr * b``): the same trajectory with ``b = -v / lr`` while the learning rate is constant;
* ``rmsprop``: ``torch.optim.RMSprop(alpha=decay_rate)``, its ``square_avg`` the cache;
* ``adam``: ``torch.optim.Adam(betas=(beta1, beta2))``, its ``exp_avg``, ``exp_avg_sq`` and ``step``
  the moments m, v and the step count t.

Inputs: ``w``; ``dw`` of shape (steps, *w.shape), ``dw[k]`` the gradient of step k + 1; ``config`` the
hyperparameters (drawn away from the defaults; epsilon large enough that where it goes shows in the
result) and, for adam, ``t``; the state arrays (``velocity``, ``cache``, ``m`` and ``v``), which the
rule gets in its config. Outputs: ``next_w/1`` ... ``next_w/<steps>`` and ``config/<key>``, the final
state. References compute in float64 and round to w's dtype; the rules of :mod:`.watch` hold (w and
dw left unchanged, any memory layout, w's dtype kept or noted: ``strict_dtypes``). A rule may update its own state arrays in
place: they are the config's, which the rule owns.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from .engine import Target, compare
from .watch import Watch, laid_out

__all__ = ["Rule", "TARGETS"]

_MODULE = "hwlib.optim"


@dataclass(frozen=True)
class Rule:
    """An update rule's row: its hyperparameters' ranges, its state arrays and its PyTorch optimiser."""

    name: str
    hyper: tuple         # (hyperparameter, low, high): drawn uniformly, 3 significant digits
    state: tuple         # the state arrays the rule keeps in its config
    counts_steps: bool = False   # keeps the step count ``t`` in its config (adam)

    # --- draw ---------------------------------------------------------------------------------

    def draw(self, rng, dtype, shape=(3, 4), steps=3) -> dict:
        shape, steps = _shape(self.name, shape), _steps(self.name, steps)
        config = {k: float(f"{rng.uniform(low, high):.3g}") for k, low, high in self.hyper}
        inputs = {"w": rng.standard_normal(shape).astype(dtype),
                  "dw": rng.standard_normal((steps, *shape)).astype(dtype), "config": config}
        for key in self.state:
            inputs[key] = _STATE_DRAWS[key](rng, shape, config).astype(dtype)
        if self.counts_steps:
            config["t"] = int(rng.integers(1, 6))   # mid-training: the bias correction still matters
        return inputs

    # --- run (the student's code) ---------------------------------------------------------------

    def run(self, inputs: dict) -> dict:
        """Call the rule once per gradient, chaining the returned weights and config; record every
        ``next_w``, the final state, and what the calls left of w and dw (:class:`.watch.Watch`)."""
        update = getattr(importlib.import_module(_MODULE), self.name)
        record = Watch(inputs)
        # The rule's state is its config's: it gets copies, so updating them in place is no change of an input.
        config = {**inputs["config"], **{k: laid_out(inputs[k], inputs.get("_layout")) for k in self.state}}
        w, outputs = inputs["w"], {}
        for step, dw in enumerate(inputs["dw"], start=1):
            result = update(w, dw, config)
            record.after(self.name)
            if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
                raise TypeError(f"{self.name} must return (next_w, config), config a dict; got {_kind(result)}")
            w, config = result
            outputs[f"next_w/{step}"] = np.array(w, copy=True)
        for key in self.state + (("t",) if self.counts_steps else ()):
            if key in config:
                outputs[f"config/{key}"] = np.array(config[key], copy=True)
        return {**outputs, **record.outputs()}

    # --- reference (PyTorch) and judge ---------------------------------------------------------------

    def reference(self, inputs: dict) -> dict:
        import torch
        dtype, cfg = inputs["w"].dtype, inputs["config"]

        def tensor(a):
            return torch.tensor(np.array(a, dtype=np.float64, order="C"))

        param = torch.nn.Parameter(tensor(inputs["w"]))
        optimizer, to_state, from_state = _TORCH[self.name](torch, param, cfg)
        optimizer.state[param] = to_state({k: tensor(inputs[k]) for k in self.state}, cfg)
        expected = {}
        for step, dw in enumerate(inputs["dw"], start=1):
            param.grad = tensor(dw)
            optimizer.step()
            expected[f"next_w/{step}"] = param.detach().numpy().astype(dtype)
        for key, value in from_state(optimizer.state[param], cfg).items():
            expected[f"config/{key}"] = value if key == "t" else value.numpy().astype(dtype)
        return expected

    def judge(self, outputs: dict, expected: dict, inputs: dict, label: str = "reference") -> dict:
        """The worst relative error of the weights (over the steps) and of each state array; the step
        count must be exact."""
        floats = {k: v for k, v in expected.items() if k != "config/t"}
        worst = compare(self.name, outputs, floats, expected_label=label)
        if "config/t" in expected:
            t0, got = inputs["config"]["t"], outputs.get("config/t")
            if got is None:
                raise AssertionError(f"{self.name}: the returned config has no 't' (the number of steps taken)")
            got = np.asarray(got)
            if got.shape != () or got.dtype.kind not in "iu" or int(got) != expected["config/t"]:
                raise AssertionError(f"{self.name}: config['t'] is {got!r} after {len(inputs['dw'])} steps from "
                                     f"t = {t0}; expected the integer {expected['config/t']} (one more per step)")
        summary = {"next_w": max(v for k, v in worst.items() if k.startswith("next_w/"))}
        return {**summary, **{k.partition("/")[2]: v for k, v in worst.items() if k.startswith("config/")}}

    def target(self, cases: tuple) -> Target:
        return Target(self.name, _MODULE, self.draw, self.run, self.reference, self.judge, cases=cases,
                      watch=((self.name, ("w", "dw", "config")),), held="the config")


def _shape(name: str, shape) -> tuple:
    try:
        shape = tuple(int(n) for n in shape) if not isinstance(shape, (str, bytes)) else None
    except (TypeError, ValueError):
        shape = None
    if not shape or min(shape) < 1:
        raise ValueError(f"{name}: the draw's shape must be a non-empty tuple of positive integers (w's shape), "
                         "e.g. (3, 4)")
    return shape


def _steps(name: str, steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"{name}: the draw's steps must be an integer >= 1 (how many updates to chain); got {steps!r}")
    return int(steps)


def _kind(value) -> str:
    return f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__


# State arrays drawn as in mid-training: a velocity of the size of a step, positive second moments.
_STATE_DRAWS = {
    "velocity": lambda rng, shape, config: config["learning_rate"] * rng.standard_normal(shape),
    "cache": lambda rng, shape, config: rng.uniform(0.1, 1.0, shape),
    "m": lambda rng, shape, config: 0.5 * rng.standard_normal(shape),
    "v": lambda rng, shape, config: rng.uniform(0.1, 1.0, shape),
}


# --- the PyTorch optimisers: (optimiser, our state -> theirs, theirs -> our final state) ---------------

def _sgd_momentum(torch, param, cfg):
    lr = cfg["learning_rate"]
    optimizer = torch.optim.SGD([param], lr=lr, momentum=cfg["momentum"], foreach=False)
    return (optimizer, lambda s, c: {"momentum_buffer": -s["velocity"] / lr},
            lambda s, c: {"velocity": -lr * s["momentum_buffer"]})


def _rmsprop(torch, param, cfg):
    optimizer = torch.optim.RMSprop([param], lr=cfg["learning_rate"], alpha=cfg["decay_rate"], eps=cfg["epsilon"],
                                    foreach=False)
    return (optimizer, lambda s, c: {"step": torch.tensor(0.0), "square_avg": s["cache"]},
            lambda s, c: {"cache": s["square_avg"]})


def _adam(torch, param, cfg):
    optimizer = torch.optim.Adam([param], lr=cfg["learning_rate"], betas=(cfg["beta1"], cfg["beta2"]),
                                 eps=cfg["epsilon"], foreach=False)
    return (optimizer, lambda s, c: {"step": torch.tensor(float(c["t"])), "exp_avg": s["m"], "exp_avg_sq": s["v"]},
            lambda s, c: {"m": s["exp_avg"], "v": s["exp_avg_sq"], "t": int(s["step"].item())})


_TORCH = {"sgd_momentum": _sgd_momentum, "rmsprop": _rmsprop, "adam": _adam}


# --- the table ---------------------------------------------------------------------------------------

TARGETS = (
    Rule("sgd_momentum", (("learning_rate", 0.05, 0.2), ("momentum", 0.5, 0.85)), ("velocity",)).target(
        ({"shape": (3, 4), "steps": 3}, {"shape": (10,), "steps": 2}, {"shape": (2, 3, 2), "steps": 4})),
    Rule("rmsprop", (("learning_rate", 0.02, 0.1), ("decay_rate", 0.8, 0.95), ("epsilon", 0.05, 0.2)),
         ("cache",)).target(
        ({"shape": (5, 2), "steps": 3}, {"shape": (6,), "steps": 5}, {"shape": (2, 2, 3), "steps": 2})),
    Rule("adam", (("learning_rate", 0.02, 0.1), ("beta1", 0.7, 0.85), ("beta2", 0.9, 0.98), ("epsilon", 0.05, 0.2)),
         ("m", "v"), counts_steps=True).target(
        ({"shape": (4, 3), "steps": 3}, {"shape": (9,), "steps": 4}, {"shape": (2, 3, 2), "steps": 2})),
)

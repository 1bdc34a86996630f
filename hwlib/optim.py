"""First-order update rules for training neural networks (as in cs231n's ``optim.py``).

Every rule has the same signature, documented here once::

    next_w, config = update(w, dw, config=None)

Inputs:
- w: array of any shape, the current weights (it is not modified: ``next_w`` is a new array)
- dw: array of the same shape as w, the gradient of the loss with respect to w
- config: dict of hyperparameters and of the rule's state (moving averages, step count), or
  None for the defaults. Missing keys get their defaults; the state keys are created on the
  first call. The dict is updated in place and returned, so pass the returned config to the next
  call for the same w (the :class:`hwlib.solver.Solver` keeps one config per parameter).

Returns ``(next_w, config)``: next_w shaped like w (same dtype), config the updated dict.

Keys (default in brackets):

============  =========================================================================
rule          keys
============  =========================================================================
sgd           learning_rate [1e-2]
sgd_momentum  learning_rate [1e-2], momentum [0.9]; state: velocity [zeros like w]
rmsprop       learning_rate [1e-2], decay_rate [0.99], epsilon [1e-8];
              state: cache [zeros like w]
adam          learning_rate [1e-3], beta1 [0.9], beta2 [0.999], epsilon [1e-8];
              state: m [zeros], v [zeros], t [0] (the number of steps taken)
============  =========================================================================

An unknown key (a typo like ``learning_rat``) raises ``ValueError`` naming it, instead of being
silently ignored while the default learning rate trains the model.

In the course's ``seed`` profile the update rules are given code (students use them through the
Solver, as in the homework). In the course's ``extended`` profile students write the core
of ``sgd_momentum``, ``rmsprop`` and ``adam``: the code between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, which that profile's student release replaces with a stub for them to fill in.
"""

from __future__ import annotations

import math

import numpy as np

from .validation import as_array, require

__all__ = ["sgd", "sgd_momentum", "rmsprop", "adam", "UPDATE_RULES", "DEFAULTS", "check_config"]


# Hyperparameter defaults and state keys of every rule (cs231n's values).
DEFAULTS: dict[str, dict[str, float]] = {
    "sgd": {"learning_rate": 1e-2},
    "sgd_momentum": {"learning_rate": 1e-2, "momentum": 0.9},
    "rmsprop": {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8},
    "adam": {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
}
_STATE_KEYS: dict[str, tuple[str, ...]] = {
    "sgd": (),
    "sgd_momentum": ("velocity",),
    "rmsprop": ("cache",),
    "adam": ("m", "v", "t"),
}
# Allowed ranges of the hyperparameters: (low, high, low inclusive, high inclusive).
_RANGES = {
    "learning_rate": (0.0, math.inf, False, False),
    "momentum": (0.0, 1.0, True, False),
    "decay_rate": (0.0, 1.0, True, False),
    "beta1": (0.0, 1.0, True, False),
    "beta2": (0.0, 1.0, True, False),
    "epsilon": (0.0, math.inf, False, False),
}


def check_config(rule: str, config: dict | None) -> dict:
    """Validate ``config`` for update rule ``rule``; return it (a new dict if None) with defaults filled.

    Raises ``ValueError`` for an unknown rule, an unknown key, or a hyperparameter out of range
    (e.g. a negative learning rate, momentum >= 1).
    """
    if rule not in DEFAULTS:
        raise ValueError(f"unknown update rule {rule!r}; valid update rules: {', '.join(DEFAULTS)}")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"{rule}: config must be a dict or None; got {type(config).__name__}")
    allowed = set(DEFAULTS[rule]) | set(_STATE_KEYS[rule])
    unknown = sorted(set(config) - allowed, key=str)
    if unknown:
        raise ValueError(
            f"{rule}: unknown config key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys: {', '.join(list(DEFAULTS[rule]) + list(_STATE_KEYS[rule]))}"
        )
    for key, default in DEFAULTS[rule].items():
        config.setdefault(key, default)
        value = config[key]
        low, high, low_in, high_in = _RANGES[key]
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value >= low if low_in else value > low) and (value <= high if high_in else value < high)
        if not ok:
            interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
            raise ValueError(f"{rule}: config[{key!r}] must be a finite number in {interval}; got {value!r}")
        config[key] = float(value)  # a Python float keeps a float32 w float32 (NumPy 2 promotion)
    return config


def _prepare(rule: str, w, dw, config):
    """Common input handling: arrays, matching shapes, a validated config."""
    w = as_array(rule, "w", w)
    dw = as_array(rule, "dw", dw)
    require(dw.shape == w.shape, rule, f"dw must have the shape of w {w.shape}; got shape {dw.shape}")
    return w, dw, check_config(rule, config)


def _state(rule: str, config: dict, key: str, w: np.ndarray) -> None:
    """Create the state array ``config[key]`` (zeros like w) or check that it matches w's shape."""
    if key not in config:
        config[key] = np.zeros_like(w)
    else:
        config[key] = as_array(rule, f"config[{key!r}]", config[key])
        require(config[key].shape == w.shape, rule,
                f"config[{key!r}] must have the shape of w {w.shape}; got shape {config[key].shape} "
                "(a config is per parameter: do not share one between weights of different shapes)")


# --- update rules ----------------------------------------------------------------------------------

def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config: learning_rate. See the module docstring for the shared signature.
    """
    w, dw, config = _prepare("sgd", w, dw, config)
    next_w = w - config["learning_rate"] * dw
    return next_w, config


def sgd_momentum(w, dw, config=None):
    """Stochastic gradient descent with momentum (cs231n's form).

    ``v = momentum * v - learning_rate * dw``; ``next_w = w + v``. (PyTorch's SGD keeps
    ``b = momentum * b + dw`` and steps by ``-learning_rate * b``: the same trajectory while the
    learning rate is constant.)

    config: learning_rate, momentum; state velocity (zeros like w on the first call).
    """
    w, dw, config = _prepare("sgd_momentum", w, dw, config)
    _state("sgd_momentum", config, "velocity", w)
    ### BEGIN SOLUTION
    v = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
    next_w = w + v
    config["velocity"] = v
    ### END SOLUTION
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSProp: scale each step by a moving average of the squared gradient.

    ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``;
    ``next_w = w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config: learning_rate, decay_rate, epsilon; state cache (zeros like w on the first call).
    """
    w, dw, config = _prepare("rmsprop", w, dw, config)
    _state("rmsprop", config, "cache", w)
    ### BEGIN SOLUTION
    cache = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    config["cache"] = cache
    ### END SOLUTION
    return next_w, config


def adam(w, dw, config=None):
    """Adam with bias correction (Kingma & Ba, 2015), as in cs231n's latest version.

    The step count is incremented first, so the first step uses ``t = 1``::

        t = t + 1
        m = beta1 * m + (1 - beta1) * dw          # first moment
        v = beta2 * v + (1 - beta2) * dw**2       # second moment
        m_hat = m / (1 - beta1**t);  v_hat = v / (1 - beta2**t)
        next_w = w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    config: learning_rate, beta1, beta2, epsilon; state m, v (zeros like w), t (0).
    """
    w, dw, config = _prepare("adam", w, dw, config)
    _state("adam", config, "m", w)
    _state("adam", config, "v", w)
    config.setdefault("t", 0)
    t = config["t"]
    require(isinstance(t, (int, np.integer)) and t >= 0, "adam", f"config['t'] must be an integer >= 0; got {t!r}")
    ### BEGIN SOLUTION
    t = int(t) + 1
    beta1, beta2 = config["beta1"], config["beta2"]
    m = beta1 * config["m"] + (1 - beta1) * dw
    v = beta2 * config["v"] + (1 - beta2) * dw**2
    m_hat = m / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    config["t"], config["m"], config["v"] = t, m, v
    ### END SOLUTION
    return next_w, config


# The rules the Solver accepts by name.
UPDATE_RULES = {"sgd": sgd, "sgd_momentum": sgd_momentum, "rmsprop": rmsprop, "adam": adam}

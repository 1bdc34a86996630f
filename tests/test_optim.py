"""Update rules of hwlib.optim: hand-computed steps, PyTorch's optimizers over several steps, bad input, and
the student's version (stubs in the extended profile, working code in the seed profile)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from hwlib import optim
from hwlib.gradient_check import assert_close

RULES = ["sgd", "sgd_momentum", "rmsprop", "adam"]


# --- hand-computed single steps (scalars in 1-element arrays, worked out in the comments) -------

def test_sgd_step_by_hand():
    # w = 1.0, dw = 2.0, lr = 0.1  ->  1.0 - 0.1 * 2.0 = 0.8
    next_w, config = optim.sgd(np.array([1.0, -3.0]), np.array([2.0, 0.5]), {"learning_rate": 0.1})
    assert_close(next_w, [0.8, -3.05], name="sgd next_w")
    assert config == {"learning_rate": 0.1}


def test_sgd_momentum_steps_by_hand():
    config = {"learning_rate": 0.1, "momentum": 0.9}
    # step 1: v = 0.9 * 0 - 0.1 * 2 = -0.2;           w = 1 - 0.2 = 0.8
    w, config = optim.sgd_momentum(np.array([1.0]), np.array([2.0]), config)
    assert_close(w, [0.8], name="w after step 1")
    assert_close(config["velocity"], [-0.2], name="velocity after step 1")
    # step 2: v = 0.9 * -0.2 - 0.1 * 1 = -0.28;       w = 0.8 - 0.28 = 0.52
    w, config = optim.sgd_momentum(w, np.array([1.0]), config)
    assert_close(w, [0.52], name="w after step 2")
    assert_close(config["velocity"], [-0.28], name="velocity after step 2")


def test_rmsprop_steps_by_hand():
    config = {"learning_rate": 0.1, "decay_rate": 0.5, "epsilon": 1e-8}
    # step 1: cache = 0.5 * 0 + 0.5 * 4 = 2;          w = 1 - 0.1 * 2 / (sqrt(2) + 1e-8)
    w, config = optim.rmsprop(np.array([1.0]), np.array([2.0]), config)
    assert_close(config["cache"], [2.0], name="cache after step 1")
    assert_close(w, [1 - 0.2 / (np.sqrt(2) + 1e-8)], name="w after step 1")
    # step 2: cache = 0.5 * 2 + 0.5 * 1 = 1.5;        w -= 0.1 * 1 / (sqrt(1.5) + 1e-8)
    w2, config = optim.rmsprop(w, np.array([1.0]), config)
    assert_close(config["cache"], [1.5], name="cache after step 2")
    assert_close(w2, w - 0.1 / (np.sqrt(1.5) + 1e-8), name="w after step 2")


def test_adam_first_steps_by_hand_bias_corrected():
    config = {"learning_rate": 0.1, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}
    # step 1 (t becomes 1): m = 0.1 * 2 = 0.2, v = 0.001 * 4 = 0.004
    #   m_hat = 0.2 / 0.1 = 2, v_hat = 0.004 / 0.001 = 4  ->  w = 1 - 0.1 * 2 / (2 + 1e-8)
    # (without the bias correction the step would be 0.1 * 0.2 / sqrt(0.004) = 0.316, not ~0.1)
    w, config = optim.adam(np.array([1.0]), np.array([2.0]), config)
    assert config["t"] == 1, "adam must increment t before using it (the first step uses t = 1)"
    assert_close(config["m"], [0.2], name="m after step 1")
    assert_close(config["v"], [0.004], name="v after step 1")
    assert_close(w, [1 - 0.2 / (2 + 1e-8)], name="w after step 1")
    # step 2 (t = 2), dw = -1: m = 0.9 * 0.2 - 0.1 = 0.08, v = 0.999 * 0.004 + 0.001 = 0.004996
    #   m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999
    w2, config = optim.adam(w, np.array([-1.0]), config)
    assert config["t"] == 2
    m_hat, v_hat = 0.08 / (1 - 0.9**2), 0.004996 / (1 - 0.999**2)
    assert_close(w2, w - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8), name="w after step 2")


# --- several steps against PyTorch's optimizers --------------------------------------------------

def _run_ours(rule, w0, grads, config):
    w = w0.copy()
    for g in grads:
        w, config = getattr(optim, rule)(w, g, config)
    return w


def _run_torch(make_optimizer, w0, grads):
    p = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = make_optimizer([p])
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p.detach().numpy()


@pytest.mark.parametrize("rule, config, make_optimizer", [
    ("sgd", {"learning_rate": 0.05}, lambda ps: torch.optim.SGD(ps, lr=0.05)),
    # cs231n's momentum (v = mu v - lr dw; w += v) and PyTorch's (b = mu b + dw; w -= lr b)
    # follow the same trajectory while the learning rate is constant.
    ("sgd_momentum", {"learning_rate": 0.05, "momentum": 0.8}, lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8)),
    ("rmsprop", {"learning_rate": 0.01, "decay_rate": 0.9, "epsilon": 1e-6},
     lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.9, eps=1e-6)),
    ("adam", {"learning_rate": 0.01, "beta1": 0.8, "beta2": 0.95, "epsilon": 1e-6},
     lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.8, 0.95), eps=1e-6)),
])
def test_update_rules_match_torch_over_several_steps(rule, config, make_optimizer, rng):
    w0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(7)]
    ours = _run_ours(rule, w0, grads, dict(config))
    theirs = _run_torch(make_optimizer, w0, grads)
    assert not np.allclose(ours, w0), "the weights did not move"
    assert_close(ours, theirs, name=f"{rule} after 7 steps", expected_label="torch", threshold=1e-10)


def test_adam_defaults_match_torch(rng):
    w0 = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(4)]
    ours = _run_ours("adam", w0, grads, None)
    theirs = _run_torch(lambda ps: torch.optim.Adam(ps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8), w0, grads)
    assert_close(ours, theirs, name="adam with default config", expected_label="torch", threshold=1e-10)


# --- the shared contract --------------------------------------------------------------------------

@pytest.mark.parametrize("rule", RULES)
def test_defaults_and_state_created(rule, rng):
    w = rng.standard_normal((2, 3))
    next_w, config = getattr(optim, rule)(w, rng.standard_normal((2, 3)))
    assert next_w.shape == w.shape
    for key, value in optim.DEFAULTS[rule].items():
        assert config[key] == value, f"{rule}: default {key} should be {value}, got {config[key]}"
    for key in {"sgd_momentum": ["velocity"], "rmsprop": ["cache"], "adam": ["m", "v"]}.get(rule, []):
        assert config[key].shape == w.shape


@pytest.mark.parametrize("rule", RULES)
def test_w_not_modified_config_updated_in_place(rule, rng):
    w = rng.standard_normal(4)
    w_before = w.copy()
    config = {"learning_rate": 0.1}
    _, returned = getattr(optim, rule)(w, rng.standard_normal(4), config)
    np.testing.assert_array_equal(w, w_before, err_msg=f"{rule} modified w in place")
    assert returned is config, "the config is updated in place and returned (cs231n convention)"


@pytest.mark.parametrize("rule", RULES)
def test_float32_stays_float32(rule, rng):
    w = rng.standard_normal(4).astype(np.float32)
    next_w, _ = getattr(optim, rule)(w, rng.standard_normal(4).astype(np.float32),
                                     {"learning_rate": np.float64(0.1)})
    assert next_w.dtype == np.float32


@pytest.mark.parametrize("rule", RULES)
def test_unknown_config_key_is_named(rule):
    with pytest.raises(ValueError, match=r"unknown config key\(s\) 'learning_rat'.*valid keys: learning_rate"):
        getattr(optim, rule)(np.zeros(3), np.zeros(3), {"learning_rat": 0.1})


@pytest.mark.parametrize("rule", RULES)
def test_shape_mismatch(rule):
    with pytest.raises(ValueError, match=r"dw must have the shape of w \(2, 3\); got shape \(3, 2\)"):
        getattr(optim, rule)(np.zeros((2, 3)), np.zeros((3, 2)))


@pytest.mark.parametrize("rule, key", [("sgd_momentum", "velocity"), ("rmsprop", "cache"), ("adam", "m")])
def test_state_of_the_wrong_shape(rule, key):
    with pytest.raises(ValueError, match=rf"config\['{key}'\] must have the shape of w \(3,\); got shape \(4,\)"):
        getattr(optim, rule)(np.zeros(3), np.zeros(3), {key: np.zeros(4)})


@pytest.mark.parametrize("config, pattern", [
    ({"learning_rate": -0.1}, r"learning_rate.*\(0, inf\); got -0.1"),
    ({"learning_rate": float("nan")}, r"learning_rate.*got nan"),
    ({"momentum": 1.0}, r"momentum.*\[0, 1\); got 1.0"),
    ({"learning_rate": "0.1"}, r"learning_rate.*got '0.1'"),
])
def test_hyperparameter_out_of_range(config, pattern):
    with pytest.raises(ValueError, match=pattern):
        optim.sgd_momentum(np.zeros(3), np.zeros(3), config)


def test_check_config_unknown_rule_lists_valid_ones():
    with pytest.raises(ValueError, match="valid update rules: sgd, sgd_momentum, rmsprop, adam"):
        optim.check_config("adagrad", {})

# --- the student's version (extended profile: sgd_momentum, rmsprop, adam are theirs) -------------

def _student_optim(given=()):
    """hwlib.optim as the release builder ships it, imported as a module of the hwlib package."""
    import importlib.util
    from pathlib import Path

    from grading.release.strip import strip_source
    source = strip_source(Path(optim.__file__).read_text(), "hwlib/optim.py", given=given)
    spec = importlib.util.spec_from_loader("hwlib._student_optim", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "hwlib"
    exec(compile(source, "hwlib/optim.py", "exec"), module.__dict__)
    return module, source


def test_solution_regions_hold_the_core_of_the_three_rules_only():
    from pathlib import Path

    from grading.release.strip import region_functions
    assert region_functions(Path(optim.__file__).read_text()) == ["sgd_momentum", "rmsprop", "adam"]


@pytest.mark.parametrize("rule", ["sgd_momentum", "rmsprop", "adam"])
def test_the_students_stub_validates_first_then_asks_for_the_update(rule):
    student, source = _student_optim()
    assert "### BEGIN SOLUTION" not in source and "The parts you write raise" in source
    with pytest.raises(ValueError, match="dw must have the shape of w"):      # the given validation still runs
        getattr(student, rule)(np.zeros((2, 3)), np.zeros((3, 2)))
    config = {}
    with pytest.raises(NotImplementedError):
        getattr(student, rule)(np.zeros(3), np.ones(3), config)
    assert set(optim._STATE_KEYS[rule]) - {"t"} <= set(config), "the given code creates the state"
    next_w, _ = student.sgd(np.ones(2), np.ones(2), {"learning_rate": 0.5})  # sgd stays given
    assert_close(next_w, [0.5, 0.5], name="sgd next_w")


def test_given_in_the_seed_profile_the_rules_ship_working(rng):
    student, source = _student_optim(given=("sgd_momentum", "rmsprop", "adam"))
    assert "# YOUR CODE HERE" not in source and "### BEGIN SOLUTION\n" not in source
    w, grads = rng.standard_normal(4), rng.standard_normal((3, 4))
    for rule in ("sgd_momentum", "rmsprop", "adam"):
        ours, theirs = w, w
        config_ours, config_theirs = {"learning_rate": 0.1}, {"learning_rate": 0.1}
        for g in grads:
            ours, config_ours = getattr(student, rule)(ours, g, config_ours)
            theirs, config_theirs = getattr(optim, rule)(theirs, g, config_theirs)
        np.testing.assert_array_equal(ours, theirs, err_msg=rule)

"""hwlib.check.optim: the update-rule targets (Q2, extended profile) against PyTorch's optimisers.

The reference (hwlib.optim) passes every public case and every hidden case of the extended profile,
here and through the grader's sandbox runner; the references agree with single steps worked out by
hand from a non-zero state; and plausible student bugs (adam without bias correction or with t
incremented late, epsilon inside rmsprop's square root, momentum's velocity of the wrong sign, w
changed in place, float32 returned as float64) fail, in the public check and in the hidden cases.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from course.registry import PROFILE_ENV, load
from hwlib import check, optim
from grading.autograde import protocol

REPO = check.__file__.rsplit("/hwlib/", 1)[0]
RULES = ("sgd_momentum", "rmsprop", "adam")
HIDDEN = load(profile="extended").hidden["q2-update-rules"]["cases"]
STRICT = load(profile="extended").strict_dtypes      # the profile of these tasks deducts a dtype change


@pytest.fixture(autouse=True)
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _hidden(target=None):
    return [c for c in HIDDEN if target in (None, c["target"])]


def _verdict(case):
    """Judge the importable hwlib.optim on a hidden case, as the grader does (minus the sandbox)."""
    inputs = check.draw(case["target"], case["seed"], case["dtype"], **case["draw"])
    expected = check.reference(case["target"], inputs)
    return check.judge(case["target"], check.run(case["target"], inputs), expected, inputs, strict_dtypes=STRICT)


# --- the reference passes ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", RULES)
def test_the_public_check_passes_on_the_reference(name, capsys):
    check.check(name)
    out = capsys.readouterr().out
    assert f"{name} float32" in out and "strided views" in out and "Fortran-ordered" in out


@pytest.mark.parametrize("case", HIDDEN, ids=[c["id"] for c in HIDDEN])
def test_every_hidden_case_passes_on_the_reference(case):
    summary = _verdict(case)
    limit = {"float64": 1e-12, "float32": 1e-4}[case["dtype"]]       # round-off, far below the thresholds
    assert "next_w" in summary and all(v < limit for v in summary.values()), summary


def test_hidden_cases_differ_from_the_public_ones():
    assert {c["target"] for c in HIDDEN} == set(RULES)
    for case in HIDDEN:
        drawn = {k: tuple(v) if isinstance(v, list) else v for k, v in case["draw"].items() if k != "layout"}
        assert drawn not in check.target(case["target"]).cases, case["id"]
        assert case["seed"] != 0, case["id"]


def test_the_sandbox_runner_earns_the_reference_every_point(tmp_path, monkeypatch):
    """The group travels as the grader sends it (config through JSON, arrays through .npz) and comes back."""
    from grading.autograde import hidden
    from grading.autograde.sandbox import site_packages
    monkeypatch.setenv(PROFILE_ENV, "extended")
    group = hidden.load()["q2-update-rules"]
    inputs_of = hidden.draw_inputs([group])
    protocol.write_job(tmp_path, hidden.job([group], inputs_of))
    env = {"PATH": os.environ.get("PATH", ""), "HW4_SITE_PACKAGES": os.pathsep.join(site_packages()),
           "OMP_NUM_THREADS": "1", "HWLIB_QUIET": "1"}
    subprocess.run([sys.executable, "-I", "-S", f"{REPO}/grading/autograde/sandbox_runner.py", str(tmp_path),
                    str(tmp_path), REPO, group.grade_id], env=env, check=True, timeout=300)
    outputs, errors, problem = hidden.read_outputs(tmp_path, group.grade_id)
    assert not problem and not errors, (problem, errors)
    result = hidden.evaluate(group, inputs_of, outputs, errors)
    assert result.points == group.points == 4, [(c.id, c.message) for c in result.cases if not c.passed]


# --- the references, by hand (one entry, a non-zero state) ------------------------------------------------

def _one(value):
    return np.array([value])


def test_the_references_match_steps_worked_out_by_hand():
    w, g1, g2 = 1.0, 2.0, -1.0
    common = {"w": _one(w), "dw": np.array([[g1], [g2]])}
    # momentum, lr 0.1, mu 0.5, v0 = 0.3: v1 = 0.15 - 0.2 = -0.05, w1 = 0.95; v2 = -0.025 + 0.1 = 0.075, w2 = 1.025
    ref = check.reference("sgd_momentum", {**common, "config": {"learning_rate": 0.1, "momentum": 0.5},
                                           "velocity": _one(0.3)})
    np.testing.assert_allclose([ref["next_w/1"][0], ref["next_w/2"][0], ref["config/velocity"][0]],
                               [0.95, 1.025, 0.075], rtol=1e-12)
    # rmsprop, lr 0.1, decay 0.5, eps 0.1, cache0 = 1: cache1 = 0.5 + 2 = 2.5, w1 = 1 - 0.2 / (sqrt(2.5) + 0.1)
    ref = check.reference("rmsprop", {**common, "config": {"learning_rate": 0.1, "decay_rate": 0.5, "epsilon": 0.1},
                                      "cache": _one(1.0)})
    w1 = 1 - 0.2 / (np.sqrt(2.5) + 0.1)
    np.testing.assert_allclose([ref["next_w/1"][0], ref["next_w/2"][0], ref["config/cache"][0]],
                               [w1, w1 + 0.1 / (np.sqrt(1.75) + 0.1), 1.75], rtol=1e-12)
    # adam, lr 0.1, betas 0.5, 0.75, eps 0.1, m0 = 0.2, v0 = 0.4, t0 = 2: step 1 uses t = 3
    ref = check.reference("adam", {**common, "config": {"learning_rate": 0.1, "beta1": 0.5, "beta2": 0.75,
                                                        "epsilon": 0.1, "t": 2}, "m": _one(0.2), "v": _one(0.4)})
    m1, v1 = 0.5 * 0.2 + 0.5 * 2, 0.75 * 0.4 + 0.25 * 4                       # 1.1, 1.3
    w1 = 1 - 0.1 * (m1 / (1 - 0.5**3)) / (np.sqrt(v1 / (1 - 0.75**3)) + 0.1)
    m2, v2 = 0.5 * m1 - 0.5, 0.75 * v1 + 0.25                                 # 0.05, 1.225
    w2 = w1 - 0.1 * (m2 / (1 - 0.5**4)) / (np.sqrt(v2 / (1 - 0.75**4)) + 0.1)
    np.testing.assert_allclose([ref["next_w/1"][0], ref["next_w/2"][0], ref["config/m"][0], ref["config/v"][0]],
                               [w1, w2, m2, v2], rtol=1e-12)
    assert ref["config/t"] == 4


# --- plausible bugs fail ---------------------------------------------------------------------------------

def _adam_parts(w, dw, config):
    w, dw, config = optim._prepare("adam", w, dw, config)
    for key in ("m", "v"):
        optim._state("adam", config, key, w)
    config.setdefault("t", 0)
    b1, b2 = config["beta1"], config["beta2"]
    m = b1 * config["m"] + (1 - b1) * dw
    v = b2 * config["v"] + (1 - b2) * dw**2
    return w, config, m, v


def adam_without_bias_correction(w, dw, config=None):
    w, config, m, v = _adam_parts(w, dw, config)
    config["t"], config["m"], config["v"] = config["t"] + 1, m, v
    return w - config["learning_rate"] * m / (np.sqrt(v) + config["epsilon"]), config


def adam_incrementing_t_late(w, dw, config=None):
    w, config, m, v = _adam_parts(w, dw, config)
    t = config["t"]                                     # corrects with the count before this step
    m_hat, v_hat = m / (1 - config["beta1"]**t), v / (1 - config["beta2"]**t)
    config["t"], config["m"], config["v"] = t + 1, m, v
    return w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"]), config


def adam_returning_float64(w, dw, config=None):
    next_w, config = _ADAM(w, dw, config)
    return next_w.astype(np.float64), config


def rmsprop_epsilon_inside_the_root(w, dw, config=None):
    w, dw, config = optim._prepare("rmsprop", w, dw, config)
    optim._state("rmsprop", config, "cache", w)
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
    return w - config["learning_rate"] * dw / np.sqrt(config["cache"] + config["epsilon"]), config


def rmsprop_scaling_dw_in_place(w, dw, config=None):
    w, dw, config = optim._prepare("rmsprop", w, dw, config)
    optim._state("rmsprop", config, "cache", w)
    config["cache"] = config["decay_rate"] * config["cache"] + (1 - config["decay_rate"]) * dw**2
    dw /= np.sqrt(config["cache"]) + config["epsilon"]
    return w - config["learning_rate"] * dw, config


def momentum_with_the_velocity_flipped(w, dw, config=None):
    w, dw, config = optim._prepare("sgd_momentum", w, dw, config)
    optim._state("sgd_momentum", config, "velocity", w)
    config["velocity"] = config["momentum"] * config["velocity"] + config["learning_rate"] * dw
    return w - config["velocity"], config            # right from a zero velocity only


def momentum_in_place(w, dw, config=None):
    w, dw, config = optim._prepare("sgd_momentum", w, dw, config)
    optim._state("sgd_momentum", config, "velocity", w)
    config["velocity"] = config["momentum"] * config["velocity"] - config["learning_rate"] * dw
    w += config["velocity"]
    return w, config


def momentum_returning_only_w(w, dw, config=None):
    return _SGD_MOMENTUM(w, dw, config)[0]


_ADAM, _SGD_MOMENTUM = optim.adam, optim.sgd_momentum      # the reference, before a test replaces it


BOTH = ("float64", "float32")
BUGS = [
    ("adam", adam_without_bias_correction, r"adam next_w/1: worst relative error", BOTH),
    ("adam", adam_incrementing_t_late, r"adam next_w/1: worst relative error", BOTH),
    ("adam", adam_returning_float64, r"adam next_w/1 has dtype float64; expected float32", ("float32",)),
    ("rmsprop", rmsprop_epsilon_inside_the_root, r"rmsprop next_w/1: worst relative error", BOTH),
    ("rmsprop", rmsprop_scaling_dw_in_place, r"rmsprop changed its input dw in place at \(0, 0", BOTH),
    ("sgd_momentum", momentum_with_the_velocity_flipped, r"sgd_momentum next_w/1: worst relative error", BOTH),
    ("sgd_momentum", momentum_in_place, r"sgd_momentum changed its input w in place at \(0, 0\).*return a new", BOTH),
]


@pytest.mark.parametrize("name, bug, message, dtypes", BUGS, ids=[b[1].__name__ for b in BUGS])
def test_a_bug_fails_the_public_check_and_the_hidden_cases(monkeypatch, capsys, name, bug, message, dtypes):
    monkeypatch.setattr(optim, name, bug)
    with pytest.raises(AssertionError, match=message):
        check.check(name, verbose=False, strict_dtypes=STRICT)
    from hwlib.check.__main__ import main
    assert main([name, *(["--strict-dtypes"] if STRICT else [])]) == 1
    assert f"{name}: FAIL: AssertionError: " in capsys.readouterr().out
    cases = [c for c in _hidden(name) if c["dtype"] in dtypes]
    assert cases, f"no hidden case of {name} in {dtypes}"
    for case in cases:
        with pytest.raises(AssertionError):
            _verdict(case)


def test_a_rule_returning_something_else_than_a_pair_is_told_so(monkeypatch):
    monkeypatch.setattr(optim, "sgd_momentum", momentum_returning_only_w)
    with pytest.raises(TypeError, match=r"sgd_momentum must return \(next_w, config\), config a dict; got ndarray"):
        check.check("sgd_momentum", verbose=False)


def test_the_step_count_must_be_exact(monkeypatch):
    inputs = check.draw("adam", 3, "float64", shape=(2,), steps=2)
    outputs, expected = check.run("adam", inputs), check.reference("adam", inputs)
    t0 = inputs["config"]["t"]
    assert expected["config/t"] == t0 + 2
    check.judge("adam", outputs, expected, inputs)
    for wrong in (np.array(t0 + 2.0), np.array(t0 + 1), np.array([t0 + 2])):
        with pytest.raises(AssertionError, match=rf"config\['t'\] is .* from t = {t0}; expected the integer {t0 + 2}"):
            check.judge("adam", {**outputs, "config/t": wrong}, expected, inputs)
    with pytest.raises(AssertionError, match="the returned config has no 't'"):
        check.judge("adam", {k: v for k, v in outputs.items() if k != "config/t"}, expected, inputs)


def test_the_watch_record_survives_the_protocol(tmp_path, monkeypatch):
    """A rule changing w in place, run on the job as the sandbox reads it, is caught on the trusted side."""
    sent = check.draw("sgd_momentum", 9, "float32", shape=(3, 2), steps=2, layout="strided")
    protocol.write_job(tmp_path, {"g": {"cases": [{"id": "c", "target": "sgd_momentum", "inputs": sent}]}})
    received = protocol.read_job(tmp_path)["g"]["cases"][0]["inputs"]
    assert received["config"] == sent["config"]
    monkeypatch.setattr(optim, "sgd_momentum", momentum_in_place)
    protocol.write_outputs(tmp_path, "g", {"c": protocol.flatten(check.run("sgd_momentum", received))}, {})
    from grading.autograde import hidden
    back = hidden.read_outputs(tmp_path, "g")[0]["c"]
    with pytest.raises(AssertionError, match="sgd_momentum changed its input w in place"):
        check.judge("sgd_momentum", back, check.reference("sgd_momentum", sent), sent)


# --- the draw -------------------------------------------------------------------------------------------

def test_draws_start_mid_training_with_hyperparameters_off_their_defaults():
    for name in RULES:
        inputs = check.draw(name, 4, "float32", shape=[2, 3], steps=5)      # TOML gives lists
        assert inputs["w"].shape == (2, 3) and inputs["dw"].shape == (5, 2, 3) and inputs["w"].dtype == np.float32
        for key, default in optim.DEFAULTS[name].items():
            assert inputs["config"][key] != default and isinstance(inputs["config"][key], float), (name, key)
        optim.check_config(name, dict(inputs["config"]))     # within the rule's ranges
    assert np.all(check.draw("sgd_momentum", 4)["velocity"] != 0)
    assert np.all(check.draw("rmsprop", 4)["cache"] > 0)
    adam = check.draw("adam", 4)
    assert np.all(adam["v"] > 0) and np.all(adam["m"] != 0) and adam["config"]["t"] >= 1


@pytest.mark.parametrize("kw, message", [
    ({"shape": ()}, r"shape must be a non-empty tuple of positive integers"),
    ({"shape": (3, 0)}, r"shape must be a non-empty tuple of positive integers"),
    ({"shape": "3x4"}, r"shape must be a non-empty tuple of positive integers"),
    ({"steps": 0}, r"steps must be an integer >= 1 .*; got 0"),
    ({"steps": 2.5}, r"steps must be an integer >= 1 .*; got 2.5"),
])
def test_bad_draw_keywords_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        check.draw("adam", 0, **kw)

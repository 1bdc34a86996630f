"""hwlib.gradient_check and the public checks: numerical gradients are right, and a failing
check says what failed (worst error, threshold, first bad index with both values)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hwlib import layers
from hwlib.check import check
from hwlib.gradient_check import (assert_close, check_gradient, eval_numerical_gradient,
                                  eval_numerical_gradient_array, rel_error)


def test_numerical_gradient_of_known_functions(rng):
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(eval_numerical_gradient(lambda v: np.sum(v ** 3), x), 3 * x ** 2, rtol=1e-6, atol=1e-9)
    df = rng.standard_normal((3, 4))
    np.testing.assert_allclose(eval_numerical_gradient_array(np.sin, x, df), np.cos(x) * df, rtol=1e-7, atol=1e-10)
    x_before = x.copy()
    eval_numerical_gradient(lambda v: np.sum(v), x)
    np.testing.assert_array_equal(x, x_before)  # perturbations are undone


def test_rel_error_values():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.array([0.0]), np.array([0.0])) == 0.0


def test_assert_close_message_names_worst_error_threshold_index_and_values():
    expected = np.zeros((2, 3)) + 1.0
    actual = expected.copy()
    actual[1, 2] = 2.0
    actual[0, 1] = 1.5
    with pytest.raises(AssertionError) as info:
        assert_close(actual, expected, name="dw", threshold=1e-7)
    msg = str(info.value)
    assert "dw: worst relative error 3.33e-01 > threshold 1e-07" in msg
    assert "first bad index (0, 1)" in msg and "yours=1.5," in msg and "expected=1.0 " in msg


def test_assert_close_rejects_nan_shape_mismatch_and_none():
    with pytest.raises(AssertionError, match="worst relative error inf"):
        assert_close(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(AssertionError, match=r"expected shape \(3,\), got shape \(2,\)"):
        assert_close(np.ones(2), np.ones(3))
    with pytest.raises(AssertionError, match="got None"):
        assert_close(None, np.ones(3))


def test_check_gradient_passes_and_fails(capsys, rng):
    x = rng.standard_normal(5)
    check_gradient(lambda v: np.sum(v ** 2), x, 2 * x, name="dx")
    assert "dx: relative error" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="first bad index"):
        check_gradient(lambda v: np.sum(v ** 2), x, 3 * x, name="dx")


def test_public_check_catches_a_buggy_layer(monkeypatch):
    """conv_backward whose dw is not summed over the batch: the check fails on dw, naming it."""
    original = layers.conv_backward

    def conv_backward(dout, cache):
        dx, dw = original(dout, cache)
        x_first = dout[:1]
        _, dw_first = original(np.concatenate([x_first, 0 * dout[1:]]), cache)
        return dx, dw_first

    monkeypatch.setattr(layers, "conv_backward", conv_backward)
    with pytest.raises(AssertionError, match="conv dw: worst relative error"):
        check("conv", verbose=False)


def test_public_check_command_line_passes_on_the_reference():
    result = subprocess.run([sys.executable, "-m", "hwlib.check", "fc", "relu"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2/2 checks pass" in result.stdout

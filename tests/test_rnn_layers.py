"""hwlib.rnn_layers against PyTorch, numerical gradients, published values, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwlib import rnn_layers as R
from hwlib.check import TARGETS, check, compare, draw, numerical_gradients, reference, run
from hwlib.check import rnn as rnn_targets
from hwlib.gradient_check import assert_close, eval_numerical_gradient_array, rel_error

SEEDS = (0, 1, 2, 3, 4)
RNN_LAYERS = tuple(t.name for t in rnn_targets.TARGETS)


def _random_shape(layer: str, rng: np.random.Generator) -> dict:
    """A random shape for ``layer`` (sizes from 1, so the degenerate cases come up too)."""
    n = lambda lo, hi: int(rng.integers(lo, hi + 1))  # noqa: E731
    return {
        "rnn_step": lambda: {"N": n(1, 6), "D": n(1, 7), "H": n(1, 6)},
        "rnn": lambda: {"T": n(1, 7), "N": n(1, 5), "D": n(1, 6), "H": n(1, 6)},
        "word_embedding": lambda: {"N": n(1, 5), "T": n(1, 6), "V": n(1, 8), "D": n(1, 5)},
        "temporal_fc": lambda: {"N": n(1, 5), "T": n(1, 6), "D": n(1, 6), "M": n(1, 6)},
        "temporal_softmax": lambda: {"N": n(1, 5), "T": n(1, 6), "V": n(2, 9)},
    }[layer]()


# --- the public checks ------------------------------------------------------------------------------

def test_rnn_targets_are_in_the_table():
    assert RNN_LAYERS == ("rnn_step", "rnn", "word_embedding", "temporal_fc", "temporal_softmax")
    assert set(RNN_LAYERS) <= set(TARGETS), sorted(TARGETS)


@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_public_check_passes(layer):
    check(layer, seed=0, verbose=False)


def _embedding_backward_without_sums(dout, cache):
    """A classic mistake: ``dW[x] = dout`` keeps one occurrence of a repeated word instead of the sum."""
    x, W = cache
    dW = np.zeros_like(W)
    dW[x.ravel()] = dout.reshape(-1, W.shape[1])
    return dW


@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_public_check_fails_on_a_wrong_gradient(layer, monkeypatch):
    """The check must catch a plausible mistake: a backward pass that forgets one term or a factor."""
    wrong = {
        "rnn_step": ("rnn_step_backward", lambda f: lambda d, c: (lambda g: (g[0], g[1], g[2], g[3], 2 * g[4]))(f(d, c))),
        "rnn": ("rnn_backward", lambda f: lambda d, c: (lambda g: (g[0], g[1], g[2], 0 * g[3], g[4]))(f(d, c))),
        "word_embedding": ("word_embedding_backward", lambda f: _embedding_backward_without_sums),
        "temporal_fc": ("temporal_fc_backward", lambda f: lambda d, c: (lambda g: (g[0], g[1], g[2] / 2))(f(d, c))),
        "temporal_softmax": ("temporal_softmax_loss", lambda f: lambda x, y, m: (lambda r: (r[0], r[1] * 0.5))(f(x, y, m))),
    }[layer]
    name, broken = wrong
    monkeypatch.setattr(R, name, broken(getattr(R, name)))
    with pytest.raises(AssertionError):
        check(layer, seed=0, verbose=False)


# --- PyTorch on random shapes (float64, relative error < 1e-8) ---------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_matches_pytorch_float64(layer, seed):
    rng = np.random.default_rng(1000 + seed)
    inputs = draw(layer, rng, np.float64, **_random_shape(layer, rng))
    outputs = run(layer, inputs)
    compare(layer, outputs, reference(layer, inputs), threshold=1e-8, expected_label="torch")


@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_float32_stays_float32(layer):
    rng = np.random.default_rng(7)
    inputs = draw(layer, rng, np.float32)
    for key, value in run(layer, inputs).items():
        if key != "loss" and not key.startswith("_"):   # "_inputs/...": the checks' record of the inputs
            assert np.asarray(value).dtype == np.float32, f"{layer} {key}: {np.asarray(value).dtype}"


# --- numerical gradients on random shapes -------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("layer", RNN_LAYERS)
def test_matches_numerical_gradients(layer, seed):
    rng = np.random.default_rng(2000 + seed)
    inputs = draw(layer, rng, np.float64, **_random_shape(layer, rng))
    outputs = run(layer, inputs)
    numerical = numerical_gradients(layer, inputs, h=1e-5)
    for key, expected in numerical.items():
        # Centred differences carry ~1e-10 of round-off: entries far below the array's scale are
        # judged against a floor instead of their own (meaningless) relative error.
        floor = 1e-5 * max(float(np.abs(expected).max()), 1e-8)
        assert_close(outputs[key], expected, name=f"{layer} {key}", threshold=1e-6, floor=floor,
                     expected_label="numerical")


# --- published values (cs231n's RNN_Captioning notebook) ----------------------------------------------

def test_rnn_step_forward_published_values():
    N, D, H = 3, 10, 4
    x = np.linspace(-0.4, 0.7, num=N * D).reshape(N, D)
    prev_h = np.linspace(-0.2, 0.5, num=N * H).reshape(N, H)
    Wx = np.linspace(-0.1, 0.9, num=D * H).reshape(D, H)
    Wh = np.linspace(-0.3, 0.7, num=H * H).reshape(H, H)
    b = np.linspace(-0.2, 0.4, num=H)
    next_h, _ = R.rnn_step_forward(x, prev_h, Wx, Wh, b)
    expected = np.array([[-0.58172089, -0.50182032, -0.41232771, -0.31410098],
                         [0.66854692, 0.79562378, 0.87755553, 0.92795967],
                         [0.97934501, 0.99144213, 0.99646691, 0.99854353]])
    assert rel_error(next_h, expected) < 1e-7


def test_rnn_forward_published_values_time_major():
    N, T, D, H = 2, 3, 4, 5
    x = np.linspace(-0.1, 0.3, num=N * T * D).reshape(N, T, D)  # cs231n's (N, T, D) input
    h0 = np.linspace(-0.3, 0.1, num=N * H).reshape(N, H)
    Wx = np.linspace(-0.2, 0.4, num=D * H).reshape(D, H)
    Wh = np.linspace(-0.4, 0.1, num=H * H).reshape(H, H)
    b = np.linspace(-0.7, 0.1, num=H)
    h, _ = R.rnn_forward(x.transpose(1, 0, 2), h0, Wx, Wh, b)
    expected = np.array([
        [[-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
         [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
         [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525]],
        [[-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
         [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
         [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]])
    assert h.shape == (T, N, H)
    assert rel_error(h.transpose(1, 0, 2), expected) < 1e-7


# --- properties ----------------------------------------------------------------------------------------

def test_rnn_forward_is_the_step_repeated():
    rng = np.random.default_rng(3)
    T, N, D, H = 5, 3, 4, 6
    x, h0 = rng.standard_normal((T, N, D)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, H)) / 2, rng.standard_normal((H, H)) / 3, rng.standard_normal(H)
    h, _ = R.rnn_forward(x, h0, Wx, Wh, b)
    prev = h0
    for t in range(T):
        prev, _ = R.rnn_step_forward(x[t], prev, Wx, Wh, b)
        assert_close(h[t], prev, name=f"h[{t}]", threshold=1e-12)


def test_rnn_backward_through_the_whole_sequence():
    """A gradient on the last hidden state only still reaches x[0] and h0 (through every step)."""
    rng = np.random.default_rng(4)
    T, N, D, H = 6, 2, 3, 4
    x, h0 = rng.standard_normal((T, N, D)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, H)) / 2, rng.standard_normal((H, H)) / 2, np.zeros(H)
    h, cache = R.rnn_forward(x, h0, Wx, Wh, b)
    dh = np.zeros_like(h)
    dh[-1] = rng.standard_normal((N, H))
    dx, dh0, *_ = R.rnn_backward(dh, cache)
    num_dh0 = eval_numerical_gradient_array(lambda v: R.rnn_forward(x, v, Wx, Wh, b)[0], h0.copy(), dh)
    assert np.abs(dx[0]).max() > 0 and np.abs(dh0).max() > 0
    assert_close(dh0, num_dh0, name="dh0", threshold=1e-7, expected_label="numerical")


def test_word_embedding_repeated_words_add_up():
    W = np.arange(12, dtype=np.float64).reshape(4, 3)
    x = np.array([[1, 1, 3], [1, 0, 3]])
    out, cache = R.word_embedding_forward(x, W)
    assert np.array_equal(out[0, 1], W[1]) and out.shape == (2, 3, 3)
    dW = R.word_embedding_backward(np.ones((2, 3, 3)), cache)
    assert np.array_equal(dW, np.array([[1, 1, 1], [3, 3, 3], [0, 0, 0], [2, 2, 2]]))


def test_temporal_softmax_loss_hand_values():
    N, T, V = 3, 4, 5
    y = np.random.default_rng(5).integers(0, V, size=(N, T))
    mask = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=bool)
    loss, dx = R.temporal_softmax_loss(np.zeros((N, T, V)), y, mask)
    # Uniform scores: -log(1/V) per counted position, 6 positions, averaged over N = 3.
    assert abs(loss - 6 * np.log(V) / N) < 1e-12
    assert np.all(dx[~mask] == 0), "masked positions get no gradient"
    expected = np.full((N, T, V), 1 / V)
    np.put_along_axis(expected, y[..., None], 1 / V - 1, axis=2)
    assert_close(dx[mask], (expected / N)[mask], name="dx", threshold=1e-12)
    loss0, dx0 = R.temporal_softmax_loss(np.zeros((N, T, V)), y, np.zeros((N, T), dtype=bool))
    assert loss0 == 0 and not dx0.any()


def test_temporal_softmax_loss_is_stable_for_huge_scores():
    x = np.array([[[1e4, 0.0, -1e4]]])
    loss, dx = R.temporal_softmax_loss(x, np.array([[1]]), np.array([[True]]))
    assert np.isfinite(loss) and abs(loss - 1e4) < 1e-6 and np.all(np.isfinite(dx))


def test_temporal_fc_is_fc_at_every_step():
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((3, 4, 5)), rng.standard_normal((5, 2)), rng.standard_normal(2)
    out, _ = R.temporal_fc_forward(x, w, b)
    for t in range(4):
        assert_close(out[:, t], x[:, t] @ w + b, name=f"out[:, {t}]", threshold=1e-12)


def test_model_scale_float32_matches_pytorch():
    """The captioning model's sizes in float32 (16 steps, 128 units): errors stay at float32 round-off.

    Judged against the scale of each output (entries near 0 carry the absolute round-off of the
    O(1) sums that produced them, so their own relative error means nothing).
    """
    rng = np.random.default_rng(8)
    inputs = draw("rnn", rng, np.float32, T=16, N=25, D=64, H=128)
    outputs, expected = run("rnn", inputs), reference("rnn", inputs)
    for key, value in expected.items():
        scale = float(np.abs(value).max())
        assert outputs[key].dtype == np.float32
        assert_close(outputs[key], value, name=f"rnn {key}", threshold=1e-4, floor=0.1 * scale, expected_label="torch")


def test_torch_reference_is_torch_rnn():
    """The reference really is torch.nn.RNN with weight_ih = Wx.T, weight_hh = Wh.T, bias_ih = b, bias_hh = 0."""
    rng = np.random.default_rng(9)
    i = draw("rnn", rng, np.float64, T=3, N=2, D=3, H=4)
    rnn = torch.nn.RNN(3, 4, nonlinearity="tanh", batch_first=False).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(i["Wx"].T))
        rnn.weight_hh_l0.copy_(torch.tensor(i["Wh"].T))
        rnn.bias_ih_l0.copy_(torch.tensor(i["b"]))
        rnn.bias_hh_l0.zero_()
    out, _ = rnn(torch.tensor(i["x"]), torch.tensor(i["h0"])[None])
    assert_close(reference("rnn", i)["out"], out.detach().numpy(), threshold=1e-14)


# --- bad input -----------------------------------------------------------------------------------------

def _raises(match, func, *args):
    with pytest.raises(ValueError, match=match):
        func(*args)


def test_bad_ranks_and_shapes_name_the_argument():
    rng = np.random.default_rng(10)
    x, h0 = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 6))
    Wx, Wh, b = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)), rng.standard_normal(6)
    _raises(r"rnn_forward: x must have 3 dimensions \(T, N, D\); got shape \(3, 5\)", R.rnn_forward, x[0], h0, Wx, Wh, b)
    _raises(r"rnn_forward: h0 must have shape \(3, 6\).*got shape \(4, 6\)", R.rnn_forward, x, rng.standard_normal((4, 6)), Wx, Wh, b)
    _raises(r"rnn_forward: Wx must have shape \(5, 6\).*got shape \(4, 6\)", R.rnn_forward, x, h0, Wx[:4], Wh, b)
    _raises(r"rnn_forward: Wh must have shape \(6, 6\).*got shape \(6, 5\)", R.rnn_forward, x, h0, Wx, Wh[:, :5], b)
    _raises(r"rnn_forward: b must have shape \(6,\).*got shape \(5,\)", R.rnn_forward, x, h0, Wx, Wh, b[:5])
    _raises(r"rnn_forward: x must hold at least one time step", R.rnn_forward, x[:0], h0, Wx, Wh, b)
    _raises(r"rnn_step_forward: x must have 2 dimensions \(N, D\); got shape \(4, 3, 5\)", R.rnn_step_forward, x, h0, Wx, Wh, b)
    _raises(r"rnn_step_forward: prev_h must have shape \(3, 6\).*got shape \(3, 5\)", R.rnn_step_forward, x[0], h0[:, :5], Wx, Wh, b)
    h, cache = R.rnn_forward(x, h0, Wx, Wh, b)
    _raises(r"rnn_backward: dh must have shape \(4, 3, 6\).*got shape \(3, 6\)", R.rnn_backward, h[0], cache)
    _, step_cache = R.rnn_step_forward(x[0], h0, Wx, Wh, b)
    _raises(r"rnn_step_backward: dnext_h must have shape \(3, 6\).*got shape \(3, 5\)", R.rnn_step_backward, h0[:, :5], step_cache)
    _raises(r"temporal_fc_forward: x must have 3 dimensions \(N, T, D\); got shape \(3, 5\)", R.temporal_fc_forward, x[0], Wx, b)
    _raises(r"temporal_fc_forward: w must have shape \(5, 6\) \(D, M\).*got shape \(4, 6\)", R.temporal_fc_forward, x, Wx[:4], b)
    _raises(r"temporal_fc_forward: b must have shape \(6,\).*got shape \(5,\)", R.temporal_fc_forward, x, Wx, b[:5])
    out, tcache = R.temporal_fc_forward(x, Wx, b)
    _raises(r"temporal_fc_backward: dout must have shape \(4, 3, 6\).*got shape \(4, 3, 5\)", R.temporal_fc_backward, out[..., :5], tcache)


def test_bad_word_ids():
    W = np.zeros((5, 3))
    _raises(r"word_embedding_forward: x must hold ids in \[0, 5\).*got 5 at index \(1, 0\)", R.word_embedding_forward,
            np.array([[0, 1], [5, 2]]), W)
    _raises(r"word_embedding_forward: x must hold ids in \[0, 5\).*got -1", R.word_embedding_forward, np.array([[0, -1]]), W)
    _raises(r"word_embedding_forward: x must have 2 dimensions \(N, T\); got shape \(3,\)", R.word_embedding_forward,
            np.array([0, 1, 2]), W)
    _raises(r"word_embedding_forward: x must hold integer ids; got dtype float64", R.word_embedding_forward,
            np.array([[0.5, 1.0]]), W)
    _raises(r"word_embedding_forward: W must have 2 dimensions \(V, D\); got shape \(5,\)", R.word_embedding_forward,
            np.array([[0, 1]]), np.zeros(5))
    out, cache = R.word_embedding_forward(np.array([[0, 1]]), W)
    _raises(r"word_embedding_backward: dout must have shape \(1, 2, 3\).*got shape \(1, 2, 4\)", R.word_embedding_backward,
            np.zeros((1, 2, 4)), cache)


def test_bad_loss_inputs():
    x, y, mask = np.zeros((2, 3, 4)), np.zeros((2, 3), dtype=int), np.ones((2, 3), dtype=bool)
    _raises(r"temporal_softmax_loss: mask must have shape \(2, 3\) \(N, T\) to match y \(2, 3\).*got shape \(2, 4\)",
            R.temporal_softmax_loss, x, y, np.ones((2, 4), dtype=bool))
    _raises(r"temporal_softmax_loss: mask must have 2 dimensions \(N, T\); got shape \(6,\)", R.temporal_softmax_loss,
            x, y, np.ones(6, dtype=bool))
    _raises(r"temporal_softmax_loss: y must have shape \(2, 3\).*got shape \(3, 2\)", R.temporal_softmax_loss,
            x, np.zeros((3, 2), dtype=int), mask)
    _raises(r"temporal_softmax_loss: y must hold ids in \[0, 4\).*got 4", R.temporal_softmax_loss, x,
            np.array([[0, 1, 4], [0, 0, 0]]), mask)
    _raises(r"temporal_softmax_loss: x must have 3 dimensions \(N, T, V\); got shape \(2, 3\)", R.temporal_softmax_loss,
            x[..., 0], y, mask)
    _raises(r"temporal_softmax_loss: mask must hold booleans", R.temporal_softmax_loss, x, y, np.full((2, 3), 0.5))
    _raises(r"temporal_softmax_loss: x must be finite", R.temporal_softmax_loss, np.full((2, 3, 4), np.nan), y, mask)

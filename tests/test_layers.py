"""hwlib.layers against independent references: PyTorch (forward and autograd), numerical
gradients, and small hand-computed examples; plus every bad input the layers must reject."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwlib import layers
from hwlib.check import NUMERICAL_FLOOR_SCALE, compare, draw, numerical_gradients, reference, run
from hwlib.gradient_check import rel_error

DTYPES = [np.float64, np.float32]


def random_shape(layer, rng):
    """Random shapes per layer: H != W, kernel H' != W', pools that tile and that overlap."""
    if layer == "fc":
        return {"N": int(rng.integers(1, 9)), "in_shape": tuple(int(d) for d in rng.integers(1, 6, size=rng.integers(1, 4))),
                "M": int(rng.integers(1, 9))}
    if layer == "relu":
        return {"shape": tuple(int(d) for d in rng.integers(1, 6, size=rng.integers(1, 5)))}
    if layer == "conv":
        H, W = (int(v) for v in rng.choice(np.arange(3, 13), size=2, replace=False))
        return {"N": int(rng.integers(1, 5)), "C": int(rng.integers(1, 5)), "H": H, "W": W,
                "F": int(rng.integers(1, 6)), "HH": int(rng.integers(1, H + 1)), "WW": int(rng.integers(1, W + 1))}
    if layer == "pool":
        ph, pw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        stride = int(rng.integers(1, 4))
        Ho, Wo = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        return {"N": int(rng.integers(1, 4)), "C": int(rng.integers(1, 4)), "H": ph + (Ho - 1) * stride,
                "W": pw + (Wo - 1) * stride, "pool_height": ph, "pool_width": pw, "stride": stride}
    if layer == "softmax":
        return {"N": int(rng.integers(1, 12)), "C": int(rng.integers(2, 12)), "scale": float(10 ** rng.uniform(-1, 4))}
    raise AssertionError(layer)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("layer", ["fc", "relu", "conv", "pool", "softmax"])
def test_layer_matches_pytorch_on_random_shapes(layer, dtype, rng):
    """Forward and every gradient agree with PyTorch: rel error < 1e-8 in float64."""
    for _ in range(12):
        inputs = draw(layer, rng, dtype, **random_shape(layer, rng))
        outputs = run(layer, inputs)
        expected = reference(layer, inputs)
        compare(layer, outputs, expected)
        for key in expected.keys() - {"loss"}:  # arrays keep the input precision (the loss is a float)
            assert np.asarray(outputs[key]).dtype == np.dtype(dtype), (key, np.asarray(outputs[key]).dtype)


@pytest.mark.parametrize("layer", ["fc", "relu", "conv", "pool", "softmax"])
def test_layer_gradients_match_numerical(layer, rng):
    for _ in range(3):
        shape = random_shape(layer, rng)
        if layer == "softmax":
            shape["scale"] = 1.0  # the numerical gradient needs a smooth neighbourhood
        inputs = draw(layer, rng, np.float64, **shape)
        outputs = run(layer, inputs)
        numerical = numerical_gradients(layer, inputs)
        compare(layer, {k: outputs[k] for k in numerical}, numerical, threshold=1e-6,
                floor_scale=NUMERICAL_FLOOR_SCALE)


def test_conv_shapes_of_the_convnet_match_pytorch(rng):
    for x_shape, w_shape in [((50, 1, 28, 28), (32, 1, 7, 7)), ((5, 16, 12, 12), (32, 16, 3, 3))]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
        out, cache = layers.conv_forward(x, w)
        dout = rng.standard_normal(out.shape)
        dx, dw = layers.conv_backward(dout, cache)
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        yt = F.conv2d(xt, wt)
        yt.backward(torch.tensor(dout))
        assert rel_error(out, yt.detach().numpy()) < 1e-8
        assert rel_error(dx, xt.grad.numpy()) < 1e-8
        assert rel_error(dw, wt.grad.numpy(), floor=1e-6) < 1e-8


# --- hand-computed examples ---------------------------------------------------------------------

def test_fc_hand_computed():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.5]])
    b = np.array([0.5, -1.0, 0.0])
    out, cache = layers.fc_forward(x, w, b)
    np.testing.assert_allclose(out, [[5.5, 1.0, 0.0], [11.5, 3.0, -1.0]])
    dx, dw, db = layers.fc_backward(np.ones((2, 3)), cache)
    np.testing.assert_allclose(dx, [[0.0, 3.5], [0.0, 3.5]])
    np.testing.assert_allclose(dw, [[4.0, 4.0, 4.0], [6.0, 6.0, 6.0]])
    np.testing.assert_allclose(db, [2.0, 2.0, 2.0])


def test_fc_flattens_4d_input_and_returns_dx_in_its_shape(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    w, b = rng.standard_normal((60, 7)), rng.standard_normal(7)
    out, cache = layers.fc_forward(x, w, b)
    np.testing.assert_allclose(out, x.reshape(2, 60) @ w + b)
    dx, _, _ = layers.fc_backward(np.ones((2, 7)), cache)
    assert dx.shape == x.shape


def test_relu_hand_computed():
    out, cache = layers.relu_forward(np.array([[-1.0, 0.0, 2.0]]))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layers.relu_backward(np.array([[5.0, 5.0, 5.0]]), cache), [[0.0, 0.0, 5.0]])


def test_conv_is_filtering_hand_computed():
    """Y = X *filt K on a 3x3 image and a 2x2 kernel, worked by hand (no kernel flip)."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)      # [[1,2,3],[4,5,6],[7,8,9]]
    k = np.array([[1.0, 0.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    out, cache = layers.conv_forward(x, k)
    np.testing.assert_allclose(out[0, 0], [[1 - 5, 2 - 6], [4 - 8, 5 - 9]])
    dx, dw = layers.conv_backward(np.ones((1, 1, 2, 2)), cache)
    # dX = dY *full K: each pixel collects K's entries over the windows covering it.
    np.testing.assert_allclose(dx[0, 0], [[1, 1, 0], [1, 0, -1], [0, -1, -1]])
    # dK = X *filt dY: sums of 2x2 blocks of X.
    np.testing.assert_allclose(dw[0, 0], [[12, 16], [24, 28]])


def test_max_pool_hand_computed_and_overlapping_windows_add_up():
    x = np.array([[1.0, 9.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]).reshape(1, 1, 3, 3)
    out, cache = layers.max_pool_forward(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    np.testing.assert_allclose(out[0, 0], [[9, 9], [7, 8]])
    dx = layers.max_pool_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_allclose(dx[0, 0], [[0, 2, 0], [0, 0, 0], [0, 1, 1]])


def test_max_pool_ties_go_to_the_first_maximum_like_pytorch():
    x = np.zeros((1, 2, 4, 4))
    x[0, 1, :2, :2] = 3.0  # a tie of four in one window
    for param in ({"pool_height": 2, "pool_width": 2, "stride": 2}, {"pool_height": 2, "pool_width": 2, "stride": 1}):
        out, cache = layers.max_pool_forward(x, param)
        dout = np.arange(1.0, out.size + 1).reshape(out.shape)
        dx = layers.max_pool_backward(dout, cache)
        xt = torch.tensor(x, requires_grad=True)
        yt = F.max_pool2d(xt, 2, param["stride"])
        yt.backward(torch.tensor(dout))
        np.testing.assert_array_equal(dx, xt.grad.numpy())


def test_softmax_hand_computed_and_stable_at_1e4():
    x = np.array([[0.0, np.log(3.0)]])  # probabilities 1/4, 3/4
    loss, dx = layers.softmax_loss(x, np.array([1]))
    np.testing.assert_allclose(loss, -np.log(0.75))
    np.testing.assert_allclose(dx, [[0.25, -0.25]])
    big = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4 - 2.0, 1e4]])
    loss, dx = layers.softmax_loss(big, np.array([0, 1]))
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    np.testing.assert_allclose(loss, (0.0 + (2.0 + np.log1p(np.exp(-2.0)))) / 2)


# --- bad input ------------------------------------------------------------------------------------

POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


@pytest.mark.parametrize(
    "call, fragment",
    [
        (lambda: layers.fc_forward(np.ones(5), np.ones((5, 2)), np.ones(2)), "x must have at least 2 dimensions"),
        (lambda: layers.fc_forward(np.ones((3, 4)), np.ones((5, 2)), np.ones(2)), "w must have shape (4, M)"),
        (lambda: layers.fc_forward(np.ones((3, 4)), np.ones(4), np.ones(2)), "w must have 2 dimensions"),
        (lambda: layers.fc_forward(np.ones((3, 4)), np.ones((4, 2)), np.ones(3)), "b must have shape (2,)"),
        (lambda: layers.fc_backward(np.ones((3, 3)), layers.fc_forward(np.ones((3, 4)), np.ones((4, 2)), np.ones(2))[1]),
         "dout must have shape (3, 2)"),
        (lambda: layers.relu_backward(np.ones(3), layers.relu_forward(np.ones(4))[1]), "dout must have shape (4,)"),
        (lambda: layers.conv_forward(np.ones((2, 3, 5)), np.ones((1, 3, 2, 2))), "x must have 4 dimensions (N, C, H, W); got shape (2, 3, 5)"),
        (lambda: layers.conv_forward(np.ones((2, 3, 5, 5)), np.ones((3, 2, 2))), "w must have 4 dimensions (F, C, HH, WW); got shape (3, 2, 2)"),
        (lambda: layers.conv_forward(np.ones((2, 3, 5, 5)), np.ones((4, 2, 2, 2))), "w must have 3 channels"),
        (lambda: layers.conv_forward(np.ones((2, 3, 5, 5)), np.ones((4, 3, 6, 2))), "larger than the image"),
        (lambda: layers.conv_backward(np.ones((2, 4, 3, 3)), layers.conv_forward(np.ones((2, 3, 5, 5)), np.ones((4, 3, 2, 2)))[1]),
         "dout must have shape (2, 4, 4, 4)"),
        (lambda: layers.max_pool_forward(np.ones((2, 3, 4)), POOL), "x must have 4 dimensions"),
        (lambda: layers.max_pool_forward(np.ones((1, 1, 4, 4)), {"pool_height": 5, "pool_width": 2, "stride": 1}), "does not fit"),
        (lambda: layers.max_pool_forward(np.ones((1, 1, 5, 4)), POOL), "does not tile"),
        (lambda: layers.max_pool_forward(np.ones((1, 1, 4, 4)), {"pool_height": 2, "stride": 2}), "missing ['pool_width']"),
        (lambda: layers.max_pool_forward(np.ones((1, 1, 4, 4)), {"pool_height": 2, "pool_width": 2, "stride": 0}), "positive integer"),
        (lambda: layers.softmax_loss(np.ones(3), np.array([0])), "x must have 2 dimensions (N, C)"),
        (lambda: layers.softmax_loss(np.ones((2, 3)), np.array([0, 3])), "labels in [0, 3)"),
        (lambda: layers.softmax_loss(np.ones((2, 3)), np.array([0, -1])), "got -1 at index 1"),
        (lambda: layers.softmax_loss(np.ones((2, 3)), np.array([0, 1, 2])), "y must have shape (2,)"),
        (lambda: layers.softmax_loss(np.ones((2, 3)), np.array([0.5, 1.0])), "integer class labels"),
        (lambda: layers.softmax_loss(np.array([[1.0, np.nan], [0.0, 0.0]]), np.array([0, 1])), "x must be finite; found nan at index (0, 1)"),
        (lambda: layers.relu_forward(np.array(["a", "b"])), "numeric array"),
    ],
)
def test_bad_input_raises_a_clear_value_error(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_no_grad_inputs_skip_dx_and_change_nothing_else(rng):
    """A no_grad input (a network's images) is a view with the same values; fc and conv then return
    None for dx and the same dw (and db) bit for bit; arithmetic on it gives plain arrays."""
    x = rng.standard_normal((4, 2, 6, 5))
    marked = layers.no_grad(x)
    assert isinstance(marked, layers.NoGrad) and np.shares_memory(marked, x) and np.array_equal(marked, x)
    assert type(marked * 2) is np.ndarray and type(marked.reshape(4, -1) @ np.ones((60, 3))) is np.ndarray
    assert type(marked.sum()) is not layers.NoGrad
    w, b = rng.standard_normal((60, 3)), rng.standard_normal(3)
    out, cache = layers.fc_forward(x, w, b)
    out_m, cache_m = layers.fc_forward(marked, w, b)
    dout = rng.standard_normal(out.shape)
    (dx, dw, db), (dx_m, dw_m, db_m) = layers.fc_backward(dout, cache), layers.fc_backward(dout, cache_m)
    assert dx_m is None and dx.shape == x.shape and type(out_m) is np.ndarray and type(dw_m) is np.ndarray
    assert np.array_equal(out, out_m) and np.array_equal(dw, dw_m) and np.array_equal(db, db_m)
    k = rng.standard_normal((3, 2, 3, 2))
    out, cache = layers.conv_forward(x, k)
    out_m, cache_m = layers.conv_forward(marked, k)
    dout = rng.standard_normal(out.shape)
    (dx, dk), (dx_m, dk_m) = layers.conv_backward(dout, cache), layers.conv_backward(dout, cache_m)
    assert dx_m is None and dx.shape == x.shape and type(dk_m) is np.ndarray
    assert np.array_equal(out, out_m) and np.array_equal(dk, dk_m)


@pytest.mark.parametrize("pool", [(2, 2, 2), (3, 3, 2), (2, 3, 3), (2, 2, 3)], ids=["tile", "overlap", "rect", "gaps"])
def test_relu_and_pool_give_the_same_results_in_the_layout_conv_returns(pool, rng):
    """conv_forward returns its output with the batch innermost in memory (a view, no copy); ReLU and
    pooling on such an input give the same values and gradients as on a row-major copy."""
    ph, pw, s = pool
    x = rng.standard_normal((5, 3, 11, 11))
    out, _ = layers.conv_forward(x, rng.standard_normal((4, 3, 2, 2)))     # (5, 4, 10, 10)
    assert not out.flags.c_contiguous
    a = np.round(out, 1)                                                    # ties too
    a_batch_inner = np.empty_like(out)
    a_batch_inner[...] = a
    assert a_batch_inner.strides == out.strides
    param = {"pool_height": ph, "pool_width": pw, "stride": s}
    crop = (slice(None), slice(None), slice(0, ph + (10 - ph) // s * s), slice(0, pw + (10 - pw) // s * s))
    row_major = np.ascontiguousarray(a[crop])
    dout = None

    def relu_pool(given):
        nonlocal dout
        r, rc = layers.relu_forward(given)
        p, pc = layers.max_pool_forward(r, param)
        dout = np.round(rng.standard_normal(p.shape), 1) if dout is None else dout
        return p, layers.relu_backward(layers.max_pool_backward(dout, pc), rc)

    out_inner, dx_inner = relu_pool(a_batch_inner[crop])
    out_rows, dx_rows = relu_pool(row_major)
    assert np.array_equal(out_inner, out_rows) and np.array_equal(dx_inner, dx_rows)
    xt = torch.tensor(row_major, requires_grad=True)
    yt = F.max_pool2d(torch.relu(xt), (ph, pw), s)
    yt.backward(torch.tensor(dout))
    assert np.array_equal(out_rows, yt.detach().numpy()) and np.allclose(dx_rows, xt.grad.numpy(), atol=1e-12)

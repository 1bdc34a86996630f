"""The Q2/Q3 classifiers against numerical gradients and against the same networks in PyTorch.

Seeds are explicit per test (np.random.default_rng(N)), so every run draws the same cases; the
gradient checks also assert their own premise (no ReLU input or pooling near-tie within a
numerical step), so a draw that would make a numerical gradient meaningless fails loudly instead
of passing or failing by accident.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hwlib.classifiers import ConvNet, SoftmaxClassifier
from hwlib.gradient_check import assert_close, eval_numerical_gradient

SOFTMAX_KEYS = ("W1", "b1", "W2", "b2")
CONVNET_KEYS = ("W1", "W2", "b2", "W3", "b3")


# --- references -----------------------------------------------------------------------------------

def torch_softmax_classifier(params, X, y=None):
    """fc - relu - fc (- cross-entropy) in PyTorch; returns scores, or (loss, grads)."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(X).reshape(X.shape[0], -1)
    scores = torch.relu(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    return _torch_loss(p, scores, y)


def torch_convnet(params, X, y=None):
    """conv - relu - 2x2 max-pool - fc - relu - fc (- cross-entropy) in PyTorch."""
    p = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    x = torch.tensor(X)
    pooled = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(x, p["W1"])), 2, 2)
    hidden = torch.relu(pooled.reshape(x.shape[0], -1) @ p["W2"] + p["b2"])
    scores = hidden @ p["W3"] + p["b3"]
    return _torch_loss(p, scores, y)


def _torch_loss(p, scores, y):
    if y is None:
        return scores.detach().numpy()
    loss = torch.nn.functional.cross_entropy(scores, torch.as_tensor(y))
    names = list(p)
    grads = torch.autograd.grad(loss, [p[k] for k in names])
    return loss.item(), {k: g.numpy() for k, g in zip(names, grads)}


def randomize(model, rng, scale=1.0):
    """Give every parameter (biases included) random values: zero biases would hide bias bugs."""
    for k, v in model.params.items():
        model.params[k] = (scale * rng.standard_normal(v.shape)).astype(model.dtype)
    return model


# --- premises of the numerical checks -------------------------------------------------------------

def min_abs(a):
    return float(np.min(np.abs(a)))


def assert_no_pool_near_ties(relu_out, margin):
    """Every 2x2 window of ``relu_out`` with a positive maximum has its runner-up at least ``margin`` below."""
    N, F, H, W = relu_out.shape
    win = relu_out.reshape(N, F, H // 2, 2, W // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(-1, 4)
    top2 = np.sort(win, axis=1)[:, -2:]
    positive = top2[:, 1] > 0
    gap = (top2[:, 1] - top2[:, 0])[positive]
    assert gap.min() > margin, f"test premise: a pooling window has a near-tie (gap {gap.min():.1e}); pick another seed"


def softmax_numerical_case(seed=1, N=5, sample_shape=(2, 3, 2), H=7, C=4):
    rng = np.random.default_rng(seed)
    D = int(np.prod(sample_shape))
    model = randomize(SoftmaxClassifier(input_dim=D, hidden_dim=H, num_classes=C, rng=rng), rng, scale=0.5)
    X = rng.standard_normal((N, *sample_shape))
    y = rng.integers(0, C, size=N)
    pre = X.reshape(N, D) @ model.params["W1"] + model.params["b1"]
    assert min_abs(pre) > 1e-3, f"test premise: a hidden pre-activation is {min_abs(pre):.1e} from the ReLU kink"
    return model, X, y


def convnet_numerical_case(seed=3, N=3, input_dim=(2, 8, 8), F=3, k=3, hidden=5, C=4):
    rng = np.random.default_rng(seed)
    model = ConvNet(input_dim=input_dim, num_filters=F, filter_size=k, hidden_dim=hidden, num_classes=C,
                    dtype=np.float64, rng=rng)
    randomize(model, rng, scale=0.5)
    X = rng.standard_normal((N, *input_dim))
    y = rng.integers(0, C, size=N)
    conv = torch.nn.functional.conv2d(torch.tensor(X), torch.tensor(model.params["W1"])).numpy()
    assert min_abs(conv) > 1e-3, f"test premise: a conv output is {min_abs(conv):.1e} from the ReLU kink"
    assert_no_pool_near_ties(np.maximum(conv, 0), 1e-3)
    pooled = torch.nn.functional.max_pool2d(torch.tensor(np.maximum(conv, 0)), 2, 2).numpy()
    pre = pooled.reshape(N, -1) @ model.params["W2"] + model.params["b2"]
    assert min_abs(pre) > 1e-3, f"test premise: a hidden pre-activation is {min_abs(pre):.1e} from the ReLU kink"
    return model, X, y


# --- gradients ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [softmax_numerical_case, convnet_numerical_case], ids=["softmax", "convnet"])
def test_gradients_match_numerical_gradients(case):
    model, X, y = case()
    loss, grads = model.loss(X, y)
    assert set(grads) == set(model.params), f"grads keys {sorted(grads)} != params keys {sorted(model.params)}"
    for name, param in model.params.items():
        numerical = eval_numerical_gradient(lambda _: model.loss(X, y)[0], param, h=1e-5)
        assert grads[name].shape == param.shape and grads[name].dtype == param.dtype, name
        # Entries under 1e-3 of the largest are judged against that floor: the centred difference
        # carries ~1e-11 of absolute round-off, which is not a relative 1e-6 of a tiny entry.
        floor = 1e-3 * float(np.abs(numerical).max())
        assert_close(grads[name], numerical, name=name, threshold=1e-6, floor=floor, expected_label="numerical")
    assert model.loss(X, y)[0] == loss, "the numerical check must leave the parameters as they were"


def convnet_torch_case(dtype, seed, N=4):
    rng = np.random.default_rng(seed)
    model = randomize(ConvNet(dtype=dtype, rng=rng), rng, scale=0.05)
    return model, rng.standard_normal((N, 1, 28, 28)).astype(dtype), rng.integers(0, 10, size=N)


def softmax_torch_case(dtype, seed, N=6):
    rng = np.random.default_rng(seed)
    model = randomize(SoftmaxClassifier(input_dim=784, hidden_dim=50, dtype=dtype, rng=rng), rng, scale=0.05)
    return model, rng.standard_normal((N, 1, 28, 28)).astype(dtype), rng.integers(0, 10, size=N)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case, reference", [(softmax_torch_case, torch_softmax_classifier),
                                             (convnet_torch_case, torch_convnet)], ids=["softmax", "convnet"])
def test_loss_scores_and_grads_match_pytorch(case, reference, dtype):
    """Same weights in PyTorch: same scores, loss and gradients.

    float64: within 1e-8 of PyTorch in float64. float32: the model must compute in float32 and be
    as accurate as float32 allows: within 2e-4 of PyTorch's float64 result on the same (float32)
    weights and inputs (PyTorch's own float32 result is ~1.5e-4 away from it on these cases), entries
    under 1e-3 of the largest judged against that floor (sums of thousands of float32 terms cancel).
    """
    model, X, y = case(dtype, seed=7)
    loss, grads = model.loss(X, y)
    params64 = {k: v.astype(np.float64) for k, v in model.params.items()}
    X64 = X.astype(np.float64)
    torch_loss, torch_grads = reference(params64, X64, y)
    expected = {"scores": reference(params64, X64), "loss": np.asarray(torch_loss), **torch_grads}
    ours = {"scores": model.loss(X), "loss": np.asarray(loss), **grads}
    threshold = 1e-8 if dtype == np.float64 else 2e-4
    floor_scale = 1e-6 if dtype == np.float64 else 1e-3
    for name, value in expected.items():
        floor = max(1e-8, floor_scale * float(np.abs(value).max()))
        assert_close(ours[name], value, name=f"{type(model).__name__} {name}", threshold=threshold, floor=floor,
                     expected_label="torch")
        if name != "loss":
            assert ours[name].dtype == np.dtype(dtype), f"{name} is {ours[name].dtype}, expected {np.dtype(dtype)}"


# --- scores, dtypes, parameters ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scores_shape_and_dtype_follow_the_model(dtype):
    rng = np.random.default_rng(0)
    X64 = rng.standard_normal((3, 1, 28, 28))
    for model in (ConvNet(dtype=dtype, rng=rng), SoftmaxClassifier(dtype=dtype, rng=rng)):
        for X in (X64, X64.astype(np.float32), (X64 * 50 + 128).clip(0, 255).astype(np.uint8)):
            scores = model.loss(X)
            assert scores.shape == (3, 10) and scores.dtype == np.dtype(dtype), (repr(model), X.dtype, scores.dtype)
        loss, grads = model.loss(X64, np.array([0, 1, 2]))
        assert isinstance(loss, float)
        assert all(grads[k].dtype == np.dtype(dtype) and grads[k].shape == v.shape for k, v in model.params.items())


def test_softmax_classifier_flattens_image_inputs():
    rng = np.random.default_rng(0)
    model = randomize(SoftmaxClassifier(rng=rng), rng, scale=0.1)
    X = rng.standard_normal((4, 1, 28, 28))
    np.testing.assert_array_equal(model.loss(X), model.loss(X.reshape(4, 784)))
    _, grads = model.loss(X, np.array([1, 2, 3, 4]))
    assert grads["W1"].shape == (784, 100)


@pytest.mark.parametrize("make, shapes", [
    (lambda rng: SoftmaxClassifier(input_dim=20, hidden_dim=6, num_classes=3, rng=rng),
     {"W1": (20, 6), "b1": (6,), "W2": (6, 3), "b2": (3,)}),
    (lambda rng: ConvNet(input_dim=(3, 12, 10), num_filters=4, filter_size=5, hidden_dim=7, num_classes=3, rng=rng),
     {"W1": (4, 3, 5, 5), "W2": (4 * 4 * 3, 7), "b2": (7,), "W3": (7, 3), "b3": (3,)}),
], ids=["softmax", "convnet"])
def test_parameter_shapes_and_zero_biases(make, shapes):
    model = make(np.random.default_rng(0))
    assert {k: v.shape for k, v in model.params.items()} == shapes
    for k, v in model.params.items():
        if k.startswith("b"):
            assert not v.any(), f"{k} must start at 0"
        else:
            assert np.all(v != 0), f"{k} must be drawn at random"


def test_weights_are_normal_with_weight_scale_and_reproducible():
    a = ConvNet(weight_scale=0.02, rng=np.random.default_rng(5), dtype=np.float64)
    b = ConvNet(weight_scale=0.02, rng=np.random.default_rng(5), dtype=np.float32)
    c = ConvNet(weight_scale=0.02, rng=np.random.default_rng(6), dtype=np.float64)
    W2 = a.params["W2"]  # 387,200 draws: the sample std is within 0.5% of the scale
    assert abs(W2.std() / 0.02 - 1) < 5e-3 and abs(W2.mean()) < 1e-4, (W2.mean(), W2.std())
    for k in a.params:
        assert b.params[k].dtype == np.float32
        np.testing.assert_array_equal(b.params[k], a.params[k].astype(np.float32), err_msg=k)
        if k.startswith("W"):
            assert not np.array_equal(a.params[k], c.params[k]), f"{k}: another seed must give other weights"
    same_seed = SoftmaxClassifier(rng=3).params["W1"]
    np.testing.assert_array_equal(same_seed, SoftmaxClassifier(rng=np.random.default_rng(3)).params["W1"])


def test_models_leave_numpy_global_random_state_alone():
    before = np.random.get_state()[1].copy()
    SoftmaxClassifier(rng=0), ConvNet(rng=0), SoftmaxClassifier(), ConvNet()
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("model", [SoftmaxClassifier(rng=0), ConvNet(rng=0)], ids=["softmax", "convnet"])
def test_initial_loss_is_log_num_classes(model):
    """Small initial weights give nearly uniform class probabilities: loss ~ log(10)."""
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, size=(20, 1, 28, 28))
    loss, _ = model.loss(X, rng.integers(0, 10, size=20))
    assert abs(loss - math.log(10)) < 1e-3, loss


@pytest.mark.parametrize("make", [
    lambda rng: SoftmaxClassifier(input_dim=64, hidden_dim=30, num_classes=3, weight_scale=0.1, rng=rng),
    lambda rng: ConvNet(input_dim=(1, 8, 8), num_filters=4, filter_size=3, hidden_dim=30, num_classes=3,
                        weight_scale=0.1, rng=rng),
], ids=["softmax", "convnet"])
def test_gradient_descent_overfits_a_small_batch(make):
    """The gradients point downhill: plain gradient descent fits 15 random samples exactly."""
    rng = np.random.default_rng(2)
    model = make(rng)
    X = rng.standard_normal((15, 1, 8, 8))
    y = rng.integers(0, 3, size=15)
    first, _ = model.loss(X, y)
    for _ in range(300):
        loss, grads = model.loss(X, y)
        for k in model.params:
            model.params[k] -= 0.1 * grads[k]
    assert loss < 0.1 * first, (first, loss)
    assert np.array_equal(model.loss(X).argmax(axis=1), y)


# --- bad input --------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, X, y, match", [
    (ConvNet(rng=0), np.zeros((2, 28, 28)), None, r"ConvNet\.loss: X must have shape \(N, 1, 28, 28\).*got shape \(2, 28, 28\)"),
    (ConvNet(rng=0), np.zeros((2, 3, 28, 28)), None, r"X must have shape \(N, 1, 28, 28\).*got shape \(2, 3, 28, 28\)"),
    (ConvNet(rng=0), np.zeros((0, 1, 28, 28)), None, r"at least one sample"),
    (ConvNet(rng=0), np.zeros((2, 1, 28, 28)), np.array([0, 1, 2]), r"ConvNet\.loss: y must have shape \(2,\).*got shape \(3,\)"),
    (ConvNet(rng=0), np.zeros((2, 1, 28, 28)), np.array([0, 10]), r"y must hold labels in \[0, 10\).*got 10 at index 1"),
    (SoftmaxClassifier(rng=0), np.zeros((2, 783)), None,
     r"SoftmaxClassifier\.loss: X must have shape \(N, 784\).*got shape \(2, 783\)"),
    (SoftmaxClassifier(rng=0), np.zeros(784), None, r"X must have shape \(N, 784\).*got shape \(784,\)"),
    (SoftmaxClassifier(rng=0), np.array([["a"] * 784]), None, r"X must be a numeric array; got dtype <U1"),
    (SoftmaxClassifier(rng=0), np.zeros((2, 784)), np.array([0.5, 1.0]), r"y must hold integer class labels"),
], ids=["conv-3d", "conv-channels", "conv-empty", "conv-y-len", "conv-y-range", "fc-features", "fc-1d",
        "fc-strings", "fc-y-float"])
def test_bad_input_raises_clear_errors(model, X, y, match):
    with pytest.raises(ValueError, match=match):
        model.loss(X, y)


@pytest.mark.parametrize("make, match", [
    (lambda: SoftmaxClassifier(hidden_dim=0), r"SoftmaxClassifier: hidden_dim must be a positive integer; got 0"),
    (lambda: SoftmaxClassifier(input_dim=(1, 28, 28)), r"input_dim must be a positive integer; got \(1, 28, 28\)"),
    (lambda: SoftmaxClassifier(weight_scale=-1e-3), r"weight_scale must be a positive finite number; got -0.001"),
    (lambda: SoftmaxClassifier(dtype=np.int32), r"dtype must be np.float32 or np.float64"),
    (lambda: SoftmaxClassifier(rng="seed"), r"rng must be a np.random.Generator"),
    (lambda: ConvNet(input_dim=(28, 28)), r"ConvNet: input_dim must be a tuple \(C, H, W\); got \(28, 28\)"),
    (lambda: ConvNet(filter_size=6), r"convolution output \(23, 23\).*must have even sides"),
    (lambda: ConvNet(filter_size=29), r"filter_size 29 does not fit in images of shape \(1, 28, 28\)"),
    (lambda: ConvNet(num_filters=2.5), r"num_filters must be a positive integer; got 2.5"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("make", [
    lambda rng: SoftmaxClassifier(input_dim=64, hidden_dim=30, num_classes=3, weight_scale=0.1, rng=rng,
                                  dtype=np.float32),
    lambda rng: ConvNet(input_dim=(1, 8, 8), num_filters=4, filter_size=3, hidden_dim=30, num_classes=3,
                        weight_scale=0.1, rng=rng),
], ids=["softmax", "convnet"])
def test_solver_trains_float32_models_in_float32(make):
    """With the Solver and an update rule, the parameters stay float32 and the model (nearly) fits 40 random samples."""
    from hwlib.solver import Solver

    rng = np.random.default_rng(4)
    model = make(rng)
    X, y = rng.standard_normal((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, size=40)
    # Validation on the training set: the Solver keeps the best-validation parameters, here the best fit.
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    solver = Solver(model, data, update_rule="sgd_momentum", optim_config={"learning_rate": 0.05},
                    batch_size=10, num_epochs=30, verbose=False, seed=0)
    solver.train()
    assert all(v.dtype == np.float32 for v in model.params.values()), {k: v.dtype for k, v in model.params.items()}
    assert solver.check_accuracy(X, y) >= 0.95  # chance: 1/3
    assert solver.loss_history[-1] < 0.2 * solver.loss_history[0]


def test_conv_relu_pool_is_relu_then_pool_bit_for_bit_even_on_ties():
    """The given sandwich pools before its ReLU (a quarter of the work); on inputs full of ties (small
    integers: equal maxima, all-negative and all-zero windows) its output and gradients equal the
    seed's order, ReLU then pooling, bit for bit, and PyTorch's conv-relu-pool gradients."""
    from hwlib.classifiers import conv_relu_pool_backward, conv_relu_pool_forward
    from hwlib.layers import conv_backward, conv_forward, max_pool_backward, max_pool_forward, relu_backward, relu_forward

    rng = np.random.default_rng(31)
    x = rng.integers(-2, 3, size=(6, 2, 9, 9)).astype(np.float64)
    w = rng.integers(-1, 2, size=(4, 2, 2, 2)).astype(np.float64)
    pool = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = conv_relu_pool_forward(x, w, pool)
    a, conv_cache = conv_forward(x, w)
    s, relu_cache = relu_forward(a)
    expected, pool_cache = max_pool_forward(s, pool)
    a_pool = a.reshape(6, 4, 4, 2, 4, 2)
    windows = a_pool.transpose(0, 1, 2, 4, 3, 5).reshape(6, 4, 4, 4, 4)
    ties = (windows == windows.max(axis=-1, keepdims=True)).sum(axis=-1)
    top = windows.max(axis=-1)
    assert ((top > 0) & (ties > 1)).sum() >= 10 and (top <= 0).sum() >= 10     # the premise: both kinds of tie
    dout = rng.integers(-3, 4, size=out.shape).astype(np.float64)
    dx, dw = conv_relu_pool_backward(dout, cache)
    edx, edw = conv_backward(relu_backward(max_pool_backward(dout, pool_cache), relu_cache), conv_cache)
    assert np.array_equal(out, expected) and np.array_equal(dx, edx) and np.array_equal(dw, edw)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(xt, wt)), 2, 2)
    yt.backward(torch.tensor(dout))
    assert np.array_equal(out, yt.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), atol=1e-12)

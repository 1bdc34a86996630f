"""Classifiers of Q2 and Q3: a two-layer softmax network and a small convolutional network.

Both follow the model interface the :class:`hwlib.solver.Solver` expects (as in cs231n's
``classifiers/``):

* ``model.params``: dict from parameter name to array (``W1``, ``b1``, ...);
* ``model.loss(X)`` returns class scores (N, C); ``model.loss(X, y)`` returns ``(loss, grads)``
  with ``grads`` keyed like ``params``.

The networks are built from :mod:`hwlib.layers` by nesting caches (as cs231n's
``layer_utils.py``): a "sandwich" layer such as :func:`fc_relu_forward` keeps the caches of the
layers it chains, and its backward pass unpacks them in reverse order.

Weights are drawn from N(0, weight_scale^2) with the generator you pass (``rng``: a
``np.random.Generator`` or an int seed), biases start at 0. Everything stays in the model's
``dtype``: inputs are cast to it, so a float32 network computes in float32 throughout.

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write.
"""

from __future__ import annotations

import numbers

import numpy as np

from .layers import (conv_backward, conv_forward, fc_backward, fc_forward, max_pool_backward,
                     max_pool_forward, no_grad, relu_backward, relu_forward, softmax_loss)
from .validation import as_generator, float_dtype, positive_int, require, require_labels

__all__ = [
    "fc_relu_forward", "fc_relu_backward",
    "conv_relu_pool_forward", "conv_relu_pool_backward",
    "SoftmaxClassifier", "ConvNet",
]


# --- sandwich layers (given) ----------------------------------------------------------------------

def fc_relu_forward(x, w, b):
    """Fully connected layer followed by a ReLU.

    Inputs: x (N, d_1, ..., d_k), w (D, M), b (M,) as in :func:`hwlib.layers.fc_forward`.

    Returns ``(out, cache)``: out (N, M); cache ``(fc_cache, relu_cache)``.
    """
    a, fc_cache = fc_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def fc_relu_backward(dout, cache):
    """Backward pass of :func:`fc_relu_forward`; returns ``(dx, dw, db)`` (dx may be None for an
    input marked ``no_grad``)."""
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return fc_backward(da, fc_cache)


def conv_relu_pool_forward(x, w, pool_param):
    """Convolution (no bias), ReLU, then max-pooling.

    Inputs: x (N, C, H, W), w (F, C, HH, WW), pool_param as in
    :func:`hwlib.layers.max_pool_forward`.

    Returns ``(out, cache)``: out (N, F, H', W'); cache ``(conv_cache, pool_cache, relu_cache)``.

    The ReLU is applied after the pooling: the maximum of rectified values is the rectified
    maximum, ``max(relu(a)) = relu(max(a))``, so the result is the same, bit for bit, and the ReLU
    runs on a quarter of the values (2 x 2 pooling). The gradients agree as well: where a window's
    maximum is positive both orders send the gradient to its first maximum; where it is not, both
    send zero.
    """
    a, conv_cache = conv_forward(x, w)
    m, pool_cache = max_pool_forward(a, pool_param)
    out, relu_cache = relu_forward(m)
    return out, (conv_cache, pool_cache, relu_cache)


def conv_relu_pool_backward(dout, cache):
    """Backward pass of :func:`conv_relu_pool_forward`; returns ``(dx, dw)`` (dx may be None for an
    input marked ``no_grad``)."""
    conv_cache, pool_cache, relu_cache = cache
    dm = relu_backward(dout, relu_cache)
    da = max_pool_backward(dm, pool_cache)
    return conv_backward(da, conv_cache)


# --- argument checks shared by the models ---------------------------------------------------------

def _weight_scale(owner, value):
    require(isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value) and value > 0,
            owner, f"weight_scale must be a positive finite number; got {value!r}")
    return float(value)


def _check_input(owner, X, shape_ok, expected, dtype):
    """Return ``X`` as an array of ``dtype`` (no copy when it already is one) after checking its shape.

    ``shape_ok(shape)`` says whether the shape is acceptable; ``expected`` describes it for the error.
    """
    X = np.asarray(X)
    require(X.dtype != object and (np.issubdtype(X.dtype, np.number) or X.dtype == bool), owner,
            f"X must be a numeric array; got dtype {X.dtype}")
    require(shape_ok(X.shape), owner, f"X must have shape {expected}; got shape {X.shape}")
    require(X.shape[0] > 0, owner, f"X must hold at least one sample; got shape {X.shape}")
    return X.astype(dtype, copy=False)


# --- two-layer network (Q2) -----------------------------------------------------------------------

class SoftmaxClassifier:
    """Two-layer fully connected network: fc - relu - fc - softmax.

    The input has D = input_dim features (an image input (N, d_1, ..., d_k) is flattened per
    sample, so MNIST can come as (N, 1, 28, 28) or (N, 784)); the hidden layer has H units and
    the output C class scores.

    Parameters (``self.params``):
    - W1 (D, H), b1 (H,): first fully connected layer
    - W2 (H, C), b2 (C,): second fully connected layer
    """

    def __init__(self, input_dim=784, hidden_dim=100, num_classes=10, weight_scale=1e-3, rng=None,
                 dtype=np.float64):
        """
        Inputs:
        - input_dim: D, the number of input features (an int)
        - hidden_dim: H, the number of hidden units
        - num_classes: C, the number of classes
        - weight_scale: standard deviation of the initial weights (biases start at 0)
        - rng: np.random.Generator (or int seed) for the initial weights; None draws a fresh one
        - dtype: np.float64 (default; for gradient checks) or np.float32
        """
        owner = "SoftmaxClassifier"
        self.input_dim = positive_int(owner, "input_dim", input_dim)
        self.hidden_dim = positive_int(owner, "hidden_dim", hidden_dim)
        self.num_classes = positive_int(owner, "num_classes", num_classes)
        self.weight_scale = _weight_scale(owner, weight_scale)
        self.dtype = float_dtype(owner, dtype)
        rng = as_generator(owner, rng)
        self.params = {}
        D, H, C = self.input_dim, self.hidden_dim, self.num_classes
        ### BEGIN SOLUTION
        # Draw in float64 and cast: the same seed gives the same (rounded) weights in either dtype.
        self.params["W1"] = (weight_scale * rng.standard_normal((D, H))).astype(self.dtype)
        self.params["b1"] = np.zeros(H, dtype=self.dtype)
        self.params["W2"] = (weight_scale * rng.standard_normal((H, C))).astype(self.dtype)
        self.params["b2"] = np.zeros(C, dtype=self.dtype)
        ### END SOLUTION

    def __repr__(self):
        return (f"SoftmaxClassifier(input_dim={self.input_dim}, hidden_dim={self.hidden_dim}, "
                f"num_classes={self.num_classes}, weight_scale={self.weight_scale:g}, dtype={self.dtype.name})")

    def loss(self, X, y=None):
        """Class scores, or the loss and its gradients, for a minibatch.

        Inputs:
        - X: (N, D) or (N, d_1, ..., d_k) with d_1 * ... * d_k = D; cast to the model's dtype
        - y: (N,) integer labels in [0, C), or None

        Returns:
        - y None: scores (N, C), scores[i, c] the score of class c for X[i]
        - otherwise ``(loss, grads)``: loss a float (softmax cross-entropy averaged over N),
          grads a dict keyed like ``self.params`` with arrays of the same shapes
        """
        owner = "SoftmaxClassifier.loss"
        D = self.input_dim
        X = _check_input(owner, X, lambda shape: len(shape) >= 2 and int(np.prod(shape[1:])) == D,
                         f"(N, {D}) or (N, d_1, ..., d_k) with d_1 * ... * d_k = {D} (input_dim)", self.dtype)
        if y is not None:
            y = require_labels(owner, "y", y, X.shape[0], self.num_classes)
        W1, b1, W2, b2 = (self.params[k] for k in ("W1", "b1", "W2", "b2"))
        ### BEGIN SOLUTION
        hidden, hidden_cache = fc_relu_forward(no_grad(X), W1, b1)   # X needs no gradient
        scores, scores_cache = fc_forward(hidden, W2, b2)
        ### END SOLUTION
        if y is None:
            return scores
        grads = {}
        ### BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        dhidden, grads["W2"], grads["b2"] = fc_backward(dscores, scores_cache)
        _, grads["W1"], grads["b1"] = fc_relu_backward(dhidden, hidden_cache)
        ### END SOLUTION
        return loss, grads


# --- convolutional network (Q3) -------------------------------------------------------------------

class ConvNet:
    """Convolutional network: conv (no bias) - relu - 2x2 max-pool (stride 2) - fc - relu - fc - softmax.

    The input is a batch of images (N, C, H, W). The convolution (stride 1, no padding) has F
    filters of size k x k and gives (N, F, H - k + 1, W - k + 1); pooling halves each side to
    (N, F, H_p, W_p) with H_p = (H - k + 1) / 2; the fully connected layers map the F * H_p * W_p
    features to ``hidden_dim`` units and then to ``num_classes`` scores.

    Parameters (``self.params``):
    - W1 (F, C, k, k): convolution kernels (no bias)
    - W2 (F * H_p * W_p, hidden_dim), b2 (hidden_dim,): hidden fully connected layer
    - W3 (hidden_dim, num_classes), b3 (num_classes,): output layer
    """

    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}

    def __init__(self, input_dim=(1, 28, 28), num_filters=32, filter_size=7, hidden_dim=100, num_classes=10,
                 weight_scale=1e-3, dtype=np.float32, rng=None):
        """
        Inputs:
        - input_dim: (C, H, W), the shape of one input image
        - num_filters: F, the number of convolution filters
        - filter_size: k, the height and width of each filter; H - k + 1 and W - k + 1 must be
          even so that the 2 x 2 pooling tiles the convolution output
        - hidden_dim: the number of units of the hidden fully connected layer
        - num_classes: the number of classes
        - weight_scale: standard deviation of the initial weights (biases start at 0)
        - dtype: np.float32 (default; for training) or np.float64 (for gradient checks)
        - rng: np.random.Generator (or int seed) for the initial weights; None draws a fresh one
        """
        owner = "ConvNet"
        require(isinstance(input_dim, (tuple, list)) and len(input_dim) == 3, owner,
                f"input_dim must be a tuple (C, H, W); got {input_dim!r}")
        C, H, W = (positive_int(owner, f"input_dim[{i}]", v) for i, v in enumerate(input_dim))
        self.input_dim = (C, H, W)
        self.num_filters = F = positive_int(owner, "num_filters", num_filters)
        self.filter_size = k = positive_int(owner, "filter_size", filter_size)
        self.hidden_dim = positive_int(owner, "hidden_dim", hidden_dim)
        self.num_classes = positive_int(owner, "num_classes", num_classes)
        self.weight_scale = _weight_scale(owner, weight_scale)
        self.dtype = float_dtype(owner, dtype)
        require(k <= H and k <= W, owner, f"filter_size {k} does not fit in images of shape {self.input_dim}")
        Hc, Wc = H - k + 1, W - k + 1
        require(Hc >= 2 and Wc >= 2 and Hc % 2 == 0 and Wc % 2 == 0, owner,
                f"the convolution output ({Hc}, {Wc}) for input_dim {self.input_dim} and filter_size {k} must have "
                "even sides (at least 2) for the 2x2 max-pool with stride 2; choose another filter_size")
        self.pooled_dim = (F, Hc // 2, Wc // 2)
        rng = as_generator(owner, rng)
        self.params = {}
        D, Hd, Nc = F * (Hc // 2) * (Wc // 2), self.hidden_dim, self.num_classes
        ### BEGIN SOLUTION
        # Draw in float64 and cast: the same seed gives the same (rounded) weights in either dtype.
        self.params["W1"] = (weight_scale * rng.standard_normal((F, C, k, k))).astype(self.dtype)
        self.params["W2"] = (weight_scale * rng.standard_normal((D, Hd))).astype(self.dtype)
        self.params["b2"] = np.zeros(Hd, dtype=self.dtype)
        self.params["W3"] = (weight_scale * rng.standard_normal((Hd, Nc))).astype(self.dtype)
        self.params["b3"] = np.zeros(Nc, dtype=self.dtype)
        ### END SOLUTION

    def __repr__(self):
        return (f"ConvNet(input_dim={self.input_dim}, num_filters={self.num_filters}, filter_size={self.filter_size}, "
                f"hidden_dim={self.hidden_dim}, num_classes={self.num_classes}, "
                f"weight_scale={self.weight_scale:g}, dtype={self.dtype.name})")

    def loss(self, X, y=None):
        """Class scores, or the loss and its gradients, for a minibatch of images.

        Inputs:
        - X: (N, C, H, W) images with (C, H, W) = input_dim; cast to the model's dtype
        - y: (N,) integer labels in [0, num_classes), or None

        Returns:
        - y None: scores (N, num_classes)
        - otherwise ``(loss, grads)``: loss a float (softmax cross-entropy averaged over N),
          grads a dict keyed like ``self.params`` with arrays of the same shapes
        """
        owner = "ConvNet.loss"
        X = _check_input(owner, X, lambda shape: tuple(shape[1:]) == self.input_dim and len(shape) == 4,
                         f"(N, {', '.join(map(str, self.input_dim))}) (N, C, H, W) with (C, H, W) = input_dim",
                         self.dtype)
        if y is not None:
            y = require_labels(owner, "y", y, X.shape[0], self.num_classes)
        W1, W2, b2, W3, b3 = (self.params[k] for k in ("W1", "W2", "b2", "W3", "b3"))
        ### BEGIN SOLUTION
        pooled, pooled_cache = conv_relu_pool_forward(no_grad(X), W1, self.pool_param)   # X: no gradient
        hidden, hidden_cache = fc_relu_forward(pooled, W2, b2)   # fc flattens (N, F, H_p, W_p)
        scores, scores_cache = fc_forward(hidden, W3, b3)
        ### END SOLUTION
        if y is None:
            return scores
        grads = {}
        ### BEGIN SOLUTION
        loss, dscores = softmax_loss(scores, y)
        dhidden, grads["W3"], grads["b3"] = fc_backward(dscores, scores_cache)
        dpooled, grads["W2"], grads["b2"] = fc_relu_backward(dhidden, hidden_cache)
        _, grads["W1"] = conv_relu_pool_backward(dpooled, pooled_cache)
        ### END SOLUTION
        return loss, grads

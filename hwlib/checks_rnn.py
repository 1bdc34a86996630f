"""Public checks of the recurrent layers of Q4 (``hwlib.rnn_layers``), for ``python -m hwlib.check``.

Importing this module registers five layer specs into :data:`hwlib.check.SPECS`: ``rnn_step``,
``rnn``, ``word_embedding``, ``temporal_fc`` and ``temporal_softmax``. They run through the
same engine as the feed-forward checks (:func:`hwlib.check.check_layer`): a PyTorch comparison
on several shapes in float64 and float32, then a numerical gradient check.

The PyTorch references are independent implementations: ``torch.nn.RNNCell`` / ``torch.nn.RNN``
(tanh, ``batch_first=False``) loaded with our weights (``weight_ih = Wx.T``, ``weight_hh = Wh.T``,
``bias_ih = b``, ``bias_hh = 0``), ``torch.nn.functional.embedding``, ``torch.nn.functional.linear``
and ``torch.nn.functional.cross_entropy`` with ``reduction="sum"`` divided by N and the mask as
``ignore_index``. References compute in float64 and round to the dtype under test.

:func:`check_captioning_model` checks ``CaptioningRNN`` (a published loss value, numerical
gradients of every parameter, and the stopping rule of greedy sampling).
"""

from __future__ import annotations

import importlib

import numpy as np

from .check import LayerSpec, _t, _torch, register

__all__ = ["RNN_LAYERS", "check_captioning_model"]

RNN_LAYERS = ("rnn_step", "rnn", "word_embedding", "temporal_fc", "temporal_softmax")


def _rnn_module(L):
    """The module holding the recurrent layers: ``L`` itself if it has them, else ``hwlib.rnn_layers``.

    :func:`hwlib.check.run_layer` passes ``hwlib.layers`` by default; the recurrent layers live
    in their own module.
    """
    return L if hasattr(L, "rnn_forward") else importlib.import_module("hwlib.rnn_layers")


def _exact(reference):
    """Run ``reference`` in float64 and round its outputs to the inputs' dtype.

    A float32 implementation is then judged against the exact answer rounded once, not against
    another float32 computation with its own round-off (which would double the error budget).
    """
    def wrapped(i):
        dtype = i["x"].dtype if i["x"].dtype.kind == "f" else i["W"].dtype
        wide = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                for k, v in i.items()}
        return {k: np.asarray(v).astype(dtype) for k, v in reference(wide).items()}

    wrapped.__name__ = reference.__name__
    wrapped.__doc__ = reference.__doc__
    return wrapped


def _weights(rng, dtype, D, H):
    """RNN weights scaled like the model's initialisation, so tanh stays away from saturation."""
    return {"Wx": (rng.standard_normal((D, H)) / np.sqrt(D)).astype(dtype),
            "Wh": (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
            "b": (0.1 * rng.standard_normal(H)).astype(dtype)}


def _torch_cell(torch, cls, i, D, H):
    """A ``torch.nn.RNNCell``/``RNN`` (tanh) carrying our weights; returns (module, Wx-, Wh-, b-parameters)."""
    cell = cls(D, H, nonlinearity="tanh", bias=True).to(torch.float64)
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if cls is torch.nn.RNNCell else \
            ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    with torch.no_grad():
        getattr(cell, names[0]).copy_(_t(torch, i["Wx"].T.copy()))
        getattr(cell, names[1]).copy_(_t(torch, i["Wh"].T.copy()))
        getattr(cell, names[2]).copy_(_t(torch, i["b"]))
        getattr(cell, names[3]).zero_()
    return cell, *(getattr(cell, n) for n in names[:3])


# --- one RNN step ------------------------------------------------------------------------------------

def _step_inputs(rng, dtype, N=3, D=5, H=4):
    return {"x": rng.standard_normal((N, D)).astype(dtype),
            "prev_h": rng.standard_normal((N, H)).astype(dtype),
            **_weights(rng, dtype, D, H),
            "dout": rng.standard_normal((N, H)).astype(dtype)}


def _step_run(L, i):
    R = _rnn_module(L)
    out, cache = R.rnn_step_forward(i["x"], i["prev_h"], i["Wx"], i["Wh"], i["b"])
    if i.get("_forward_only"):
        return {"out": out}
    dx, dprev_h, dWx, dWh, db = R.rnn_step_backward(i["dout"], cache)
    return {"out": out, "dx": dx, "dprev_h": dprev_h, "dWx": dWx, "dWh": dWh, "db": db}


@_exact
def _step_ref(i):
    torch = _torch()
    D, H = i["x"].shape[1], i["Wx"].shape[1]
    cell, w_ih, w_hh, b_ih = _torch_cell(torch, torch.nn.RNNCell, i, D, H)
    x, h = _t(torch, i["x"], True), _t(torch, i["prev_h"], True)
    out = cell(x, h)
    dx, dh, dwih, dwhh, db = torch.autograd.grad(out, (x, h, w_ih, w_hh, b_ih), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dprev_h": dh.numpy(),
            "dWx": dwih.numpy().T, "dWh": dwhh.numpy().T, "db": db.numpy()}


register(LayerSpec("rnn_step", _step_inputs, _step_run, _step_ref, ("dx", "dprev_h", "dWx", "dWh", "db"),
                   ({"N": 3, "D": 5, "H": 4}, {"N": 1, "D": 2, "H": 7}, {"N": 6, "D": 8, "H": 3})))


# --- RNN over a sequence (time-major) ----------------------------------------------------------------

def _rnn_inputs(rng, dtype, T=4, N=3, D=5, H=4):
    return {"x": rng.standard_normal((T, N, D)).astype(dtype),
            "h0": rng.standard_normal((N, H)).astype(dtype),
            **_weights(rng, dtype, D, H),
            "dout": rng.standard_normal((T, N, H)).astype(dtype)}


def _rnn_run(L, i):
    R = _rnn_module(L)
    out, cache = R.rnn_forward(i["x"], i["h0"], i["Wx"], i["Wh"], i["b"])
    if i.get("_forward_only"):
        return {"out": out}
    dx, dh0, dWx, dWh, db = R.rnn_backward(i["dout"], cache)
    return {"out": out, "dx": dx, "dh0": dh0, "dWx": dWx, "dWh": dWh, "db": db}


@_exact
def _rnn_ref(i):
    torch = _torch()
    D, H = i["x"].shape[2], i["Wx"].shape[1]
    rnn, w_ih, w_hh, b_ih = _torch_cell(torch, torch.nn.RNN, i, D, H)
    x, h0 = _t(torch, i["x"], True), _t(torch, i["h0"], True)
    out, _ = rnn(x, h0[None])  # batch_first=False: x is (T, N, D), as ours
    dx, dh0, dwih, dwhh, db = torch.autograd.grad(out, (x, h0, w_ih, w_hh, b_ih), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dh0": dh0.numpy(),
            "dWx": dwih.numpy().T, "dWh": dwhh.numpy().T, "db": db.numpy()}


register(LayerSpec("rnn", _rnn_inputs, _rnn_run, _rnn_ref, ("dx", "dh0", "dWx", "dWh", "db"),
                   ({"T": 4, "N": 3, "D": 5, "H": 4}, {"T": 1, "N": 2, "D": 3, "H": 6},
                    {"T": 9, "N": 2, "D": 4, "H": 5})))


# --- word embeddings ---------------------------------------------------------------------------------

def _embed_inputs(rng, dtype, N=3, T=5, V=6, D=4):
    # V is small next to N * T, so words repeat and their gradients must add up.
    return {"x": rng.integers(0, V, size=(N, T)),
            "W": rng.standard_normal((V, D)).astype(dtype),
            "dout": rng.standard_normal((N, T, D)).astype(dtype)}


def _embed_run(L, i):
    R = _rnn_module(L)
    out, cache = R.word_embedding_forward(i["x"], i["W"])
    if i.get("_forward_only"):
        return {"out": out}
    return {"out": out, "dW": R.word_embedding_backward(i["dout"], cache)}


@_exact
def _embed_ref(i):
    torch = _torch()
    W = _t(torch, i["W"], True)
    out = torch.nn.functional.embedding(torch.as_tensor(i["x"]), W)
    (dW,) = torch.autograd.grad(out, (W,), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dW": dW.numpy()}


register(LayerSpec("word_embedding", _embed_inputs, _embed_run, _embed_ref, ("dW",),
                   ({"N": 3, "T": 5, "V": 6, "D": 4}, {"N": 1, "T": 1, "V": 3, "D": 2},
                    {"N": 4, "T": 7, "V": 10, "D": 3})))


# --- temporal affine ---------------------------------------------------------------------------------

def _tfc_inputs(rng, dtype, N=3, T=4, D=5, M=6):
    return {"x": rng.standard_normal((N, T, D)).astype(dtype),
            "w": rng.standard_normal((D, M)).astype(dtype),
            "b": rng.standard_normal(M).astype(dtype),
            "dout": rng.standard_normal((N, T, M)).astype(dtype)}


def _tfc_run(L, i):
    R = _rnn_module(L)
    out, cache = R.temporal_fc_forward(i["x"], i["w"], i["b"])
    if i.get("_forward_only"):
        return {"out": out}
    dx, dw, db = R.temporal_fc_backward(i["dout"], cache)
    return {"out": out, "dx": dx, "dw": dw, "db": db}


@_exact
def _tfc_ref(i):
    torch = _torch()
    x, w, b = _t(torch, i["x"], True), _t(torch, i["w"], True), _t(torch, i["b"], True)
    out = torch.nn.functional.linear(x, w.T, b)
    dx, dw, db = torch.autograd.grad(out, (x, w, b), _t(torch, i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dw": dw.numpy(), "db": db.numpy()}


register(LayerSpec("temporal_fc", _tfc_inputs, _tfc_run, _tfc_ref, ("dx", "dw", "db"),
                   ({"N": 3, "T": 4, "D": 5, "M": 6}, {"N": 1, "T": 1, "D": 2, "M": 3},
                    {"N": 5, "T": 8, "D": 3, "M": 4})))


# --- temporal softmax loss ---------------------------------------------------------------------------

def _tsl_inputs(rng, dtype, N=4, T=5, V=6, scale=1.0):
    mask = rng.random((N, T)) < 0.7
    mask[0, 0], mask[-1, -1] = True, False  # at least one counted and one masked position
    return {"x": (scale * rng.standard_normal((N, T, V))).astype(dtype),
            "y": rng.integers(0, V, size=(N, T)),
            "mask": mask}


def _tsl_run(L, i):
    R = _rnn_module(L)
    loss, dx = R.temporal_softmax_loss(i["x"], i["y"], i["mask"])
    if i.get("_forward_only"):
        return {"out": loss}
    return {"loss": np.asarray(loss, dtype=np.float64), "dx": dx}


@_exact
def _tsl_ref(i):
    torch = _torch()
    N, T, V = i["x"].shape
    x = _t(torch, i["x"], True)
    y = torch.as_tensor(np.where(i["mask"], i["y"], -100).reshape(N * T))  # -100: ignore_index
    loss = torch.nn.functional.cross_entropy(x.reshape(N * T, V), y, reduction="sum", ignore_index=-100) / N
    (dx,) = torch.autograd.grad(loss, (x,))
    return {"loss": np.asarray(loss.item()), "dx": dx.numpy()}


register(LayerSpec("temporal_softmax", _tsl_inputs, _tsl_run, _tsl_ref, ("dx",),
                   ({"N": 4, "T": 5, "V": 6}, {"N": 2, "T": 3, "V": 10, "scale": 1e3},
                    {"N": 7, "T": 1, "V": 2})))


# --- the captioning model ------------------------------------------------------------------------------

def check_captioning_model(seed: int = 0, verbose: bool = True) -> None:
    """Public checks of ``CaptioningRNN.loss`` and ``CaptioningRNN.sample``.

    1. cs231n's published value: a model with ``np.linspace`` parameters gives loss 9.83235591003;
    2. the gradient of every parameter of a small float64 model with random parameters against
       numerical gradients of the loss (captions of different lengths, so the mask matters);
       entries below 1e-4 of a gradient's largest one are judged against that floor, since the
       centred differences carry ~1e-10 of round-off;
    3. ``sample`` returns (N, max_length) word ids and nothing but <NULL> after an <END>.
    """
    from .captioning import CaptioningRNN
    from .gradient_check import assert_close, eval_numerical_gradient

    N, D, W, H, T = 10, 20, 30, 40, 13
    model = CaptioningRNN({"<NULL>": 0, "<START>": 1, "<END>": 2}, input_dim=D, wordvec_dim=W, hidden_dim=H,
                          dtype=np.float64, rng=0)
    for name, value in model.params.items():
        model.params[name] = np.linspace(-1.4, 1.3, num=value.size).reshape(value.shape)
    loss, _ = model.loss(np.linspace(-1.5, 0.3, num=N * D).reshape(N, D), (np.arange(N * T) % 3).reshape(N, T))
    expected = 9.83235591003
    if not abs(float(loss) - expected) < 1e-8:
        raise AssertionError(f"CaptioningRNN.loss: {loss!r} for cs231n's fixed model, expected {expected}")
    if verbose:
        print(f"  captioning loss on cs231n's fixed model: {float(loss):.11f} (expected {expected})")

    rng = np.random.default_rng(seed)
    words = {"<NULL>": 0, "<START>": 1, "<END>": 2, "a": 3, "b": 4, "c": 5}
    model = CaptioningRNN(words, input_dim=4, wordvec_dim=3, hidden_dim=5, dtype=np.float64, rng=rng)
    for name, value in model.params.items():
        model.params[name] = 0.5 * rng.standard_normal(value.shape)
    features = rng.standard_normal((3, 4))
    captions = np.array([[1, 3, 4, 2, 0, 0], [1, 5, 2, 0, 0, 0], [1, 4, 4, 3, 5, 2]])
    _, grads = model.loss(features, captions)
    worst = {}
    for name in model.params:
        numerical = eval_numerical_gradient(lambda _: model.loss(features, captions)[0], model.params[name], h=1e-5)
        worst[name] = assert_close(grads.get(name), numerical, name=f"CaptioningRNN.loss grads[{name!r}]",
                                   threshold=1e-5, floor=1e-4 * max(float(np.abs(numerical).max()), 1e-8),
                                   expected_label="numerical")
    if verbose:
        print("  captioning gradient check (threshold 1e-05): " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))

    model.params["b_vocab"][2] += 1.0  # make <END> likely, so the stopping rule is exercised
    sampled = np.asarray(model.sample(rng.standard_normal((8, 4)), max_length=7))
    if sampled.shape != (8, 7):
        raise AssertionError(f"CaptioningRNN.sample: expected shape (8, 7), got {sampled.shape}")
    for row in sampled:
        ends = np.flatnonzero(row == 2)
        if ends.size and np.any(row[ends[0] + 1:] != 0):
            raise AssertionError(f"CaptioningRNN.sample: tokens after <END> must be <NULL> (0); got row {row.tolist()}")
    if verbose:
        print("  captioning sample: shape (8, 7), <NULL> after every <END>")

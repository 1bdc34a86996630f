"""Targets of the recurrent layers of Q4 (``hwlib.rnn_layers``): ``rnn_step``, ``rnn``,
``word_embedding``, ``temporal_fc`` and ``temporal_softmax``.

They run like the feed-forward layers (:class:`hwlib.check.layers.LayerCall`), from
``hwlib.rnn_layers`` itself, so Q4 never depends on Q1's module. The PyTorch references are
independent implementations: ``torch.nn.RNNCell`` / ``torch.nn.RNN`` (tanh, ``batch_first=False``)
loaded with our weights (``weight_ih = Wx.T``, ``weight_hh = Wh.T``, ``bias_ih = b``, ``bias_hh = 0``),
``torch.nn.functional.embedding``, ``torch.nn.functional.linear`` and
``torch.nn.functional.cross_entropy`` with ``reduction="sum"`` divided by N and the mask as
``ignore_index``. References compute in float64 and round to the dtype under test.
"""

from __future__ import annotations

import numpy as np

from .layers import LayerCall, layer_target

__all__ = ["TARGETS"]


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
        getattr(cell, names[0]).copy_(torch.tensor(i["Wx"].T.copy()))
        getattr(cell, names[1]).copy_(torch.tensor(i["Wh"].T.copy()))
        getattr(cell, names[2]).copy_(torch.tensor(i["b"]))
        getattr(cell, names[3]).zero_()
    return cell, *(getattr(cell, n) for n in names[:3])


# --- one RNN step ------------------------------------------------------------------------------------

def _step_inputs(rng, dtype, N=3, D=5, H=4):
    return {"x": rng.standard_normal((N, D)).astype(dtype),
            "prev_h": rng.standard_normal((N, H)).astype(dtype),
            **_weights(rng, dtype, D, H),
            "dout": rng.standard_normal((N, H)).astype(dtype)}


@_exact
def _step_ref(i):
    import torch
    D, H = i["x"].shape[1], i["Wx"].shape[1]
    cell, w_ih, w_hh, b_ih = _torch_cell(torch, torch.nn.RNNCell, i, D, H)
    x, h = torch.tensor(i["x"], requires_grad=True), torch.tensor(i["prev_h"], requires_grad=True)
    out = cell(x, h)
    dx, dh, dwih, dwhh, db = torch.autograd.grad(out, (x, h, w_ih, w_hh, b_ih), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dprev_h": dh.numpy(),
            "dWx": dwih.numpy().T, "dWh": dwhh.numpy().T, "db": db.numpy()}


# --- RNN over a sequence (time-major) ----------------------------------------------------------------

def _rnn_inputs(rng, dtype, T=4, N=3, D=5, H=4):
    return {"x": rng.standard_normal((T, N, D)).astype(dtype),
            "h0": rng.standard_normal((N, H)).astype(dtype),
            **_weights(rng, dtype, D, H),
            "dout": rng.standard_normal((T, N, H)).astype(dtype)}


@_exact
def _rnn_ref(i):
    import torch
    D, H = i["x"].shape[2], i["Wx"].shape[1]
    rnn, w_ih, w_hh, b_ih = _torch_cell(torch, torch.nn.RNN, i, D, H)
    x, h0 = torch.tensor(i["x"], requires_grad=True), torch.tensor(i["h0"], requires_grad=True)
    out, _ = rnn(x, h0[None])  # batch_first=False: x is (T, N, D), as ours
    dx, dh0, dwih, dwhh, db = torch.autograd.grad(out, (x, h0, w_ih, w_hh, b_ih), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dh0": dh0.numpy(),
            "dWx": dwih.numpy().T, "dWh": dwhh.numpy().T, "db": db.numpy()}


# --- word embeddings ---------------------------------------------------------------------------------

def _embed_inputs(rng, dtype, N=3, T=5, V=6, D=4):
    # V is small next to N * T, so words repeat and their gradients must add up.
    return {"x": rng.integers(0, V, size=(N, T)),
            "W": rng.standard_normal((V, D)).astype(dtype),
            "dout": rng.standard_normal((N, T, D)).astype(dtype)}


@_exact
def _embed_ref(i):
    import torch
    W = torch.tensor(i["W"], requires_grad=True)
    out = torch.nn.functional.embedding(torch.as_tensor(i["x"]), W)
    (dW,) = torch.autograd.grad(out, (W,), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dW": dW.numpy()}


# --- temporal affine ---------------------------------------------------------------------------------

def _tfc_inputs(rng, dtype, N=3, T=4, D=5, M=6):
    return {"x": rng.standard_normal((N, T, D)).astype(dtype),
            "w": rng.standard_normal((D, M)).astype(dtype),
            "b": rng.standard_normal(M).astype(dtype),
            "dout": rng.standard_normal((N, T, M)).astype(dtype)}


@_exact
def _tfc_ref(i):
    import torch
    x, w, b = (torch.tensor(i[k], requires_grad=True) for k in ("x", "w", "b"))
    out = torch.nn.functional.linear(x, w.T, b)
    dx, dw, db = torch.autograd.grad(out, (x, w, b), torch.tensor(i["dout"]))
    return {"out": out.detach().numpy(), "dx": dx.numpy(), "dw": dw.numpy(), "db": db.numpy()}


# --- temporal softmax loss ---------------------------------------------------------------------------

def _tsl_inputs(rng, dtype, N=4, T=5, V=6, scale=1.0):
    mask = rng.random((N, T)) < 0.7
    mask[0, 0], mask[-1, -1] = True, False  # at least one counted and one masked position
    return {"x": (scale * rng.standard_normal((N, T, V))).astype(dtype),
            "y": rng.integers(0, V, size=(N, T)),
            "mask": mask}


@_exact
def _tsl_ref(i):
    import torch
    N, T, V = i["x"].shape
    x = torch.tensor(i["x"], requires_grad=True)
    y = torch.as_tensor(np.where(i["mask"], i["y"], -100).reshape(N * T))  # -100: ignore_index
    loss = torch.nn.functional.cross_entropy(x.reshape(N * T, V), y, reduction="sum", ignore_index=-100) / N
    (dx,) = torch.autograd.grad(loss, (x,))
    return {"loss": np.asarray(loss.item()), "dx": dx.numpy()}


# --- the table ---------------------------------------------------------------------------------------

_R = "hwlib.rnn_layers"

TARGETS = (
    layer_target("rnn_step", LayerCall(_R, "rnn_step_forward", "rnn_step_backward", ("x", "prev_h", "Wx", "Wh", "b"),
                                       ("dx", "dprev_h", "dWx", "dWh", "db")),
                 _step_inputs, _step_ref,
                 ({"N": 3, "D": 5, "H": 4}, {"N": 1, "D": 2, "H": 7}, {"N": 6, "D": 8, "H": 3})),
    layer_target("rnn", LayerCall(_R, "rnn_forward", "rnn_backward", ("x", "h0", "Wx", "Wh", "b"),
                                  ("dx", "dh0", "dWx", "dWh", "db")),
                 _rnn_inputs, _rnn_ref,
                 ({"T": 4, "N": 3, "D": 5, "H": 4}, {"T": 1, "N": 2, "D": 3, "H": 6}, {"T": 9, "N": 2, "D": 4, "H": 5})),
    layer_target("word_embedding", LayerCall(_R, "word_embedding_forward", "word_embedding_backward", ("x", "W"), ("dW",)),
                 _embed_inputs, _embed_ref,
                 ({"N": 3, "T": 5, "V": 6, "D": 4}, {"N": 1, "T": 1, "V": 3, "D": 2}, {"N": 4, "T": 7, "V": 10, "D": 3})),
    layer_target("temporal_fc", LayerCall(_R, "temporal_fc_forward", "temporal_fc_backward", ("x", "w", "b"),
                                          ("dx", "dw", "db")),
                 _tfc_inputs, _tfc_ref,
                 ({"N": 3, "T": 4, "D": 5, "M": 6}, {"N": 1, "T": 1, "D": 2, "M": 3}, {"N": 5, "T": 8, "D": 3, "M": 4})),
    layer_target("temporal_softmax", LayerCall(_R, "temporal_softmax_loss", None, ("x", "y", "mask"), ("dx",)),
                 _tsl_inputs, _tsl_ref,
                 ({"N": 4, "T": 5, "V": 6}, {"N": 2, "T": 3, "V": 10, "scale": 1e3}, {"N": 7, "T": 1, "V": 2})),
)

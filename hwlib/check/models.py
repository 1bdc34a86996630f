"""Targets of the models (Q2-Q4): ``SoftmaxClassifier``, ``ConvNet`` and ``CaptioningRNN``.

Targets: ``<Model>.init`` (the constructor's initial parameters), ``<Model>.loss`` (scores, loss and
gradients for given parameters: ``scores`` for the classifiers) and ``CaptioningRNN.sample``.

Draw keywords are the model's constructor arguments (``vocab_size`` V makes a vocabulary: the
special tokens, then ``word3`` ... ``word{V-1}``) plus the data's size: ``X`` (a shape) for the
classifiers, ``N`` and ``T`` for captioning (``T`` is ``max_length`` when sampling). The model is
built with ``rng`` = the draw's seed; parameters are drawn N(0, 0.5^2), biases included, so no
ReLU sits near its kink by chance of a zero bias.

The reference is the kit's model, i.e. the importable ``hwlib`` of the process that computes it:
the grader's. In a student's copy that model is the student's own, so the public checks of the
models judge properties instead (shapes, dtypes, zero biases, known values, numerical gradients of
every parameter through :func:`hwlib.check.engine.check_model_gradients`).
"""

from __future__ import annotations

import copy
import functools
import importlib
import json
from dataclasses import dataclass

import numpy as np

from . import engine, watch
from .engine import Target, check_model_gradients, compare, require
from .watch import Watch
from ..gradient_check import assert_close

__all__ = ["PARAM_SCALE", "DATA_KEYS", "judge_init", "TARGETS"]

PARAM_SCALE = 0.5                      # standard deviation of the drawn parameters
DATA_KEYS = ("X", "y", "features", "captions", "max_length")   # inputs that are data, not parameters


@dataclass(frozen=True)
class _Model:
    cls: str                           # class name in ``module``
    module: str
    data: tuple                        # draw keywords that size the data, not the model


SOFTMAX = _Model("SoftmaxClassifier", "hwlib.classifiers", ("X",))
CONVNET = _Model("ConvNet", "hwlib.classifiers", ("X",))
CAPTIONING = _Model("CaptioningRNN", "hwlib.captioning", ("N", "T"))


def _model_class(model: _Model):
    return getattr(importlib.import_module(model.module), model.cls)


def _build(model: _Model, init: dict, seed: int):
    """``model`` built from JSON constructor arguments (lists -> tuples, the dtype's name -> a dtype)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in init.items()}
    kwargs["dtype"] = np.dtype(kwargs["dtype"])
    return _model_class(model)(**kwargs, rng=np.random.default_rng(int(seed)))


@functools.lru_cache(maxsize=64)
def _reference_model(model: _Model, init_json: str, seed: int):
    """The reference model of a case, built once (the draw reads its parameter shapes, the reference
    computes with it); callers never change it."""
    return _build(model, json.loads(init_json), seed)


def _init_json(dtype, kw: dict) -> dict:
    """Constructor arguments as JSON values: ``vocab_size`` becomes a ``word_to_idx`` vocabulary."""
    kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()}
    if "vocab_size" in kwargs:
        from ..captioning import SPECIAL_TOKENS

        size = kwargs.pop("vocab_size")
        kwargs = {"word_to_idx": {**{t: i for i, t in enumerate(SPECIAL_TOKENS)},
                                  **{f"word{i}": i for i in range(len(SPECIAL_TOKENS), size)}}, **kwargs}
    return {**kwargs, "dtype": np.dtype(dtype).name}


def _captions(rng, N: int, T: int, vocab: int) -> np.ndarray:
    """N captions of T + 1 tokens: <START>, words, <END> at lengths from 1 to T, then <NULL>."""
    captions = np.zeros((N, T + 1), dtype=np.int64)
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0] = T          # one caption fills every step, another ends early: the mask matters
    lengths[-1] = min(lengths[-1], max(1, T // 2))
    for i, length in enumerate(lengths):
        captions[i, 0] = 1
        captions[i, 1:length] = rng.integers(3, vocab, size=length - 1)
        captions[i, length] = 2
    return captions


# --- the four steps ------------------------------------------------------------------------------

def _draw(model: _Model, kind: str, rng, dtype, seed: int, **kw) -> dict:
    """``init``: the constructor arguments and seed. Otherwise also random parameters (shapes from the
    reference model) and data: X, y (classifiers), features and captions or max_length (captioning)."""
    data = {k: kw.pop(k) for k in model.data if k in kw}
    init = _init_json(dtype, kw)
    inputs = {"init": init, "seed": seed}
    if kind == "init":
        return inputs
    ref = _reference_model(model, json.dumps(init, sort_keys=True), seed)
    inputs.update({k: (PARAM_SCALE * rng.standard_normal(v.shape)).astype(dtype) for k, v in sorted(ref.params.items())})
    if model is CAPTIONING:
        N, T = data["N"], data["T"]
        inputs["features"] = rng.standard_normal((N, ref.input_dim)).astype(dtype)
        if kind == "sample":
            inputs["max_length"] = int(T)
        else:
            inputs["captions"] = _captions(rng, N, T, len(ref.word_to_idx))
        return inputs
    inputs["X"] = rng.standard_normal(tuple(data["X"])).astype(dtype)
    inputs["y"] = rng.integers(0, ref.num_classes, size=data["X"][0])
    return inputs


def _calls(model: _Model, kind: str) -> tuple:
    """``(method, its arguments)``: the calls :func:`_compute` makes, for :mod:`.watch`."""
    if kind == "init":
        return ()
    args = {"sample": ("features", "max_length"), "loss": ("features", "captions") if model is CAPTIONING else ("X", "y")}
    return ((f"{model.cls}.{kind}", args[kind]),)


def _compute(net, kind: str, inputs: dict, after=lambda: None) -> dict:
    """What ``sample`` or ``loss`` give on ``inputs``; ``after()`` runs after each call of the model."""
    if kind == "sample":
        captions = net.sample(inputs["features"], inputs["max_length"])
        after()
        return {"captions": captions}
    outputs = {}
    if "captions" in inputs:
        loss, grads = net.loss(inputs["features"], inputs["captions"])
    else:
        outputs["scores"] = net.loss(inputs["X"])
        after()
        loss, grads = net.loss(inputs["X"], inputs["y"])
    after()
    if not isinstance(grads, dict):
        raise TypeError(f"loss must return (loss, grads) with grads a dict; got {type(grads).__name__}")
    return {**outputs, "loss": loss, **{f"grads/{k}": v for k, v in grads.items()}}


def _run(model: _Model, kind: str, inputs: dict) -> dict:
    """Build the importable model from the case's constructor arguments; return its initial
    parameters (``init``), or load the given parameters and return what ``loss``/``sample`` give,
    with the watch's record of what the calls left of the parameters and the data (``inputs`` are
    the engine's private copies: the model gets these very arrays)."""
    net = _build(model, inputs["init"], inputs["seed"])
    if kind == "init":
        return {f"params/{k}": v for k, v in dict(net.params).items()}
    for key, value in inputs.items():
        if key not in ("init", "seed") and key not in DATA_KEYS and not key.startswith("_"):
            if key not in net.params:
                raise KeyError(f"model.params has no {key!r} (it has {sorted(net.params)})")
            net.params[key] = value
    record = Watch(inputs)
    outputs = _compute(net, kind, inputs, lambda: record.after(f"{model.cls}.{kind}"))
    outputs.update(record.outputs())
    if "loss" in outputs:
        outputs["loss"] = np.asarray(outputs["loss"], dtype=np.float64)
    return outputs


def _reference(model: _Model, kind: str, inputs: dict) -> dict:
    ref = _reference_model(model, json.dumps(inputs["init"], sort_keys=True), inputs["seed"])
    if kind == "init":
        return {f"params/{k}": v.copy() for k, v in ref.params.items()}
    ref = copy.copy(ref)                                   # the cached model keeps its parameters
    ref.params = {k: inputs[k].copy() for k in ref.params}
    outputs = _compute(ref, kind, inputs)
    if "loss" in outputs:
        outputs["loss"] = np.asarray(outputs["loss"], dtype=np.dtype(inputs["init"]["dtype"]))
    return {k: np.asarray(v) for k, v in outputs.items()}


def judge_init(name: str, weight_scale: float, outputs: dict, expected: dict) -> dict:
    """The constructor's parameters: same names and shapes as expected, biases 0, weights drawn with
    standard deviation ``weight_scale`` (within 25 %, for arrays of 100 entries or more). Their dtype
    (the model's) is the engine's rule (:func:`hwlib.check.engine.judge`, ``strict_dtypes``)."""
    got = {k[len("params/"):]: v for k, v in outputs.items() if k.startswith("params/")}
    want = {k[len("params/"):]: v for k, v in expected.items()}
    if sorted(got) != sorted(want):
        raise AssertionError(f"{name}: params has keys {sorted(got)}, expected {sorted(want)}")
    summary = {}
    for key, ref in want.items():
        value = np.asarray(got[key])
        if value.shape != ref.shape:
            raise AssertionError(f"{name}: params[{key!r}] has shape {value.shape}, expected {ref.shape}")
        if not np.all(np.isfinite(value)):
            raise AssertionError(f"{name}: params[{key!r}] holds NaN or inf")
        if key.startswith("b"):
            if np.any(value != 0):
                raise AssertionError(f"{name}: params[{key!r}] must start at 0 (biases); max |b| = {np.abs(value).max():.3g}")
        elif value.size >= 100:
            std = float(np.std(value, dtype=np.float64))
            if not 0.75 * weight_scale <= std <= 1.25 * weight_scale:
                raise AssertionError(f"{name}: params[{key!r}] has standard deviation {std:.3g}; expected about "
                                     f"weight_scale = {weight_scale:g} (weights drawn from N(0, weight_scale^2))")
            summary[key] = abs(std / weight_scale - 1)
    return summary


def _judge(model: _Model, kind: str, outputs: dict, expected: dict, inputs: dict, label: str = "reference"):
    """``init``: :func:`judge_init`; otherwise every output against the reference model's (the engine
    judges first that the inputs stayed unchanged, and after the values, where the course asks for it,
    that the dtypes are the model's)."""
    if kind == "init":
        return judge_init(model.cls, float(inputs["init"].get("weight_scale", 1e-3)), outputs, expected)
    return compare(model.cls, outputs, expected, expected_label=label)


# --- the public checks (fixed cases, the same for everyone) ----------------------------------------

def _public_init(name: str, init: dict, shapes: dict, seed: int, verbose: bool, strict_dtypes: bool = False) -> None:
    """The constructor of ``init`` against the parameter ``shapes`` (in the model's dtype)."""
    target = _BY_NAME[name]
    inputs = {"init": init, "seed": seed}
    expected = {f"params/{k}": np.zeros(s, dtype=init["dtype"]) for k, s in shapes.items()}
    outputs = engine.run(target, inputs)
    worst = engine.judge(target, outputs, expected, inputs, strict_dtypes=strict_dtypes)
    noted = engine.notes(target, outputs, expected)
    if verbose:
        spread = ", ".join(f"{k} {v:.2f}" for k, v in worst.items())
        print(f"  {name} {engine.describe(inputs)}: shapes{'' if noted else ' and dtype'} right, biases 0; "
              f"|std / weight_scale - 1|: {spread}")
    engine.show_notes(noted, verbose)


def _softmax_loss(seed: int, verbose: bool, strict_dtypes: bool = False) -> None:
    """Scores of shape (N, C) for image inputs, loss log(C) for tiny weights, numerical gradients."""
    m = _model_class(SOFTMAX)(input_dim=15, hidden_dim=8, num_classes=5, weight_scale=1e-3,
                              rng=np.random.default_rng(seed))
    case = np.random.default_rng(545 + seed)
    X, y = case.standard_normal((6, 3, 5)), case.integers(0, 5, size=6)  # 3 x 5 = 15 features each
    shape = np.shape(m.loss(X))
    require(shape == (6, 5), f"SoftmaxClassifier.loss: scores must have shape (6, 5); got {shape}")
    assert_close(m.loss(X, y)[0], np.log(5), name="SoftmaxClassifier.loss with tiny weights vs log(C)", threshold=1e-4)
    for name in ("W1", "b1", "W2", "b2"):  # random values, biases included, away from the ReLU kink
        m.params[name] = PARAM_SCALE * case.standard_normal(m.params[name].shape)
    check_model_gradients(m, X, y, verbose=verbose)


def _convnet_loss(seed: int, verbose: bool, strict_dtypes: bool = False) -> None:
    """Scores of shape (N, 10) for the seed's (float32) network, float32 scores and gradients (a note,
    or with ``strict_dtypes`` a failure, when not); numerical gradients of a small one."""
    cls = _model_class(CONVNET)
    net = cls(rng=np.random.default_rng(seed))
    X = np.random.default_rng(seed).standard_normal((2, 1, 28, 28)).astype(np.float32)
    scores = net.loss(X)
    shape = np.shape(scores)
    require(shape == (2, 10), f"ConvNet.loss: the seed's network must give scores of shape (2, 10); got {shape}")
    grads = net.loss(X, np.array([3, 7]))[1]
    outputs = {"scores": np.asarray(scores), **{f"grads/{k}": np.asarray(g) for k, g in grads.items()}}
    expected = {k: np.zeros(1, dtype=np.float32) for k in outputs}       # what counts here is the dtype
    if strict_dtypes:
        watch.require_dtypes("ConvNet.loss", outputs, expected, "model")
    noted = watch.dtype_note("ConvNet.loss", outputs, expected, "model")
    m = cls(input_dim=(2, 8, 8), num_filters=3, filter_size=3, hidden_dim=5, num_classes=4, dtype=np.float64,
            rng=np.random.default_rng(seed))
    case = np.random.default_rng(7 + seed)
    for name in ("W1", "W2", "b2", "W3", "b3"):  # random values, biases included
        m.params[name] = PARAM_SCALE * case.standard_normal(m.params[name].shape)
    X, y = case.standard_normal((3, 2, 8, 8)), case.integers(0, 4, size=3)
    check_model_gradients(m, X, y, verbose=verbose)
    engine.show_notes([noted] if noted else [], verbose)


def _small_captioning(seed: int):
    """A small float64 model with random parameters, 3 image features, and the generator after them."""
    from ..captioning import SPECIAL_TOKENS

    rng = np.random.default_rng(seed)
    words = {**{t: i for i, t in enumerate(SPECIAL_TOKENS)}, "a": 3, "b": 4, "c": 5}
    model = _model_class(CAPTIONING)(words, input_dim=4, wordvec_dim=3, hidden_dim=5, dtype=np.float64, rng=rng)
    for name, value in model.params.items():
        model.params[name] = PARAM_SCALE * rng.standard_normal(value.shape)
    return model, rng.standard_normal((3, 4)), rng


def _captioning_loss(seed: int, verbose: bool, strict_dtypes: bool = False) -> None:
    """cs231n's published loss of a fixed model; numerical gradients of every parameter of a small
    model (captions of different lengths, so the mask matters)."""
    from ..captioning import SPECIAL_TOKENS

    N, D, W, H, T = 10, 20, 30, 40, 13
    model = _model_class(CAPTIONING)({t: i for i, t in enumerate(SPECIAL_TOKENS)}, input_dim=D, wordvec_dim=W,
                                     hidden_dim=H, dtype=np.float64, rng=0)
    for name, value in model.params.items():
        model.params[name] = np.linspace(-1.4, 1.3, num=value.size).reshape(value.shape)
    loss, _ = model.loss(np.linspace(-1.5, 0.3, num=N * D).reshape(N, D), (np.arange(N * T) % 3).reshape(N, T))
    expected = 9.83235591003
    if not abs(float(loss) - expected) < 1e-8:
        raise AssertionError(f"CaptioningRNN.loss: {loss!r} for cs231n's fixed model, expected {expected}")
    if verbose:
        print(f"  CaptioningRNN.loss of cs231n's fixed model: {float(loss):.11f} (expected {expected})")
    model, features, _ = _small_captioning(seed)
    captions = np.array([[1, 3, 4, 2, 0, 0], [1, 5, 2, 0, 0, 0], [1, 4, 4, 3, 5, 2]])
    check_model_gradients(model, features, captions, threshold=1e-5, floor_scale=1e-4, verbose=verbose)


def _captioning_sample(seed: int, verbose: bool, strict_dtypes: bool = False) -> None:
    """``sample`` returns (N, max_length) word ids and nothing but <NULL> after an <END>."""
    model, _, rng = _small_captioning(seed)
    model.params["b_vocab"][2] += 1.0  # make <END> likely, so the stopping rule is exercised
    sampled = np.asarray(model.sample(rng.standard_normal((8, 4)), max_length=7))
    if sampled.shape != (8, 7):
        raise AssertionError(f"CaptioningRNN.sample: expected shape (8, 7), got {sampled.shape}")
    for row in sampled:
        ends = np.flatnonzero(row == 2)
        if ends.size and np.any(row[ends[0] + 1:] != 0):
            raise AssertionError(f"CaptioningRNN.sample: tokens after <END> must be <NULL> (0); got row {row.tolist()}")
    if verbose:
        print("  CaptioningRNN.sample: shape (8, 7), <NULL> after every <END>")


# --- the table -----------------------------------------------------------------------------------

def _target(model: _Model, kind: str, public) -> Target:
    return Target(f"{model.cls}.{kind}", model.module, functools.partial(_draw, model, kind),
                  functools.partial(_run, model, kind), functools.partial(_reference, model, kind),
                  functools.partial(_judge, model, kind), public=public, seeded=True,
                  watch=_calls(model, kind), held="model.params")


TARGETS = (
    _target(SOFTMAX, "init", lambda seed, verbose, strict_dtypes=False: _public_init(
        "SoftmaxClassifier.init", {"input_dim": 15, "hidden_dim": 8, "num_classes": 5, "weight_scale": 1e-3,
                                   "dtype": "float64"},
        {"W1": (15, 8), "b1": (8,), "W2": (8, 5), "b2": (5,)}, seed, verbose, strict_dtypes)),
    _target(SOFTMAX, "loss", _softmax_loss),
    _target(CONVNET, "init", lambda seed, verbose, strict_dtypes=False: _public_init(
        "ConvNet.init", {"dtype": "float32"},
        {"W1": (32, 1, 7, 7), "W2": (3872, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}, seed, verbose,
        strict_dtypes)),
    _target(CONVNET, "loss", _convnet_loss),
    _target(CAPTIONING, "loss", _captioning_loss),
    _target(CAPTIONING, "sample", _captioning_sample),
)
_BY_NAME = {t.name: t for t in TARGETS}

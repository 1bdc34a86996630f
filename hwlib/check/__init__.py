"""Public checks of HW4, Q1-Q5: ``check("fc")`` in a notebook, ``python -m hwlib.check [names...]``.

These checks are public and are *not* your grade: the autograder runs other cases (other shapes,
seeds and dtypes) through the same engine. They tell you early, with a clear message, where your
code goes wrong: a failing comparison names the output, the worst relative error against its
threshold, and the first bad index with both values.

:data:`TARGETS` is the one table of what is checked, assembled here from one module per family:

* :mod:`.layers`: ``fc``, ``relu``, ``conv``, ``pool``, ``softmax`` (Q1-Q3, vs PyTorch);
* :mod:`.rnn`: ``rnn_step``, ``rnn``, ``word_embedding``, ``temporal_fc``, ``temporal_softmax`` (Q4);
* :mod:`.models`: ``SoftmaxClassifier.init`` / ``.loss``, ``ConvNet.init`` / ``.loss``,
  ``CaptioningRNN.loss`` / ``.sample`` (Q2-Q4);
* :mod:`.transfer`: ``train_model``, ``visualize_model``, ``finetune``, ``freeze`` (Q5);
* :mod:`.optim`: ``sgd_momentum``, ``rmsprop``, ``adam`` (Q2 in the extended profile, vs torch.optim).

Each target gives ``draw`` (inputs from a seed), ``run`` (your code's outputs), ``reference`` and
``judge`` (:mod:`.engine`); the functions below do these by name. Every layer and model check also
holds the rules of :mod:`.watch`: your functions leave their inputs unchanged and work on any memory
layout; an output whose dtype is not the inputs' (float64 out of float32 in: ``np.zeros`` without
``dtype=``) is printed as a note with what it costs, or fails where the course requires the dtype
(``check(name, strict_dtypes=True)``; the grader follows the course's ``strict_dtypes``).
"""

from __future__ import annotations

from . import engine, layers, models, optim, rnn, transfer
from .engine import NUMERICAL_FLOOR_SCALE, THRESHOLDS, Target, check_model_gradients, compare, describe

__all__ = ["TARGETS", "Target", "target", "select", "draw", "run", "reference", "judge", "notes", "check", "compare",
           "describe", "numerical_gradients", "check_model_gradients", "THRESHOLDS", "NUMERICAL_FLOOR_SCALE"]

TARGETS: dict[str, Target] = {t.name: t for t in (*layers.TARGETS, *rnn.TARGETS, *models.TARGETS, *transfer.TARGETS,
                                                 *optim.TARGETS)}


def target(name: str) -> Target:
    """The target called ``name``; a ``ValueError`` lists the names when there is none."""
    if name not in TARGETS:
        raise ValueError(f"unknown check {name!r}; expected one of {', '.join(TARGETS)}")
    return TARGETS[name]


def select(names=()) -> list[str]:
    """Target names for ``names``: a target's name, or a model's name for all of its targets
    (``CaptioningRNN`` -> ``CaptioningRNN.loss``, ``CaptioningRNN.sample``); every target when empty."""
    chosen = []
    for name in names or TARGETS:
        found = [name] if name in TARGETS else [t for t in TARGETS if t.startswith(f"{name}.")]
        chosen += found or [target(name).name]
    return chosen


def draw(name: str, seed=0, dtype="float64", **kw) -> dict:
    """Inputs of ``name`` for ``seed`` (an int, or a Generator to draw several cases from) and ``dtype``;
    keywords override the draw's defaults (shapes; a model's constructor arguments)."""
    return engine.draw(target(name), seed, dtype, **kw)


def run(name: str, inputs: dict) -> dict:
    """The outputs of the importable ``hwlib`` (yours) on ``inputs``."""
    return engine.run(target(name), inputs)


def reference(name: str, inputs: dict) -> dict:
    """The expected outputs for ``inputs``, computed independently (PyTorch, or the kit's model)."""
    return engine.reference(target(name), inputs)


def judge(name: str, outputs: dict, expected: dict, inputs: dict, label: str = "reference",
          strict_dtypes: bool = False):
    """A summary of ``outputs`` against ``expected``, or an ``AssertionError`` saying what is wrong
    (with ``strict_dtypes``, also an output whose dtype is not the expected one)."""
    return engine.judge(target(name), outputs, expected, inputs, label, strict_dtypes)


def notes(name: str, outputs: dict, expected: dict, graded: bool = False) -> list[str]:
    """What ``outputs`` should tell the student beyond the verdict: their dtype changes and what they cost."""
    return engine.notes(target(name), outputs, expected, graded)


def numerical_gradients(name: str, inputs: dict, h: float = 1e-6) -> dict:
    """Numerical gradients of a layer's outputs named in its ``grads`` (float64 inputs)."""
    return engine.numerical_gradients(target(name), inputs, h)


def check(name: str, seed: int = 0, verbose: bool = True, strict_dtypes: bool = False) -> None:
    """Run the public check of ``name`` (or of every target of a model, e.g. ``"ConvNet"``);
    raise on the first failure (``AssertionError``), or ``NotImplementedError`` where code is missing.
    A dtype change is a printed note, or a failure with ``strict_dtypes``."""
    for chosen in select([name]):
        engine.check(TARGETS[chosen], seed, verbose, strict_dtypes)

"""Targets of Q5 (``hwlib.transfer``): ``train_model``, ``finetune`` and ``freeze``.

Each check builds its own small model and data and judges behaviour that any correct
implementation shows:

* ``freeze``: the new head is a fresh ``Linear(num_ftrs, num_classes)``; every backbone parameter is
  untrainable and stays unchanged by training, the head trains;
* ``finetune``: a fresh head, every parameter trainable, training changes all of them;
* ``train_model``: on two easily separated classes the loss falls, the history is complete and
  right, the scheduler steps once per epoch after the optimizer (no PyTorch warning), validation does
  not train, and the weights of the best validation epoch are the ones returned.

Two halves, so that the grader applies exactly these rules: ``run`` observes (the observers of
:mod:`hwlib.check.transfer_observe` call the student's code and record plain values; in the grader,
in the sandbox), and :func:`judge_observations` turns the observations into a verdict (in the
grader, outside the sandbox). The reference is empty: rules, not values, judge. Runs fork the torch
random state: a check leaves yours as it was. Importing this module does not import PyTorch.
"""

from __future__ import annotations

import functools

import numpy as np

from . import engine
from .engine import Target, require

__all__ = ["HEAD", "LR", "GAMMA", "judge_observations", "TARGETS"]

HEAD = ["fc.weight", "fc.bias"]
LR, GAMMA = 0.1, 0.5          # the train_model check's SGD learning rate and StepLR(step_size=1) factor


# --- judge: observations -> verdict (plain values only: the grader calls this outside the sandbox) ----

def _names(obs: dict, key: str) -> list[str]:
    return [str(v) for v in obs.get(key, [])]


def _judge_head(func: str, obs: dict, num_classes: int) -> str:
    require(obs.get("returned_is_model") is True,
            f"{func} must return the model it was given (changed in place); got {obs.get('returned_type', '?')}")
    require(obs.get("head_is_linear") is True,
            f"{func}: model.fc must be an nn.Linear; got {obs.get('head_type', '?')}")
    require(obs.get("head_is_new") is True,
            f"{func}: model.fc must be a NEW nn.Linear (the ImageNet head has 1000 outputs)")
    shape = [int(v) for v in obs.get("head_shape", [-1, -1])]
    require(shape == [512, num_classes],
            f"{func}: the new head must be Linear(512, {num_classes}) (num_ftrs = the old head's in_features); "
            f"got Linear({shape[0]}, {shape[1]})")
    trainable, changed = _names(obs, "trainable"), _names(obs, "changed")
    total = int(obs.get("num_parameters", 0))
    require(all(name in trainable for name in HEAD), f"{func}: the new head's parameters must be trainable")
    out = [int(v) for v in obs.get("output_shape", [])]
    require(out == [2, num_classes], f"{func}: the model's output has shape {tuple(out)}, expected (2, {num_classes})")
    if func == "freeze":
        extra = [name for name in trainable if name not in HEAD]
        require(not extra, f"freeze: only the head may be trainable; trainable parameters: {extra[:5]}"
                             f"{' ...' if len(extra) > 5 else ''} ({len(trainable)} in all)")
        moved = [name for name in changed if name not in HEAD]
        require(not moved, f"freeze: training changed backbone parameters {moved[:3]} ({len(moved)} in all)")
        require(all(name in changed for name in HEAD), "freeze: training must change the head's weights")
        return f"backbone of {total - 2} parameter tensors frozen and unchanged; new head Linear(512, {num_classes}) trains"
    frozen = total - len(trainable)
    require(not frozen, f"finetune: every parameter must be trainable; {frozen} of {total} are frozen")
    unchanged = total - len(changed)
    require(not unchanged, f"finetune: training must change every parameter; {unchanged} of {total} did not change")
    return f"new head Linear(512, {num_classes}); all {total} parameter tensors train"


def _judge_train_model(obs: dict) -> str:
    epochs = int(obs["num_epochs"])
    warning = str(obs.get("scheduler_warning", ""))
    require(not warning, "PyTorch warns that scheduler.step() ran before optimizer.step(): step the scheduler once "
                           f"per epoch, after the train phase's optimizer steps ({warning[:200]})")
    require(obs.get("history_is_dict") is True, "train_model must attach model.history, a dict of per-epoch lists")
    from ..transfer import HISTORY_KEYS

    history = {key: [float(v) for v in obs.get(f"history/{key}", [])] for key in HISTORY_KEYS}
    for key, values in history.items():
        require(len(values) == epochs, f"model.history[{key!r}] must have one entry per epoch ({epochs}); got {values}")
    batches = epochs * int(obs["batches_per_epoch"])
    steps = int(obs["optimizer_steps"])
    require(steps == batches, f"optimizer.step() ran {steps} times; expected one per training batch ({batches}): "
                                "the val phase must not train")
    lr, want = float(obs["final_lr"]), LR * GAMMA ** epochs
    require(abs(lr - want) < 1e-12, f"after {epochs} epochs StepLR(step_size=1, gamma={GAMMA}) must have stepped "
                                      f"{epochs} times (lr {want:g}); lr is {lr:g}")
    losses, accs = history["train_loss"], history["val_acc"]
    require(losses[-1] < 0.5 * losses[0], f"the training loss must fall on an easy problem; got {losses}")
    require(max(accs) >= 0.9, f"validation accuracy must reach 0.9 on an easy problem; got {accs}")
    best = accs.index(max(accs))
    acc, loss = float(obs["returned_val_acc"]), float(obs["returned_val_loss"])
    require(abs(acc - accs[best]) < 1e-6 and abs(loss - history["val_loss"][best]) < 1e-4,
            f"the returned model must be the one of the best validation epoch, with the history's numbers: it "
            f"has val acc {acc:.4f}, loss {loss:.4f}; the history's best epoch ({best + 1}) says acc "
            f"{accs[best]:.4f}, loss {history['val_loss'][best]:.4f} (keep a copy.deepcopy of the "
            "best state dict; an epoch's loss is the mean loss per sample)")
    sab_accs = [float(v) for v in obs.get("sabotage/val_acc", [])]
    kept = [bool(v) for v in obs.get("sabotage/returned_is_snapshot", [])]
    kept_epochs = [e for e, (k, a) in enumerate(zip(kept, sab_accs)) if k and a == max(sab_accs)]
    require(len(sab_accs) == epochs and len(kept) == epochs and kept_epochs,
            f"train_model must return the weights of the best validation epoch (val acc {sab_accs}); the returned "
            "weights match none of the best epochs (copy the state dict with copy.deepcopy)")
    return (f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}, best val acc {max(accs):.2f}; with later epochs "
            f"wrecked, the weights of epoch {kept_epochs[0] + 1} of {epochs} kept; scheduler stepped after the optimizer")


def judge_observations(func: str, obs: dict, num_classes: int | None = None) -> str:
    """Raise ``AssertionError`` (saying what is wrong and what to do) unless the observations of
    ``func`` ("freeze", "finetune" or "train_model") show a correct implementation; return a summary.

    ``obs`` holds plain values (bools, numbers, strings and lists of them), as ``observe_*`` returns them.
    """
    if func == "train_model":
        return _judge_train_model(obs)
    if func in ("freeze", "finetune"):
        return _judge_head(func, obs, int(num_classes))
    raise ValueError(f"judge: unknown function {func!r}; expected 'freeze', 'finetune' or 'train_model'")


# --- the four steps ------------------------------------------------------------------------------

def _draw_train_model(rng, dtype, seed: int, num_epochs: int = 4) -> dict:
    return {"num_epochs": int(num_epochs), "seed": seed}


def _draw_head(rng, dtype, seed: int, num_classes: int = 3) -> dict:
    return {"num_classes": int(num_classes), "seed": seed}


def _run(func: str, inputs: dict) -> dict:
    """The observations of the importable ``hwlib.transfer``'s ``func``, as arrays."""
    import torch

    from . import transfer_observe as observe   # imported here: PyTorch only when a check runs

    with torch.random.fork_rng(devices=[]):
        if func == "train_model":
            obs = observe.observe_train_model(int(inputs["num_epochs"]), int(inputs["seed"]), LR, GAMMA)
        else:
            obs = observe.observe_head(func, int(inputs["num_classes"]), int(inputs["seed"]))
    return {key: np.asarray(value) for key, value in obs.items()}


def _reference(inputs: dict) -> dict:
    return {}


def _judge(func: str, outputs: dict, expected: dict, inputs: dict, label: str = "reference") -> str:
    """The rules applied to the observations (arrays turned back into plain values)."""
    obs = {key: np.asarray(value).tolist() for key, value in outputs.items()}
    obs["num_epochs"] = inputs.get("num_epochs")     # what was asked, not what the observer says was asked
    return judge_observations(func, obs, inputs.get("num_classes"))


def _public(name: str, first_seed: int, seed: int, verbose: bool) -> None:
    """One public case: the draw's defaults (3 classes, 4 epochs) and seed ``first_seed + seed``."""
    target = _BY_NAME[name]
    inputs = engine.draw(target, first_seed + seed)
    summary = engine.judge(target, engine.run(target, inputs), {}, inputs)
    if verbose:
        print(f"  {name}: {summary}")


def _target(name: str, draw, first_seed: int) -> Target:
    return Target(name, "hwlib.transfer", draw, functools.partial(_run, name), _reference,
                  functools.partial(_judge, name), public=functools.partial(_public, name, first_seed), seeded=True)


TARGETS = (
    _target("train_model", _draw_train_model, 3),
    _target("finetune", _draw_head, 2),
    _target("freeze", _draw_head, 0),
)
_BY_NAME = {t.name: t for t in TARGETS}

"""Targets of Q5 (``hwlib.transfer``): ``train_model``, ``visualize_model``, ``finetune`` and ``freeze``.

Each check builds its own small model and data and judges behaviour that any correct
implementation shows:

* ``train_model``: on two easily separated classes the loss falls and the history is complete and
  right; the gradients are zeroed before every backward pass; the train phase trains (train mode,
  gradients on) and the val phase does not (eval mode, no gradients, no optimizer step); the
  scheduler steps once per epoch, after the optimizer (no PyTorch warning); the weights of the best
  validation epoch are the ones returned;
* ``visualize_model``: the figure shows ``num_images`` distinct validation images, each titled with
  the model's prediction; the model predicts in eval mode without gradients and is left in the mode
  it was found in;
* ``finetune`` / ``freeze`` (with ``train_model`` replaced by a recorder; on a small "pretrained"
  network of the case's ``num_ftrs`` features, then on torchvision's ResNet-18 with random weights, the
  network students write these for, so that code going by its parameter names or children is judged
  on them): ``train_model`` is called once with the pretrained weights, a new head
  ``Linear(num_ftrs, num_classes)``, cross-entropy, SGD with the given ``lr`` and ``momentum`` over
  every parameter (finetune) or over the new head only, the backbone frozen (freeze), and a StepLR
  with the given ``step_size`` and ``gamma``; its result is returned.

Two halves, so that the grader applies exactly these rules: ``run`` observes (the observers of
:mod:`.transfer_observe` and :mod:`.transfer_observe_figure` call the student's code and record plain
values; in the grader, in the sandbox), and :func:`judge_observations` turns the observations into a
verdict (in the grader, outside the sandbox). The reference is empty: rules, not values, judge. Runs
fork the torch random state: a check leaves yours as it was. Importing this module does not import
PyTorch.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from . import engine
from .engine import Target, require

__all__ = ["HEAD", "LR", "GAMMA", "RESNET", "RESNET_FTRS", "judge_observations", "TARGETS"]

HEAD = ["fc.weight", "fc.bias"]
RESNET, RESNET_FTRS = "resnet18", 512   # the prefix of the observations on ResNet-18; its fc.in_features
LR, GAMMA = 0.1, 0.5          # the train_model check's SGD learning rate and StepLR(step_size=1) factor


def _listed(values, limit: int = 4) -> str:
    return ", ".join(map(str, values[:limit])) + (f" ... ({len(values)} in all)" if len(values) > limit else "")


# --- train_model ---------------------------------------------------------------------------------

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
    require(int(obs.get("stale_steps", 1)) == 0,
            f"optimizer.step() found the gradients of an earlier batch still there in {obs.get('stale_steps')} of "
            f"{obs.get('optimizer_steps')} steps: backward() adds to .grad, so zero the gradients "
            "(optimizer.zero_grad()) before each batch's backward pass")
    require(int(obs.get("empty_steps", 1)) == 0,
            f"optimizer.step() ran {obs.get('empty_steps')} times with no gradient at all: call loss.backward() "
            "before optimizer.step(), and zero the gradients before the backward pass, not between it and the step")
    batches = epochs * int(obs["batches_per_epoch"])
    steps = int(obs["optimizer_steps"])
    require(steps == batches, f"optimizer.step() ran {steps} times; expected one per training batch ({batches}): "
                                "the val phase must not train")
    train_modes, train_grad = obs.get("calls/train/training", []), obs.get("calls/train/grad", [])
    val_modes, val_grad = obs.get("calls/val/training", []), obs.get("calls/val/grad", [])
    require(train_modes and all(train_modes), "in the train phase the model must be in train mode (model.train())")
    require(all(train_grad), "in the train phase the forward pass needs gradients (torch.set_grad_enabled(True))")
    require(val_modes, "the val phase never called the model: run it on every validation batch")
    require(not any(val_modes), "in the val phase the model must be in eval mode (model.eval()): batch norm and "
                                "dropout behave differently there")
    require(not any(val_grad), "the val phase must run without gradients (torch.set_grad_enabled(phase == 'train') "
                               "or torch.no_grad()): they cost memory and time and are never used")
    lr, want = float(obs["final_lr"]), LR * GAMMA ** epochs
    require(abs(lr - want) < 1e-12, f"after {epochs} epochs StepLR(step_size=1, gamma={GAMMA}) must have stepped "
                                      f"{epochs} times (lr {want:g}); lr is {lr:g}: call scheduler.step() once "
                                      "per epoch")
    losses, accs = history["train_loss"], history["val_acc"]
    require(losses[-1] < 0.5 * losses[0], f"the training loss must fall on an easy problem; got {losses}")
    require(max(accs) >= 0.9, f"validation accuracy must reach 0.9 on an easy problem; got {accs}")
    best = accs.index(max(accs))
    acc, loss = float(obs["returned_val_acc"]), float(obs["returned_val_loss"])
    require(abs(acc - accs[best]) < 1e-6 and abs(loss - history["val_loss"][best]) < 1e-4,
            f"the returned model must be the one of the best validation epoch, with the history's numbers: it "
            f"has val acc {acc:.4f}, loss {loss:.4f}; the history's best epoch ({best + 1}) says acc "
            f"{accs[best]:.4f}, loss {history['val_loss'][best]:.4f} (keep a copy.deepcopy of the "
            "best state dict; an epoch's loss is the mean loss per sample: add loss.item() * batch size)")
    sab_accs = [float(v) for v in obs.get("sabotage/val_acc", [])]
    kept = [bool(v) for v in obs.get("sabotage/returned_is_snapshot", [])]
    kept_epochs = [e for e, (k, a) in enumerate(zip(kept, sab_accs)) if k and a == max(sab_accs)]
    require(len(sab_accs) == epochs and len(kept) == epochs and kept_epochs,
            f"train_model must return the weights of the best validation epoch (val acc {sab_accs}); the returned "
            "weights match none of the best epochs (copy the state dict with copy.deepcopy)")
    return (f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}, best val acc {max(accs):.2f}; with later epochs "
            f"wrecked, the weights of epoch {kept_epochs[0] + 1} of {epochs} kept; scheduler stepped after the "
            "optimizer")


# --- visualize_model -----------------------------------------------------------------------------

def _judge_visualize_model(obs: dict, num_images: int) -> str:
    require(obs.get("returned_figure") is True, "visualize_model must return the figure it draws (show_predictions "
                                                "returns it)")
    shown, titles = [int(v) for v in obs.get("shown", [])], [str(v) for v in obs.get("titles", [])]
    expected = min(num_images, int(obs["num_val"]))
    require(len(shown) == expected, f"the figure must show num_images = {num_images} images; it shows {len(shown)}")
    require(all(i >= 0 for i in shown), "a picture in the figure is not a validation image: draw the validation "
                                        "images, un-normalised with the mean and std passed in")
    require(len(set(shown)) == len(shown), f"the figure shows a validation image twice (images {shown})")
    for k, (title, predicted, true) in enumerate(zip(titles, obs.get("predicted", []), obs.get("true", []))):
        match = re.match(r"\s*predicted:\s*(.+)", title.splitlines()[0] if title else "")
        named = match.group(1).strip() if match else ""
        hint = " (that is its true label)" if named == true != predicted else ""
        require(named == predicted, f"picture {k + 1}: the title must start with 'predicted: {predicted}', the "
                                    f"model's prediction; it is {title!r}{hint}")
    modes, grads = obs.get("calls/training", []), obs.get("calls/grad", [])
    require(modes, "visualize_model never called the model")
    require(not any(modes), "the model must predict in eval mode (model.eval()), also when it was in train mode")
    require(not any(grads) and obs.get("grad_recorded") is False,
            "predict without gradients (with torch.no_grad():): nothing is trained here")
    require(obs.get("left_training") is True and obs.get("left_eval") is False,
            "leave the model in the mode it was found in (remember model.training, then model.train(was_training))")
    return f"{len(shown)} validation images titled with the model's predictions; eval mode, no gradients, mode restored"


# --- finetune / freeze ---------------------------------------------------------------------------

def _judge_scenario(func: str, obs: dict, settings: dict) -> str:
    """The rules on the small network's observations, then on ResNet-18's (``resnet18/...``)."""
    summary = _judge_run(func, obs, settings)
    resnet = {key[len(RESNET) + 1:]: value for key, value in obs.items() if key.startswith(f"{RESNET}/")}
    where = "on torchvision's ResNet-18 (random weights, 32x32 images), the network it is written for"
    error = str(resnet.get("error", ""))
    require(not error, f"{func} failed {where}: {error}")
    try:
        _judge_run(func, resnet, {**settings, "num_ftrs": RESNET_FTRS})
    except AssertionError as exc:
        raise AssertionError(f"{where}: {exc}") from None
    return f"{summary}; the same on ResNet-18 ({len(resnet.get('names', []))} parameter tensors)"


def _judge_run(func: str, obs: dict, settings: dict) -> str:
    require(int(obs.get("calls", 0)) == 1, f"{func} must train by calling train_model once; it called it "
                                           f"{obs.get('calls', 0)} times")
    require(int(obs.get("pretrained_calls", 0)) >= 1 and obs.get("from_pretrained") is True,
            f"{func} must start from the network pretrained() returns (not a randomly initialised one) and train it")
    not_loaded = [str(v) for v in obs.get("not_loaded", [])]
    require(not not_loaded, f"{func}: the pretrained weights must reach train_model unchanged; {_listed(not_loaded)} "
                            "differ from pretrained()'s")
    num_ftrs, num_classes = int(settings["num_ftrs"]), int(settings["num_classes"])
    shape = [int(v) for v in obs.get("head_shape", [-1, -1])]
    require(obs.get("head_is_linear") is True, f"{func}: model.fc must be an nn.Linear; got {obs.get('head_type')}")
    require(obs.get("head_is_new") is True, f"{func}: model.fc must be a NEW nn.Linear (random weights) in place of "
                                            "the pretrained head")
    require(shape == [num_ftrs, num_classes], f"{func}: the new head must be Linear({num_ftrs}, {num_classes}) "
                                              f"(num_ftrs = model.fc.in_features); got Linear({shape[0]}, {shape[1]})")
    names, trainable = [str(v) for v in obs.get("names", [])], [str(v) for v in obs.get("trainable", [])]
    optimized = [str(v) for v in obs.get("optimized", [])]
    backbone = [n for n in names if n not in HEAD]
    if func == "freeze":
        left = [n for n in trainable if n not in HEAD]
        require(not left, f"freeze: every pretrained parameter must be frozen (requires_grad = False); "
                          f"still trainable: {_listed(left)}")
        require(all(n in trainable for n in HEAD), "freeze: the new head's parameters must be trainable")
        extra = [n for n in optimized if n not in HEAD]
        require(not extra, f"freeze: the optimizer must get the new head's parameters only (model.fc.parameters()); "
                           f"it also holds {_listed(extra)}")
    else:
        frozen = [n for n in names if n not in trainable]
        require(not frozen, f"finetune: every parameter must be trainable; frozen: {_listed(frozen)}")
        missing = [n for n in backbone if n not in optimized]
        require(not missing, f"finetune: the optimizer must get every parameter (model.parameters()); it lacks "
                             f"{_listed(missing)}")
    require(all(n in optimized for n in HEAD) and int(obs.get("foreign", 0)) == 0,
            f"{func}: the optimizer must hold the NEW head's parameters (build it after replacing model.fc); "
            f"it holds {obs.get('foreign', 0)} parameter(s) that are not the model's")
    lr, momentum = float(settings["lr"]), float(settings["momentum"])
    require(obs.get("is_sgd") is True,
            f"{func}: the optimizer must be torch.optim.SGD; got {obs.get('optimizer_type')}")
    require(all(abs(float(v) - lr) < 1e-12 for v in obs.get("group_lr", [])) and
            all(abs(float(v) - momentum) < 1e-12 for v in obs.get("group_momentum", [])),
            f"{func}: SGD must use lr={lr:g} and momentum={momentum:g} (the arguments); got lr "
            f"{obs.get('group_lr')} and momentum {obs.get('group_momentum')}")
    require(float(obs.get("criterion_error", np.inf)) < 1e-6,
            f"{func}: the criterion must be nn.CrossEntropyLoss(); {obs.get('criterion_type')} gives other values "
            f"{obs.get('criterion_problem', '')}".strip())
    error = str(obs.get("train_error", ""))
    require(not error, f"{func}: one training step with the optimizer and scheduler given to train_model failed: "
                       f"{error}")
    epochs, step_size, gamma = int(settings["num_epochs"]), int(settings["step_size"]), float(settings["gamma"])
    require(int(obs.get("epochs_passed", -1)) == epochs,
            f"{func}: pass num_epochs ({epochs}) on to train_model; it got {obs.get('epochs_passed')}")
    want = [lr * gamma ** (e // step_size) for e in range(epochs)]
    got = [float(v) for v in obs.get("epoch_lr", [])]
    require(len(got) == epochs and all(abs(a - b) < 1e-12 for a, b in zip(got, want)),
            f"{func}: the scheduler must be StepLR(optimizer, step_size={step_size}, gamma={gamma:g}): stepped once "
            f"per epoch, the learning rates would be {[f'{v:g}' for v in want]}; they are {[f'{v:g}' for v in got]}")
    require(obs.get("passed_through") is True, f"{func}: pass device, dataloaders and dataset_sizes on to train_model")
    require(obs.get("returned_is_trained") is True, f"{func} must return the model train_model returns")
    trained = "the new head only" if func == "freeze" else f"all {len(names)} parameter tensors"
    return (f"pretrained weights, new head Linear({num_ftrs}, {num_classes}), SGD over {trained}, "
            f"StepLR({step_size}, {gamma:g}), cross-entropy; train_model called")


def judge_observations(func: str, obs: dict, inputs: dict) -> str:
    """Raise ``AssertionError`` (saying what is wrong and what to do) unless the observations of
    ``func`` ("train_model", "visualize_model", "finetune" or "freeze") show a correct implementation
    for the case ``inputs`` (what the draw asked for); return a summary.

    ``obs`` holds plain values (bools, numbers, strings and lists of them), as the observers return them.
    """
    if func == "train_model":
        return _judge_train_model({**obs, "num_epochs": inputs["num_epochs"]})
    if func == "visualize_model":
        return _judge_visualize_model({**obs, "num_val": inputs["num_val"]}, int(inputs["num_images"]))
    if func in ("finetune", "freeze"):
        return _judge_scenario(func, obs, inputs)
    raise ValueError(f"judge: unknown function {func!r}; expected 'train_model', 'visualize_model', 'finetune' "
                     "or 'freeze'")


# --- the four steps ------------------------------------------------------------------------------

def _draw_train_model(rng, dtype, seed: int, num_epochs: int = 4) -> dict:
    return {"num_epochs": int(num_epochs), "seed": seed}


def _draw_visualize_model(rng, dtype, seed: int, num_images: int = 4, num_classes: int = 3, num_val: int = 10) -> dict:
    return {"num_images": int(num_images), "num_classes": int(num_classes), "num_val": int(num_val), "seed": seed}


def _draw_scenario(rng, dtype, seed: int, num_classes: int = 3, num_ftrs: int = 6, num_epochs: int = 3,
                   lr: float = 0.02, momentum: float = 0.8, step_size: int = 2, gamma: float = 0.5) -> dict:
    return {"num_classes": int(num_classes), "num_ftrs": int(num_ftrs), "num_epochs": int(num_epochs),
            "lr": float(lr), "momentum": float(momentum), "step_size": int(step_size), "gamma": float(gamma),
            "seed": seed}


def _run(func: str, inputs: dict) -> dict:
    """The observations of the importable ``hwlib.transfer``'s ``func``, as arrays."""
    import torch

    with torch.random.fork_rng(devices=[]):
        if func == "train_model":
            from .transfer_observe import observe_train_model   # imported here: PyTorch only when a check runs
            obs = observe_train_model(int(inputs["num_epochs"]), int(inputs["seed"]), LR, GAMMA)
        elif func == "visualize_model":
            from .transfer_observe_figure import observe_visualize_model
            obs = observe_visualize_model(int(inputs["num_images"]), int(inputs["num_classes"]),
                                          int(inputs["num_val"]), int(inputs["seed"]))
        else:
            from .transfer_observe import observe_scenario
            obs = observe_scenario(func, inputs, int(inputs["seed"]))
    return {key: np.asarray(value) for key, value in obs.items()}


def _reference(inputs: dict) -> dict:
    return {}


def _judge(func: str, outputs: dict, expected: dict, inputs: dict, label: str = "reference") -> str:
    """The rules applied to the observations (arrays turned back into plain values)."""
    obs = {key: np.asarray(value).tolist() for key, value in outputs.items()}
    return judge_observations(func, obs, inputs)


def _public(name: str, first_seed: int, seed: int, verbose: bool, strict_dtypes: bool = False) -> None:
    """One public case: the draw's defaults and seed ``first_seed + seed``."""
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
    _target("visualize_model", _draw_visualize_model, 1),
    _target("finetune", _draw_scenario, 2),
    _target("freeze", _draw_scenario, 0),
)
_BY_NAME = {t.name: t for t in TARGETS}

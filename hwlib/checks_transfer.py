"""Public checks for Q5 (``hwlib.transfer``): ``python -m hwlib.checks_transfer``.

These checks are public and are *not* your grade: they tell you early, with a clear message, where
``train_model``, ``finetune`` or ``freeze`` goes wrong. Each check builds its own small model and data
and judges behaviour that any correct implementation shows:

* :func:`check_freeze`: the new head is a fresh ``Linear(num_ftrs, num_classes)``; every backbone
  parameter is untrainable and stays unchanged by training, the head trains;
* :func:`check_finetune`: a fresh head, every parameter trainable, training changes all of them;
* :func:`check_train_model`: on two easily separated classes the loss falls, the history is complete
  and right, the scheduler steps once per epoch after the optimizer (no PyTorch warning), validation
  does not train, and the weights of the best validation epoch are the ones returned.

The checks run under :func:`torch.random.fork_rng`: they leave your random state as it was.

Each check has two halves, so that the grader applies exactly these rules: ``observe_*`` runs your
code and records what happened as plain values (in the grader this runs in the sandbox), and
:func:`judge` turns the observations into a verdict (in the grader this runs outside the sandbox).
"""

from __future__ import annotations

import copy
import sys
import warnings

import torch
from torch import nn

from . import transfer

__all__ = ["observe_head", "observe_train_model", "judge", "check_freeze", "check_finetune", "check_train_model",
           "main"]

HEAD = ["fc.weight", "fc.bias"]
LR, GAMMA = 0.1, 0.5          # the train_model check's SGD learning rate and StepLR(step_size=1) factor


def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(weights=None)


# --- observe: run the student's code, record plain values -------------------------------------------

def observe_head(func: str, num_classes: int, seed: int) -> dict:
    """Call ``transfer.<func>`` ("freeze" or "finetune") on a fresh ResNet-18, take two SGD steps on
    random 32x32 images over the parameters left trainable, and record what was built and what changed.

    For ``finetune`` the model is frozen first: a model frozen earlier must become trainable again.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    model = _resnet18()
    if func == "finetune":
        for param in model.parameters():
            param.requires_grad = False
    old_head = model.fc
    returned = getattr(transfer, func)(model, num_classes)
    head = getattr(model, "fc", None)
    obs = {"returned_is_model": returned is model, "returned_type": type(returned).__name__,
           "head_type": type(head).__name__, "head_is_linear": isinstance(head, nn.Linear),
           "head_is_new": head is not old_head,
           "head_shape": [head.in_features, head.out_features] if isinstance(head, nn.Linear) else [-1, -1],
           "trainable": [name for name, p in model.named_parameters() if p.requires_grad]}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    x = torch.randn(2, 3, 32, 32, generator=generator)   # small images: the check stays quick
    y = torch.arange(2) % num_classes
    model.train()
    obs["output_shape"] = []
    if params:
        optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
        for _ in range(2):
            optimizer.zero_grad()
            out = model(x)
            obs["output_shape"] = list(out.shape)
            nn.functional.cross_entropy(out, y).backward()
            optimizer.step()
    obs["changed"] = [name for name, p in model.named_parameters()
                      if name in before and not torch.equal(p.detach(), before[name])]
    obs["num_parameters"] = len(before)
    return obs


class _TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.features(x))


def _two_bars(n: int, generator: torch.Generator):
    """n noisy 1x8x8 images: class 0 bright on the left half, class 1 on the right half."""
    y = torch.arange(n) % 2
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=generator)
    x[y == 0, :, :, :4] += 1.0
    x[y == 1, :, :, 4:] += 1.0
    return torch.utils.data.TensorDataset(x, y)


class _CountingSGD(torch.optim.SGD):
    """SGD that counts its steps (validation must not step the optimizer)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps = 0

    def step(self, closure=None):
        self.steps += 1
        return super().step(closure)


class _SabotagingSGD(torch.optim.SGD):
    """SGD that, from epoch ``start`` on, wrecks the head after each of its steps.

    The wrecked head predicts class 0 everywhere (validation accuracy 0.5), so the best validation
    epoch comes before ``start``. At the end of every epoch's training it snapshots the weights that
    epoch is validated with.
    """

    def __init__(self, model, steps_per_epoch, start, **kwargs):
        super().__init__(model.parameters(), **kwargs)
        self.model, self.steps_per_epoch, self.start = model, steps_per_epoch, start
        self.steps, self.snapshots = 0, []

    def step(self, closure=None):
        loss = super().step(closure)
        self.steps += 1
        if (self.steps - 1) // self.steps_per_epoch >= self.start:
            with torch.no_grad():
                self.model.fc.weight.zero_()
                self.model.fc.bias.copy_(torch.tensor([1.0, 0.0]))
        if self.steps % self.steps_per_epoch == 0:
            self.snapshots.append(copy.deepcopy(self.model.state_dict()))
        return loss


def _loaders(generator):
    datasets = {"train": _two_bars(32, generator), "val": _two_bars(16, generator)}
    return transfer.make_dataloaders(datasets, batch_size=8, generator=generator)


def observe_train_model(num_epochs: int, seed: int) -> dict:
    """Run ``transfer.train_model`` twice on an easy two-class problem and record what happened.

    First with an SGD that counts its steps and StepLR(step_size=1, gamma=GAMMA): the history, the step
    count, the final learning rate, scheduler warnings, the returned model's validation numbers. Then
    with an SGD that wrecks the model from epoch 3 on: which epochs' weights the returned model equals.
    PyTorch warnings other than the scheduler-order one are passed on.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    device = torch.device("cpu")
    loaders, sizes = _loaders(generator)
    model = _TinyNet()
    optimizer = _CountingSGD(model.parameters(), lr=LR, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=GAMMA)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = transfer.train_model(device, loaders, sizes, model, nn.CrossEntropyLoss(), optimizer, scheduler,
                                     num_epochs=num_epochs, verbose=False)
    order = [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    for w in caught:
        if w not in order:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    history = getattr(model, "history", None)
    obs = {"num_epochs": num_epochs, "history_is_dict": isinstance(history, dict),
           "scheduler_warning": str(order[0].message) if order else "",
           "optimizer_steps": optimizer.steps, "batches_per_epoch": len(loaders["train"]),
           "final_lr": optimizer.param_groups[0]["lr"]}
    history = history if isinstance(history, dict) else {}
    for key in transfer.HISTORY_KEYS:
        obs[f"history/{key}"] = [float(v) for v in history.get(key, [])]
    val_x, val_y = loaders["val"].dataset.tensors
    model.eval()
    with torch.no_grad():
        scores = model(val_x)
    obs["returned_val_loss"] = nn.functional.cross_entropy(scores, val_y).item()
    obs["returned_val_acc"] = (scores.argmax(1) == val_y).float().mean().item()
    # Later epochs wrecked: the returned weights must be those of an earlier (the best) epoch.
    loaders, sizes = _loaders(generator)
    model = _TinyNet()
    sabotage = _SabotagingSGD(model, len(loaders["train"]), start=2, lr=LR, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(sabotage, step_size=num_epochs)
    returned = transfer.train_model(device, loaders, sizes, model, nn.CrossEntropyLoss(), sabotage, scheduler,
                                    num_epochs=num_epochs, verbose=False)
    state = returned.state_dict()
    sabotaged = getattr(returned, "history", None)
    obs["sabotage/val_acc"] = [float(v) for v in (sabotaged if isinstance(sabotaged, dict) else {}).get("val_acc", [])]
    obs["sabotage/returned_is_snapshot"] = [all(torch.equal(state[k], snap[k]) for k in snap)
                                            for snap in sabotage.snapshots]
    return obs


# --- judge: observations -> verdict (plain values only: the grader calls this outside the sandbox) ----

def _names(obs: dict, key: str) -> list[str]:
    return [str(v) for v in obs.get(key, [])]


def _judge_head(func: str, obs: dict, num_classes: int) -> str:
    assert obs.get("returned_is_model") is True, (
        f"{func} must return the model it was given (changed in place); got {obs.get('returned_type', '?')}")
    assert obs.get("head_is_linear") is True, f"{func}: model.fc must be an nn.Linear; got {obs.get('head_type', '?')}"
    assert obs.get("head_is_new") is True, f"{func}: model.fc must be a NEW nn.Linear (the ImageNet head has 1000 outputs)"
    shape = [int(v) for v in obs.get("head_shape", [-1, -1])]
    assert shape == [512, num_classes], (
        f"{func}: the new head must be Linear(512, {num_classes}) (num_ftrs = the old head's in_features); "
        f"got Linear({shape[0]}, {shape[1]})")
    trainable, changed = _names(obs, "trainable"), _names(obs, "changed")
    total = int(obs.get("num_parameters", 0))
    assert all(name in trainable for name in HEAD), f"{func}: the new head's parameters must be trainable"
    out = [int(v) for v in obs.get("output_shape", [])]
    assert out == [2, num_classes], f"{func}: the model's output has shape {tuple(out)}, expected (2, {num_classes})"
    if func == "freeze":
        extra = [name for name in trainable if name not in HEAD]
        assert not extra, (f"freeze: only the head may be trainable; trainable parameters: {extra[:5]}"
                           f"{' ...' if len(extra) > 5 else ''} ({len(trainable)} in all)")
        moved = [name for name in changed if name not in HEAD]
        assert not moved, f"freeze: training changed backbone parameters {moved[:3]} ({len(moved)} in all)"
        assert all(name in changed for name in HEAD), "freeze: training must change the head's weights"
        return f"backbone of {total - 2} parameter tensors frozen and unchanged; new head Linear(512, {num_classes}) trains"
    frozen = total - len(trainable)
    assert not frozen, f"finetune: every parameter must be trainable; {frozen} of {total} are frozen"
    unchanged = total - len(changed)
    assert not unchanged, f"finetune: training must change every parameter; {unchanged} of {total} did not change"
    return f"new head Linear(512, {num_classes}); all {total} parameter tensors train"


def _judge_train_model(obs: dict) -> str:
    epochs = int(obs["num_epochs"])
    warning = str(obs.get("scheduler_warning", ""))
    assert not warning, ("PyTorch warns that scheduler.step() ran before optimizer.step(): step the scheduler once "
                         f"per epoch, after the train phase's optimizer steps ({warning[:200]})")
    assert obs.get("history_is_dict") is True, "train_model must attach model.history, a dict of per-epoch lists"
    history = {key: [float(v) for v in obs.get(f"history/{key}", [])] for key in transfer.HISTORY_KEYS}
    for key, values in history.items():
        assert len(values) == epochs, f"model.history[{key!r}] must have one entry per epoch ({epochs}); got {values}"
    batches = epochs * int(obs["batches_per_epoch"])
    steps = int(obs["optimizer_steps"])
    assert steps == batches, (f"optimizer.step() ran {steps} times; expected one per training batch ({batches}): "
                              "the val phase must not train")
    lr, want = float(obs["final_lr"]), LR * GAMMA ** epochs
    assert abs(lr - want) < 1e-12, (f"after {epochs} epochs StepLR(step_size=1, gamma={GAMMA}) must have stepped "
                                    f"{epochs} times (lr {want:g}); lr is {lr:g}")
    losses, accs = history["train_loss"], history["val_acc"]
    assert losses[-1] < 0.5 * losses[0], f"the training loss must fall on an easy problem; got {losses}"
    assert max(accs) >= 0.9, f"validation accuracy must reach 0.9 on an easy problem; got {accs}"
    best = accs.index(max(accs))
    acc, loss = float(obs["returned_val_acc"]), float(obs["returned_val_loss"])
    assert abs(acc - accs[best]) < 1e-6 and abs(loss - history["val_loss"][best]) < 1e-4, (
        f"the returned model must be the one of the best validation epoch, with the history's numbers: it "
        f"has val acc {acc:.4f}, loss {loss:.4f}; the history's best epoch ({best + 1}) says acc "
        f"{accs[best]:.4f}, loss {history['val_loss'][best]:.4f} (keep a copy.deepcopy of the "
        "best state dict; an epoch's loss is the mean loss per sample)")
    sab_accs = [float(v) for v in obs.get("sabotage/val_acc", [])]
    kept = [bool(v) for v in obs.get("sabotage/returned_is_snapshot", [])]
    kept_epochs = [e for e, (k, a) in enumerate(zip(kept, sab_accs)) if k and a == max(sab_accs)]
    assert len(sab_accs) == epochs and len(kept) == epochs and kept_epochs, (
        f"train_model must return the weights of the best validation epoch (val acc {sab_accs}); the returned "
        "weights match none of the best epochs (copy the state dict with copy.deepcopy)")
    return (f"train loss {losses[0]:.3f} -> {losses[-1]:.3f}, best val acc {max(accs):.2f}; with later epochs "
            f"wrecked, the weights of epoch {kept_epochs[0] + 1} of {epochs} kept; scheduler stepped after the optimizer")


def judge(func: str, obs: dict, num_classes: int | None = None) -> str:
    """Raise ``AssertionError`` (saying what is wrong and what to do) unless the observations of
    ``func`` ("freeze", "finetune" or "train_model") show a correct implementation; return a summary.

    ``obs`` holds plain values (bools, numbers, strings and lists of them), as ``observe_*`` returns them.
    """
    if func == "train_model":
        return _judge_train_model(obs)
    if func in ("freeze", "finetune"):
        return _judge_head(func, obs, int(num_classes))
    raise ValueError(f"judge: unknown function {func!r}; expected 'freeze', 'finetune' or 'train_model'")


# --- the public checks ------------------------------------------------------------------------------

def check_freeze(num_classes: int = 3, seed: int = 0) -> None:
    """freeze(): backbone untrainable and unchanged by training; a new trainable head."""
    with torch.random.fork_rng(devices=[]):
        obs = observe_head("freeze", num_classes, seed)
    print(f"check_freeze: ok ({judge('freeze', obs, num_classes)})")


def check_finetune(num_classes: int = 3, seed: int = 2) -> None:
    """finetune(): a new head, every parameter trainable (even of a frozen model), training changes them all."""
    with torch.random.fork_rng(devices=[]):
        obs = observe_head("finetune", num_classes, seed)
    print(f"check_finetune: ok ({judge('finetune', obs, num_classes)})")


def check_train_model(num_epochs: int = 4, seed: int = 3) -> None:
    """train_model(): loss falls, history right, scheduler order and count, best validation weights kept."""
    with torch.random.fork_rng(devices=[]):
        obs = observe_train_model(num_epochs, seed)
    print(f"check_train_model: ok ({judge('train_model', obs)})")


CHECKS = {"train_model": check_train_model, "finetune": check_finetune, "freeze": check_freeze}


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(CHECKS)
    failed = 0
    for name in names:
        if name not in CHECKS:
            print(f"unknown check {name!r}; expected one of {sorted(CHECKS)}")
            return 2
        try:
            CHECKS[name]()
        except NotImplementedError:
            failed += 1
            print(f"check_{name}: not implemented yet")
        except AssertionError as exc:
            failed += 1
            print(f"check_{name}: FAILED: {exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

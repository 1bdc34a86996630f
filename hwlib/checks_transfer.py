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
"""

from __future__ import annotations

import copy
import sys
import warnings

import torch
from torch import nn

from . import transfer

__all__ = ["check_freeze", "check_finetune", "check_train_model", "main"]


def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(weights=None)


def _backbone(model: nn.Module, head: str = "fc") -> dict[str, torch.Tensor]:
    """Copies of every parameter outside the head, by name."""
    return {name: param.detach().clone() for name, param in model.named_parameters()
            if not name.startswith(head + ".")}


def _sgd_steps(model: nn.Module, num_classes: int, generator: torch.Generator, steps: int = 2) -> None:
    """A few SGD steps on random images over the trainable parameters, as train_model would take them."""
    x = torch.randn(4, 3, 64, 64, generator=generator)
    y = torch.arange(4) % num_classes
    optimizer = torch.optim.SGD(transfer.trainable_parameters(model), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        out = model(x)
        assert out.shape == (4, num_classes), f"the model's output has shape {tuple(out.shape)}, expected (4, {num_classes})"
        nn.functional.cross_entropy(out, y).backward()
        optimizer.step()


def _check_new_head(func: str, model: nn.Module, returned, old_head: nn.Module, num_classes: int) -> None:
    assert returned is model, f"{func} must return the model it was given (changed in place); got {type(returned).__name__}"
    head = model.fc
    assert isinstance(head, nn.Linear), f"{func}: model.fc must be an nn.Linear; got {type(head).__name__}"
    assert head is not old_head, f"{func}: model.fc must be a NEW nn.Linear (the ImageNet head has 1000 outputs)"
    assert (head.in_features, head.out_features) == (512, num_classes), (
        f"{func}: the new head must be Linear(512, {num_classes}) (num_ftrs = the old head's in_features); "
        f"got Linear({head.in_features}, {head.out_features})")
    assert all(p.requires_grad for p in head.parameters()), f"{func}: the new head's parameters must be trainable"


def check_freeze(num_classes: int = 3) -> None:
    """freeze(): backbone untrainable and unchanged by training; a new trainable head."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(1)
        model = _resnet18()
        old_head = model.fc
        before = _backbone(model)
        returned = transfer.freeze(model, num_classes)
        _check_new_head("freeze", model, returned, old_head, num_classes)
        trainable = [name for name, param in model.named_parameters() if param.requires_grad]
        assert trainable == ["fc.weight", "fc.bias"], (
            f"freeze: only the head may be trainable; trainable parameters: {trainable[:5]}"
            f"{' ...' if len(trainable) > 5 else ''} ({len(trainable)} in all)")
        _sgd_steps(model, num_classes, generator)
        changed = [name for name, value in _backbone(model).items() if not torch.equal(value, before[name])]
        assert not changed, f"freeze: training changed backbone parameters {changed[:3]} ({len(changed)} in all)"
        head_weight = model.fc.weight.detach().clone()
        _sgd_steps(model, num_classes, generator, steps=1)
        assert not torch.equal(model.fc.weight, head_weight), "freeze: training must change the head's weights"
    print(f"check_freeze: ok (backbone of {len(before)} parameter tensors frozen and unchanged; "
          f"new head Linear(512, {num_classes}) trains)")


def check_finetune(num_classes: int = 3) -> None:
    """finetune(): a new head, every parameter trainable (even of a frozen model), training changes them all."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(2)
        model = _resnet18()
        for param in model.parameters():      # a model frozen earlier must become trainable again
            param.requires_grad = False
        old_head = model.fc
        before = _backbone(model)
        returned = transfer.finetune(model, num_classes)
        _check_new_head("finetune", model, returned, old_head, num_classes)
        frozen = [name for name, param in model.named_parameters() if not param.requires_grad]
        assert not frozen, f"finetune: every parameter must be trainable; frozen: {frozen[:5]} ({len(frozen)} in all)"
        _sgd_steps(model, num_classes, generator)
        unchanged = [name for name, value in _backbone(model).items() if torch.equal(value, before[name])]
        assert not unchanged, f"finetune: training left backbone parameters unchanged: {unchanged[:3]} ({len(unchanged)} in all)"
    print(f"check_finetune: ok (new head Linear(512, {num_classes}); all {len(before) + 2} parameter tensors train)")


# --- train_model ------------------------------------------------------------------------------------

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


def check_train_model(num_epochs: int = 4) -> None:
    """train_model(): loss falls, history right, scheduler order and count, best validation weights kept."""
    device = torch.device("cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(3)
        dataloaders, sizes = _loaders(generator)
        model = _TinyNet()
        optimizer = _CountingSGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = transfer.train_model(device, dataloaders, sizes, model, nn.CrossEntropyLoss(), optimizer,
                                         scheduler, num_epochs=num_epochs, verbose=False)
        for warning in caught:
            assert "lr_scheduler.step()" not in str(warning.message), (
                "PyTorch warns that scheduler.step() ran before optimizer.step(): step the scheduler once per "
                f"epoch, after the train phase's optimizer steps ({warning.message})")
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        history = getattr(model, "history", None)
        assert isinstance(history, dict), "train_model must attach model.history, a dict of per-epoch lists"
        for key in transfer.HISTORY_KEYS:
            assert len(history.get(key, [])) == num_epochs, (
                f"model.history[{key!r}] must have one entry per epoch ({num_epochs}); got {history.get(key)}")
        batches = num_epochs * len(dataloaders["train"])
        assert optimizer.steps == batches, (
            f"optimizer.step() ran {optimizer.steps} times; expected one per training batch ({batches}): "
            "the val phase must not train")
        lr = optimizer.param_groups[0]["lr"]
        assert abs(lr - 0.1 * 0.5 ** num_epochs) < 1e-12, (
            f"after {num_epochs} epochs StepLR(step_size=1, gamma=0.5) must have stepped {num_epochs} times "
            f"(lr {0.1 * 0.5 ** num_epochs:g}); lr is {lr:g}")
        losses = history["train_loss"]
        assert losses[-1] < 0.5 * losses[0], f"the training loss must fall on an easy problem; got {losses}"
        assert max(history["val_acc"]) >= 0.9, f"validation accuracy must reach 0.9 on an easy problem; got {history['val_acc']}"
        # The history is measured, not made up: recompute the best epoch's numbers on the returned model.
        best = history["val_acc"].index(max(history["val_acc"]))
        val_x, val_y = dataloaders["val"].dataset.tensors
        model.eval()
        with torch.no_grad():
            scores = model(val_x)
        val_loss = nn.functional.cross_entropy(scores, val_y).item()
        val_acc = (scores.argmax(1) == val_y).float().mean().item()
        assert abs(val_acc - history["val_acc"][best]) < 1e-6 and abs(val_loss - history["val_loss"][best]) < 1e-4, (
            f"the returned model must be the one of the best validation epoch, with the history's numbers: it "
            f"has val acc {val_acc:.4f}, loss {val_loss:.4f}; the history's best epoch ({best + 1}) says acc "
            f"{history['val_acc'][best]:.4f}, loss {history['val_loss'][best]:.4f} (keep a copy.deepcopy of the "
            "best state dict; an epoch's loss is the mean loss per sample)")

        # Best weights kept: later epochs are wrecked, so the returned weights must be an earlier epoch's.
        dataloaders, sizes = _loaders(generator)
        model = _TinyNet()
        sabotage = _SabotagingSGD(model, len(dataloaders["train"]), start=2, lr=0.1, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(sabotage, step_size=num_epochs)
        returned = transfer.train_model(device, dataloaders, sizes, model, nn.CrossEntropyLoss(), sabotage,
                                        scheduler, num_epochs=num_epochs, verbose=False)
        accs = returned.history["val_acc"]
        assert max(accs) > accs[-1], f"check setup: the wrecked epochs should be worse; val acc {accs}"
        state = returned.state_dict()
        kept = [epoch for epoch, snap in enumerate(sabotage.snapshots)
                if accs[epoch] == max(accs) and all(torch.equal(state[k], snap[k]) for k in snap)]
        assert kept, (f"train_model must return the weights of the best validation epoch (val acc {accs}); the "
                      "returned weights match none of the best epochs (copy the state dict with copy.deepcopy)")
    print(f"check_train_model: ok (train loss {losses[0]:.3f} -> {losses[-1]:.3f}, best val acc {max(accs):.2f} "
          f"kept from epoch {kept[0] + 1} of {num_epochs}, scheduler stepped after the optimizer)")


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

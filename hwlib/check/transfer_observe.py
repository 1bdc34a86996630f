"""The observing half of the Q5 checks: run the student's ``hwlib.transfer``, record plain values.

:func:`observe_head` (``freeze`` / ``finetune``) and :func:`observe_train_model` build their own small
model and data, call the student's function, and return what happened as bools, numbers, strings and
lists of them. They judge nothing: :mod:`hwlib.check.transfer` turns the observations into a verdict
(in the grader, outside the sandbox, where these run).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from .. import transfer
from ..transfer_setup import make_dataloaders

__all__ = ["observe_head", "observe_train_model"]


def _resnet18() -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(weights=None)


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
    return make_dataloaders(datasets, batch_size=8, generator=generator)


def observe_train_model(num_epochs: int, seed: int, lr: float, gamma: float) -> dict:
    """Run ``transfer.train_model`` twice on an easy two-class problem and record what happened.

    First with an SGD that counts its steps and StepLR(step_size=1, gamma): the history, the step
    count, the final learning rate, scheduler warnings, the returned model's validation numbers. Then
    with an SGD that wrecks the model from epoch 3 on: which epochs' weights the returned model equals.
    PyTorch warnings other than the scheduler-order one are passed on.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    device = torch.device("cpu")
    loaders, sizes = _loaders(generator)
    model = _TinyNet()
    optimizer = _CountingSGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)
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
    sabotage = _SabotagingSGD(model, len(loaders["train"]), start=2, lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(sabotage, step_size=num_epochs)
    returned = transfer.train_model(device, loaders, sizes, model, nn.CrossEntropyLoss(), sabotage, scheduler,
                                    num_epochs=num_epochs, verbose=False)
    state = returned.state_dict()
    sabotaged = getattr(returned, "history", None)
    obs["sabotage/val_acc"] = [float(v) for v in (sabotaged if isinstance(sabotaged, dict) else {}).get("val_acc", [])]
    obs["sabotage/returned_is_snapshot"] = [all(torch.equal(state[k], snap[k]) for k in snap)
                                            for snap in sabotage.snapshots]
    return obs

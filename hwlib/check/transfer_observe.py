"""The observing half of the Q5 checks: run the student's ``hwlib.transfer``, record plain values.

Each observer builds its own small model and data, calls one student function and returns what
happened as bools, numbers, strings and lists of them. They judge nothing: :mod:`hwlib.check.transfer`
turns the observations into a verdict (in the grader, outside the sandbox, where these run).

* :func:`observe_train_model`: ``train_model`` on an easy two-class problem, with an optimizer that
  counts its steps and spots stale gradients, a network that records the mode it is called in, and a
  second run whose later epochs are wrecked on purpose;
* ``visualize_model``'s observer is in :mod:`hwlib.check.transfer_observe_figure`;
* :func:`observe_scenario`: ``finetune`` or ``freeze`` with a small "pretrained" network (the case's
  number of features), then again with torchvision's ResNet-18 (its parameter names and children, random
  weights, 32x32 images), and a stand-in for ``train_model`` that records what it is given (model,
  criterion, optimizer, scheduler) and trains a few steps itself, so these checks do not depend on the
  student's ``train_model``.
"""

from __future__ import annotations

import copy
import os
import traceback
import warnings

import torch
from torch import nn

from .. import transfer
from ..transfer_setup import make_dataloaders

__all__ = ["POISON", "observe_train_model", "observe_scenario"]

POISON = 1e6        # what the counting optimizer leaves in every gradient after its step


# --- train_model ----------------------------------------------------------------------------------

class _TinyNet(nn.Module):
    """A two-layer net on 1x8x8 images that records, per call, its phase, its mode and the grad mode."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU())
        self.fc = nn.Linear(8, 2)
        self.phase, self.calls = None, []

    def forward(self, x):
        if self.phase is not None:
            self.calls.append((self.phase, self.training, torch.is_grad_enabled()))
        return self.fc(self.features(x))


class _Phase:
    """A DataLoader that tells the network which phase iterates over it."""

    def __init__(self, loader, net: _TinyNet, name: str):
        self.loader, self.net, self.name, self.dataset = loader, net, name, loader.dataset

    def __iter__(self):
        self.net.phase = self.name
        return iter(self.loader)

    def __len__(self):
        return len(self.loader)


def _two_bars(n: int, generator: torch.Generator):
    """n noisy 1x8x8 images: class 0 bright on the left half, class 1 on the right half."""
    y = torch.arange(n) % 2
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=generator)
    x[y == 0, :, :, :4] += 1.0
    x[y == 1, :, :, 4:] += 1.0
    return torch.utils.data.TensorDataset(x, y)


class _CountingSGD(torch.optim.SGD):
    """SGD that counts its steps, and those that found a gradient left over from the step before:
    after each step it fills every gradient with :data:`POISON`, which zeroing removes."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps, self.stale, self.empty = 0, 0, 0

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.steps += 1
        self.stale += any(float(g.abs().max()) >= POISON / 2 for g in grads)
        self.empty += not any(bool(g.any()) for g in grads)
        loss = super().step(closure)
        for g in grads:
            g.fill_(POISON)
        return loss


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

    First with the counting SGD and StepLR(step_size=1, gamma): the history, the step counts, the
    final learning rate, scheduler warnings, the phase/mode/grad mode of every forward call, the
    returned model's validation numbers. Then with an SGD that wrecks the model from epoch 3 on:
    which epochs' weights the returned model equals. Other PyTorch warnings are passed on.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    device = torch.device("cpu")
    loaders, sizes = _loaders(generator)
    model = _TinyNet()
    phases = {name: _Phase(loader, model, name) for name, loader in loaders.items()}
    optimizer = _CountingSGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=gamma)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = transfer.train_model(device, phases, sizes, model, nn.CrossEntropyLoss(), optimizer, scheduler,
                                     num_epochs=num_epochs, verbose=False)
    order = [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    for w in caught:
        if w not in order:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    history = getattr(model, "history", None)
    obs = {"num_epochs": num_epochs, "history_is_dict": isinstance(history, dict),
           "scheduler_warning": str(order[0].message) if order else "",
           "optimizer_steps": optimizer.steps, "stale_steps": optimizer.stale, "empty_steps": optimizer.empty,
           "batches_per_epoch": len(loaders["train"]), "final_lr": optimizer.param_groups[0]["lr"]}
    calls = getattr(model, "calls", [])
    for phase in ("train", "val"):
        obs[f"calls/{phase}/training"] = [bool(t) for p, t, _ in calls if p == phase]
        obs[f"calls/{phase}/grad"] = [bool(g) for p, _, g in calls if p == phase]
    history = history if isinstance(history, dict) else {}
    for key in transfer.HISTORY_KEYS:
        obs[f"history/{key}"] = [float(v) for v in history.get(key, [])]
    val_x, val_y = loaders["val"].dataset.tensors
    model.phase = None
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


# --- finetune / freeze ------------------------------------------------------------------------------

class _Pretrained(nn.Module):
    """A small stand-in for a pretrained network: a conv-BN-ReLU-pool backbone (no conv bias, as in
    ResNet) giving ``num_ftrs`` features, and the head ``fc`` of its old task (10 classes)."""

    def __init__(self, num_ftrs: int):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, num_ftrs, 3, padding=1, bias=False), nn.BatchNorm2d(num_ftrs),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(num_ftrs, 10)

    def forward(self, x):
        return self.fc(self.features(x))


class _StandIn:
    """Takes the place of ``transfer.train_model`` during a finetune/freeze check: records what it is
    given, then trains one batch of ``batch_shape`` per epoch itself (its own loss, at most
    ``max_epochs`` epochs), stepping the scheduler per epoch."""

    MAX_EPOCHS = 50

    def __init__(self, num_classes: int, generator: torch.Generator, batch_shape=(4, 3, 6, 6),
                 max_epochs: int = MAX_EPOCHS):
        self.num_classes, self.generator, self.calls, self.returned = num_classes, generator, [], None
        self.batch_shape, self.max_epochs = tuple(batch_shape), int(max_epochs)

    def __call__(self, device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler, num_epochs=25,
                 *, verbose=True):
        self.calls.append({"device": device, "dataloaders": dataloaders, "dataset_sizes": dataset_sizes,
                           "model": model, "num_epochs": num_epochs})
        record = self.calls[-1]
        record["state"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        record["trainable"] = [n for n, p in model.named_parameters() if p.requires_grad]
        record["criterion_type"] = type(criterion).__name__
        scores = torch.randn(5, self.num_classes, generator=self.generator)
        labels = torch.randint(self.num_classes, (5,), generator=self.generator)
        try:
            expected = float(nn.functional.cross_entropy(scores, labels))
            record["criterion_error"] = abs(float(criterion(scores, labels)) - expected)
        except Exception as exc:  # noqa: BLE001 - any failure is an observation
            record["criterion_error"] = float("inf")
            record["criterion_problem"] = f"{type(exc).__name__}: {exc}"
        names = {id(p): n for n, p in model.named_parameters()}
        groups = getattr(optimizer, "param_groups", [])
        params = [p for g in groups for p in g["params"]]
        record.update(optimizer_type=type(optimizer).__name__, is_sgd=isinstance(optimizer, torch.optim.SGD),
                      optimized=[names[id(p)] for p in params if id(p) in names],
                      foreign=sum(id(p) not in names for p in params),
                      group_lr=[float(g.get("lr", -1)) for g in groups],
                      group_momentum=[float(g.get("momentum", -1)) for g in groups])
        record["epoch_lr"], record["train_error"] = [], ""
        try:
            model.train()
            for _ in range(min(int(num_epochs), self.max_epochs)):
                record["epoch_lr"].append(float(groups[0]["lr"]) if groups else -1.0)
                x = torch.randn(*self.batch_shape, generator=self.generator)
                y = torch.randint(self.num_classes, (self.batch_shape[0],), generator=self.generator)
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
                scheduler.step()
        except Exception as exc:  # noqa: BLE001
            record["train_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        self.returned = model
        return model


RESNET = "resnet18"             # the prefix of the observations on torchvision's ResNet-18
RESNET_BATCH = (2, 3, 32, 32)   # its training batches in the stand-in train_model: small and quick


def _stand_in_network(num_ftrs: int, generator: torch.Generator) -> nn.Module:
    """The small pretrained network (``num_ftrs`` features as the case asks), N(0, 1) weights."""
    net = _Pretrained(num_ftrs)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return net


def _resnet18(generator: torch.Generator) -> nn.Module:
    """torchvision's ResNet-18, the network the students write ``finetune`` and ``freeze`` for: its
    parameter names (``conv1.weight``, ``layer4.1.bn2.bias``, ``fc.weight``...), its children and its
    512-feature head of 1000 classes; random weights (torchvision's initialisation under the case's seed,
    batch-norm scales and shifts drawn too, so that a re-initialised layer shows)."""
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return net


def _observe(func: str, settings: dict, original: nn.Module, generator: torch.Generator, batch_shape,
             max_epochs: int) -> dict:
    """Call ``transfer.<func>`` with ``pretrained`` returning copies of ``original`` and ``train_model``
    replaced by :class:`_StandIn`; record what reached ``train_model`` and what the function returned."""
    num_classes = int(settings["num_classes"])
    made = []

    def pretrained():
        net = copy.deepcopy(original)
        made.append((net, net.fc))
        return net

    stand_in = _StandIn(num_classes, generator, batch_shape, max_epochs)
    # train_model is a recorder here: the loaders need only be passed on, as they are
    dataloaders, sizes = {"train": "train-loader", "val": "val-loader"}, {"train": 8, "val": 4}
    device = torch.device("cpu")
    real = transfer.train_model
    transfer.train_model = stand_in
    try:
        returned = getattr(transfer, func)(device, dataloaders, sizes, num_classes, int(settings["num_epochs"]),
                                           pretrained=pretrained,
                                           lr=settings["lr"], momentum=settings["momentum"],
                                           step_size=settings["step_size"], gamma=settings["gamma"], verbose=False)
    finally:
        transfer.train_model = real
    obs = {"calls": len(stand_in.calls), "pretrained_calls": len(made), "num_ftrs": original.fc.in_features,
           "returned_is_trained": stand_in.returned is not None and returned is stand_in.returned}
    if not stand_in.calls:
        return obs
    record = stand_in.calls[0]
    model = record["model"]
    head = getattr(model, "fc", None)
    loaded = dict(original.named_parameters())
    obs.update({key: record[key] for key in ("trainable", "criterion_type", "criterion_error", "optimizer_type",
                                             "is_sgd", "optimized", "foreign", "group_lr", "group_momentum",
                                             "epoch_lr", "train_error")})
    obs.update(criterion_problem=record.get("criterion_problem", ""), epochs_passed=record["num_epochs"] if isinstance(record["num_epochs"], int) else -1,
               passed_through=(record["device"] == device and record["dataloaders"] is dataloaders
                               and record["dataset_sizes"] is sizes),
               from_pretrained=any(model is net for net, _ in made),
               names=[n for n, _ in model.named_parameters()],
               head_is_linear=isinstance(head, nn.Linear), head_type=type(head).__name__,
               head_is_new=all(head is not old for _, old in made),
               head_shape=[head.in_features, head.out_features] if isinstance(head, nn.Linear) else [-1, -1],
               not_loaded=[k for k, v in loaded.items() if not k.startswith("fc.")
                           and not (k in record["state"] and torch.equal(record["state"][k], v))])
    return obs


def _error(exc: BaseException) -> str:
    """``Type: message (file:line in function)``, the line the innermost frame of the student's ``hwlib``
    (not the checks') that the exception came through."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/hwlib/" in f.filename.replace(os.sep, "/") and "/hwlib/check/" not in f.filename.replace(os.sep, "/")]
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {str(exc)[:300]}{where}"


def observe_scenario(func: str, settings: dict, seed: int) -> dict:
    """Call ``transfer.<func>`` ("finetune" or "freeze") twice, with the keyword settings (lr, momentum,
    step_size, gamma) and ``train_model`` replaced by :class:`_StandIn`: first with a small pretrained
    network of ``num_ftrs`` features (the case's), then with torchvision's ResNet-18 (random weights,
    32x32 images, batches of 2), the network the students write these functions for, so that what they
    do by its parameter names (``layer4.*``) or children counts. The second run's observations are
    prefixed ``resnet18/``; an exception of the student's code there is its observation ``resnet18/error``
    (one of the first run propagates, as in every check)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed + 1)
    original = _stand_in_network(int(settings["num_ftrs"]), generator)
    obs = _observe(func, settings, original, generator, (4, 3, 6, 6), _StandIn.MAX_EPOCHS)
    torch.manual_seed(seed + 2)
    generator = torch.Generator().manual_seed(seed + 3)
    try:
        resnet = _observe(func, settings, _resnet18(generator), generator, RESNET_BATCH,
                          int(settings["num_epochs"]) + 1)
    except Exception as exc:  # noqa: BLE001 - the student's code failed on ResNet-18: an observation
        resnet = {"error": _error(exc)}
    obs.update({f"{RESNET}/{key}": value for key, value in resnet.items()})
    return obs

"""Transfer learning in PyTorch (Q5): what you write, and the recipe that uses it.

The seed's experiment: a torchvision ResNet-18 pretrained on ImageNet learns to tell ants from bees
(``hymenoptera_data``, 244 training images) in two ways:

* **fine-tuning** (:func:`finetune`): replace the classifier head by a new ``Linear(num_ftrs, 2)`` and
  train *all* parameters;
* **feature extraction** (:func:`freeze`): freeze every parameter of the backbone, replace the head, and
  train the head only (the optimizer sees the head's parameters only).

Both use :func:`train_model` (SGD lr 1e-3, momentum 0.9, ``StepLR(step_size=7, gamma=0.1)``, 25 epochs,
batch 4 in the seed); :func:`train_transfer` puts the pieces together. The set-up (device, seeding,
transforms, dataloaders, the pretrained network) is given in :mod:`hwlib.transfer_setup`, the offline
digits experiment in :mod:`hwlib.transfer_digits`, the plots in :mod:`hwlib.plots`.

Typical use (see ``notebooks/05_transfer_learning.ipynb``)::

    model = train_transfer("freeze", model, dataloaders, dataset_sizes, device, num_classes=2)
    model.history["val_acc"]       # per-epoch curves; the model holds the best-validation weights
    visualize_model(device, dataloaders, model, ["ants", "bees"])

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from .plots import show_predictions
from .progress import progress
from .transfer_setup import IMAGENET_MEAN, IMAGENET_STD
from .validation import positive_int

__all__ = ["HISTORY_KEYS", "train_model", "finetune", "freeze", "trainable_parameters", "train_transfer",
           "visualize_model"]

# What model.history holds after train_model: one value per epoch under each key.
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


# --- training --------------------------------------------------------------------------------------

def train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler, num_epochs=25,
                *, verbose: bool = True) -> nn.Module:
    """Train ``model``; return it holding the weights of its best validation epoch.

    Every epoch runs a ``"train"`` phase (forward, loss, backward, ``optimizer.step()`` per batch), then
    steps ``scheduler`` once (after the epoch's optimizer steps, the order PyTorch requires), then a
    ``"val"`` phase (forward only, no gradients). The weights of the epoch with the highest validation
    accuracy (the first such epoch on a tie) are copied aside and loaded back at the end.

    Inputs:
    - device: a ``torch.device`` (see :func:`hwlib.transfer_setup.choose_device`); inputs and labels are
      moved there.
    - dataloaders: dict with ``"train"`` and ``"val"`` DataLoaders yielding ``(inputs, labels)``.
    - dataset_sizes: dict with the number of samples of each split (as
      :func:`hwlib.transfer_setup.make_dataloaders` gives).
    - model: an ``nn.Module`` already on ``device``, mapping inputs to class scores of shape (N, C).
    - criterion: the loss, e.g. ``nn.CrossEntropyLoss()`` (averaged over the batch).
    - optimizer: a ``torch.optim`` optimizer over the parameters to train.
    - scheduler: a learning-rate scheduler stepped once per epoch (or ``None``).
    - num_epochs: number of epochs.
    - verbose: print one line per epoch and a summary.

    Returns the same ``model`` (best-validation weights loaded) with ``model.history``, a dict of
    per-epoch lists ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (mean loss per sample and
    accuracy in [0, 1]), and ``model.best_val_acc``.
    """
    if "train" not in dataloaders or "val" not in dataloaders:
        raise ValueError(f"train_model: dataloaders must have 'train' and 'val' keys; got {sorted(dataloaders)}")
    if int(num_epochs) != num_epochs or num_epochs < 1:
        raise ValueError(f"train_model: num_epochs must be a positive int; got {num_epochs!r}")
    start = time.perf_counter()
    history = {key: [] for key in HISTORY_KEYS}
    best_state = copy.deepcopy(model.state_dict())
    best_acc = -1.0
    best_epoch = 0
    for epoch in progress(range(int(num_epochs)), desc="epochs"):
        for phase in ("train", "val"):
            model.train(phase == "train")
            running_loss, running_corrects, seen = 0.0, 0, 0
            for inputs, labels in progress(dataloaders[phase], desc=f"epoch {epoch + 1} {phase}"):
                inputs, labels = inputs.to(device), labels.to(device)
                seen += inputs.size(0)
                ### BEGIN SOLUTION
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += int((outputs.argmax(dim=1) == labels).sum())
                ### END SOLUTION
            if seen != dataset_sizes[phase]:
                raise ValueError(f"train_model: dataset_sizes[{phase!r}] is {dataset_sizes[phase]}, but the "
                                 f"{phase} dataloader yielded {seen} samples")
            if phase == "train" and scheduler is not None:
                scheduler.step()       # once per epoch, after the epoch's optimizer.step() calls
            epoch_loss = running_loss / seen
            epoch_acc = running_corrects / seen
            history[f"{phase}_loss"].append(epoch_loss)
            history[f"{phase}_acc"].append(epoch_acc)
            ### BEGIN SOLUTION
            if phase == "val" and epoch_acc > best_acc:
                best_acc, best_epoch = epoch_acc, epoch
                best_state = copy.deepcopy(model.state_dict())
            ### END SOLUTION
        if verbose:
            print(f"epoch {epoch + 1}/{num_epochs}  train loss {history['train_loss'][-1]:.4f} "
                  f"acc {history['train_acc'][-1]:.4f} | val loss {history['val_loss'][-1]:.4f} "
                  f"acc {history['val_acc'][-1]:.4f}")
    model.load_state_dict(best_state)
    model.history = history
    model.best_val_acc = max(history["val_acc"])
    if verbose:
        elapsed = time.perf_counter() - start
        print(f"training complete in {elapsed // 60:.0f}m {elapsed % 60:.0f}s; best val acc "
              f"{model.best_val_acc:.4f} (epoch {best_epoch + 1})")
    return model


# --- the two transfer scenarios --------------------------------------------------------------------

def _get_head(func: str, model: nn.Module, head: str) -> nn.Linear:
    """The classifier head ``model.<head>`` (a dotted path), which must be an ``nn.Linear``."""
    try:
        module = model.get_submodule(head)
    except AttributeError:
        raise ValueError(f"{func}: model ({type(model).__name__}) has no submodule {head!r} to use as the head; "
                         "pass head=<name of its final nn.Linear>") from None
    if not isinstance(module, nn.Linear):
        raise ValueError(f"{func}: the head model.{head} must be an nn.Linear; got {type(module).__name__}")
    return module


def _set_head(model: nn.Module, head: str, module: nn.Module) -> None:
    """Replace ``model.<head>`` (a dotted path) by ``module``."""
    parent_name, _, name = head.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, name, module)


def finetune(model: nn.Module, num_classes: int = 2, head: str = "fc") -> nn.Module:
    """Prepare ``model`` for fine-tuning: a new head ``Linear(num_ftrs, num_classes)``, every parameter trainable.

    Inputs:
    - model: a network whose classifier head ``model.<head>`` is an ``nn.Linear`` with ``num_ftrs``
      inputs (``fc`` with 512 inputs for ResNet-18).
    - num_classes: classes of the new task.
    - head: the attribute (dotted path) of the head.

    Returns ``model`` (changed in place): the new head lives on the old head's device, and
    ``requires_grad`` is True for all parameters (so the optimizer trains the whole network).
    """
    num_classes = positive_int("finetune", "num_classes", num_classes)
    old_head = _get_head("finetune", model, head)
    ### BEGIN SOLUTION
    num_ftrs = old_head.in_features
    _set_head(model, head, nn.Linear(num_ftrs, num_classes).to(old_head.weight.device))
    for param in model.parameters():
        param.requires_grad = True
    ### END SOLUTION
    return model


def freeze(model: nn.Module, num_classes: int = 2, head: str = "fc") -> nn.Module:
    """Prepare ``model`` as a fixed feature extractor: backbone frozen, new trainable head.

    Every parameter of ``model`` gets ``requires_grad = False``; then the head ``model.<head>`` is
    replaced by a new ``Linear(num_ftrs, num_classes)`` (whose parameters are trainable, as new ones
    are). Give the optimizer the head's parameters only (:func:`trainable_parameters`). Batch-norm
    running statistics are buffers, not parameters: they still adapt in train mode, as in the seed.

    Inputs and returns as :func:`finetune`.
    """
    num_classes = positive_int("freeze", "num_classes", num_classes)
    old_head = _get_head("freeze", model, head)
    ### BEGIN SOLUTION
    for param in model.parameters():
        param.requires_grad = False
    num_ftrs = old_head.in_features
    _set_head(model, head, nn.Linear(num_ftrs, num_classes).to(old_head.weight.device))
    ### END SOLUTION
    return model


# --- the seed's recipe, given ----------------------------------------------------------------------

def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` with ``requires_grad`` (what an optimizer should update)."""
    return [param for param in model.parameters() if param.requires_grad]


def train_transfer(mode: str, model: nn.Module, dataloaders, dataset_sizes, device, *, num_classes: int,
                   num_epochs: int = 25, lr: float = 1e-3, momentum: float = 0.9, step_size: int = 7,
                   gamma: float = 0.1, head: str = "fc", verbose: bool = True) -> nn.Module:
    """One transfer run with the seed's recipe: :func:`finetune` or :func:`freeze`, then :func:`train_model`.

    Cross-entropy loss, ``SGD(trainable_parameters(model), lr, momentum)`` and
    ``StepLR(step_size, gamma)``: the seed's settings by default. Training *from scratch* is
    ``train_transfer("finetune", <a randomly initialised model>, ...)``.

    Inputs:
    - mode: ``"finetune"`` or ``"freeze"``.
    - model: the pretrained network (changed in place and moved to ``device``).
    - the rest: as :func:`train_model` and :func:`finetune`.

    Returns the trained model (best-validation weights, ``model.history``).
    """
    prepare = {"finetune": finetune, "freeze": freeze}
    if mode not in prepare:
        raise ValueError(f"train_transfer: mode must be 'finetune' or 'freeze'; got {mode!r}")
    model = prepare[mode](model, num_classes, head=head).to(device)
    optimizer = torch.optim.SGD(trainable_parameters(model), lr=lr, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    return train_model(device, dataloaders, dataset_sizes, model, nn.CrossEntropyLoss(), optimizer, scheduler,
                       num_epochs=num_epochs, verbose=verbose)


# --- pictures --------------------------------------------------------------------------------------

@torch.no_grad()
def visualize_model(device, dataloaders, model, class_names, num_images: int = 6, *, mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, columns: int = 3, title: str | None = None, indices=None):
    """Show ``num_images`` validation images with the model's prediction and the true label.

    The images are spread evenly over the validation set (so classes stored one after the other all
    show up), or are the validation images ``indices`` when given (a page of
    :func:`hwlib.explore.transfer_pager`), and are un-normalised with ``mean`` and ``std`` (those of
    the transforms; ImageNet's by default). A caption is green when the prediction is right, red
    when wrong (drawn by :func:`hwlib.plots.show_predictions`). Returns the figure.
    """
    num_images = positive_int("visualize_model", "num_images", num_images)
    dataset = dataloaders["val"].dataset
    if indices is None:
        indices = np.unique(np.linspace(0, len(dataset) - 1, min(num_images, len(dataset))).round().astype(int))
    elif len(indices) == 0 or not all(0 <= int(i) < len(dataset) for i in indices):
        raise ValueError(f"visualize_model: indices must be validation image indices in [0, {len(dataset)}); "
                         f"got {list(indices)[:10]}")
    inputs = torch.stack([dataset[i][0] for i in indices])
    labels = [int(dataset[i][1]) for i in indices]
    was_training = model.training
    model.eval()
    preds = model(inputs.to(device)).argmax(dim=1).cpu().tolist()
    model.train(was_training)
    return show_predictions(inputs.cpu().numpy(), preds, labels, class_names, mean=mean, std=std, columns=columns,
                            title=title)

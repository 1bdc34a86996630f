"""Transfer learning in PyTorch (Q5): the four functions of the seed's experiment.

A torchvision ResNet-18 pretrained on ImageNet learns to tell ants from bees (``hymenoptera_data``,
244 training images) in the two classic ways:

* :func:`train_model` (a): the general training loop: a training and a validation phase per epoch,
  the scheduler stepped once per epoch, the weights of the best validation epoch kept;
* :func:`visualize_model` (b): validation images captioned with the model's predictions;
* :func:`finetune` (c): start from the pretrained network, put a new last layer
  ``Linear(num_ftrs, num_classes)`` in place of its head ``fc``, and train *all* parameters;
* :func:`freeze` (d): the same, but every pretrained parameter is frozen and the optimizer sees the
  new last layer's parameters only (a fixed feature extractor).

The seed's recipe for (c) and (d): cross-entropy, SGD (lr 1e-3, momentum 0.9), ``StepLR(step_size=7,
gamma=0.1)``, 25 epochs, batches of 4: the keyword defaults here. The set-up (device, seeding,
transforms, dataloaders, the pretrained ResNet-18) is given in :mod:`hwlib.transfer_setup`, the
offline digits experiment in :mod:`hwlib.transfer_digits`, the picture grid in :mod:`hwlib.plots`.

Typical use (see ``notebooks/05_transfer_learning.ipynb``)::

    model = freeze(device, dataloaders, dataset_sizes, num_classes=2)   # the ImageNet ResNet-18
    model.history["val_acc"]        # per-epoch curves; the model holds the best-validation weights
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
from .transfer_setup import IMAGENET_MEAN, IMAGENET_STD, imagenet_resnet18
from .validation import positive_int

__all__ = ["HISTORY_KEYS", "train_model", "visualize_model", "finetune", "freeze"]

# What model.history holds after train_model: one value per epoch under each key.
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


class _Counted:
    """Iterates over a DataLoader (with a progress bar) and counts the samples it yields."""

    def __init__(self, dataloader, desc: str):
        self.dataloader, self.desc, self.seen = dataloader, desc, 0

    def __iter__(self):
        for inputs, labels in progress(self.dataloader, desc=self.desc):
            self.seen += len(labels)
            yield inputs, labels


# --- (a) training ------------------------------------------------------------------------------

def train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler, num_epochs=25,
                *, verbose: bool = True) -> nn.Module:
    """Train ``model``; return it holding the weights of its best validation epoch.

    Every epoch runs a ``"train"`` phase (model in train mode; per batch: zero the gradients, forward,
    loss, backward, ``optimizer.step()``), steps ``scheduler`` once (after the epoch's optimizer
    steps, the order PyTorch requires), then a ``"val"`` phase (model in eval mode, no gradients,
    no optimizer step). The weights of the epoch with the highest validation accuracy (the first such
    epoch on a tie) are copied aside (``copy.deepcopy``) and loaded back at the end.

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
    num_epochs = positive_int("train_model", "num_epochs", num_epochs)
    start = time.perf_counter()
    history = {key: [] for key in HISTORY_KEYS}
    best_state = copy.deepcopy(model.state_dict())
    best_acc = -1.0
    best_epoch = 0
    for epoch in progress(range(num_epochs), desc="epochs"):
        for phase in ("train", "val"):
            batches = _Counted(dataloaders[phase], desc=f"epoch {epoch + 1} {phase}")
            running_loss, running_corrects = 0.0, 0    # summed over the phase's samples
            ### BEGIN SOLUTION
            model.train(phase == "train")
            for inputs, labels in batches:
                inputs, labels = inputs.to(device), labels.to(device)
                optimizer.zero_grad()
                with torch.set_grad_enabled(phase == "train"):
                    outputs = model(inputs)
                    loss = criterion(outputs, labels)
                    if phase == "train":
                        loss.backward()
                        optimizer.step()
                running_loss += loss.item() * inputs.size(0)
                running_corrects += int((outputs.argmax(dim=1) == labels).sum())
            if phase == "train" and scheduler is not None:
                scheduler.step()       # once per epoch, after the epoch's optimizer.step() calls
            ### END SOLUTION
            if batches.seen != dataset_sizes[phase]:
                raise ValueError(f"train_model: dataset_sizes[{phase!r}] is {dataset_sizes[phase]}, but the "
                                 f"{phase} dataloader yielded {batches.seen} samples")
            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects / dataset_sizes[phase]
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


# --- (b) pictures ------------------------------------------------------------------------------

def _validation_images(func: str, dataloaders, num_images: int, indices):
    """``(inputs, labels)`` of the validation images ``indices``, or of ``num_images`` spread evenly
    over the validation set (classes are often stored one after the other)."""
    dataset = dataloaders["val"].dataset
    if indices is None:
        indices = np.unique(np.linspace(0, len(dataset) - 1, min(num_images, len(dataset))).round().astype(int))
    elif len(indices) == 0 or not all(0 <= int(i) < len(dataset) for i in indices):
        raise ValueError(f"{func}: indices must be validation image indices in [0, {len(dataset)}); "
                         f"got {list(indices)[:10]}")
    inputs = torch.stack([dataset[int(i)][0] for i in indices])
    labels = [int(dataset[int(i)][1]) for i in indices]
    return inputs, labels


def visualize_model(device, dataloaders, model, class_names, num_images: int = 6, *, mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, columns: int = 3, title: str | None = None, indices=None):
    """Show ``num_images`` validation images captioned with the model's prediction and the true label.

    The images (given: spread evenly over the validation set, or the validation images ``indices``
    when given, a page of :func:`hwlib.explore.transfer_pager`) go through ``model`` in eval mode
    and without gradients; the model is left in the mode (train or eval) it was found in. The grid is
    drawn by :func:`hwlib.plots.show_predictions` (a caption is green when the prediction is right,
    red when wrong), which un-normalises the images with ``mean`` and ``std`` (those of the
    transforms; ImageNet's by default).

    Inputs:
    - device: where ``model`` is; the images are moved there.
    - dataloaders: dict with a ``"val"`` DataLoader (its ``dataset`` is indexed).
    - model: maps images to class scores (N, C).
    - class_names: the name of each class index.
    - num_images, columns, title: how many images, per row, and a title above the grid.

    Returns the figure.
    """
    num_images = positive_int("visualize_model", "num_images", num_images)
    inputs, labels = _validation_images("visualize_model", dataloaders, num_images, indices)
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    with torch.no_grad():
        preds = model(inputs.to(device)).argmax(dim=1).cpu().tolist()
    model.train(was_training)
    fig = show_predictions(inputs.numpy(), preds, labels, class_names, mean=mean, std=std, columns=columns,
                           title=title)
    ### END SOLUTION
    return fig


# --- (c), (d) the two transfer scenarios -------------------------------------------------------

def _settings(func: str, num_classes, pretrained) -> int:
    """Check the arguments every scenario shares; return ``num_classes`` as an int."""
    if isinstance(pretrained, nn.Module) or not callable(pretrained):
        raise TypeError(f"{func}: pretrained must be a function returning a fresh pretrained network (e.g. "
                        f"imagenet_resnet18, or lambda: copy.deepcopy(net) for a network net); got "
                        f"{type(pretrained).__name__}")
    return positive_int(func, "num_classes", num_classes)


def finetune(device, dataloaders, dataset_sizes, num_classes: int = 2, num_epochs: int = 25, *,
             pretrained=imagenet_resnet18, lr: float = 1e-3, momentum: float = 0.9, step_size: int = 7,
             gamma: float = 0.1, verbose: bool = True) -> nn.Module:
    """Fine-tuning: the pretrained network with a new last layer, every parameter trained.

    Instead of random weights, the network starts from ``pretrained()``; its head ``fc`` (an
    ``nn.Linear`` with ``num_ftrs = fc.in_features`` inputs: 512 for ResNet-18) is replaced by a new
    ``nn.Linear(num_ftrs, num_classes)``; the network moves to ``device``; then :func:`train_model`
    trains it with ``nn.CrossEntropyLoss()``, ``torch.optim.SGD`` over *all* its parameters (``lr``,
    ``momentum``) and ``torch.optim.lr_scheduler.StepLR(optimizer, step_size, gamma)``.

    Inputs:
    - device, dataloaders, dataset_sizes, num_epochs, verbose: passed on to :func:`train_model`.
    - num_classes: classes of the new task.
    - pretrained: a function returning a fresh pretrained network whose head is ``fc``; by default
      :func:`hwlib.transfer_setup.imagenet_resnet18` (the ImageNet ResNet-18 of the data root).
    - lr, momentum, step_size, gamma: the optimizer's and the scheduler's settings (the seed's by default).

    Returns what :func:`train_model` returns: the trained network (best-validation weights,
    ``model.history``).
    """
    num_classes = _settings("finetune", num_classes, pretrained)
    ### BEGIN SOLUTION
    model = pretrained()
    num_ftrs = model.fc.in_features
    model.fc = nn.Linear(num_ftrs, num_classes)
    model = model.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    model = train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler,
                        num_epochs=num_epochs, verbose=verbose)
    ### END SOLUTION
    return model


def freeze(device, dataloaders, dataset_sizes, num_classes: int = 2, num_epochs: int = 25, *,
           pretrained=imagenet_resnet18, lr: float = 1e-3, momentum: float = 0.9, step_size: int = 7,
           gamma: float = 0.1, verbose: bool = True) -> nn.Module:
    """A fixed feature extractor: the pretrained network frozen, only a new last layer trained.

    Starts from ``pretrained()`` as :func:`finetune` does, but first sets ``requires_grad = False`` on
    every one of its parameters; then the head ``fc`` is replaced by a new ``nn.Linear(num_ftrs,
    num_classes)`` (random weights; a new layer's parameters are trainable) and the network moves to
    ``device``. The optimizer (SGD) gets the new layer's parameters *only*; the criterion, the
    scheduler and the call of :func:`train_model` are those of :func:`finetune`. Batch-norm running
    statistics are buffers, not parameters: in train mode they still adapt, as in the seed.

    Inputs and returns as :func:`finetune`.
    """
    num_classes = _settings("freeze", num_classes, pretrained)
    ### BEGIN SOLUTION
    model = pretrained()
    for param in model.parameters():
        param.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    model = model.to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=lr, momentum=momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    model = train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler,
                        num_epochs=num_epochs, verbose=verbose)
    ### END SOLUTION
    return model

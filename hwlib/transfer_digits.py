"""The offline transfer experiment of Q5: from MNIST digits 0-4 to digits 5-9, with few labels.

Without the ImageNet weights (offline), notebook 05 runs the same functions
(:func:`hwlib.transfer.finetune`, :func:`hwlib.transfer.freeze`) on a network it pretrains itself:
:class:`SmallCNN` learns digits 0-4, then transfers to digits 5-9 with a few labels per class
(:func:`digit_transfer_datasets`), compared with the same network trained from scratch. Given code:
nothing here is for students to write.

Typical use::

    digits = digit_transfer_datasets(load_mnist(root), labels_per_class=10, generator=generator)
    loaders, sizes = make_dataloaders({"train": digits["source_train"], "val": digits["source_val"]})
    source = finetune(device, loaders, sizes, 5, pretrained=lambda: SmallCNN(num_classes=5))  # pretraining
    # then finetune(..., pretrained=lambda: copy.deepcopy(source)) on the target digits, or freeze(...)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .transfer_setup import per_class_subset
from .validation import positive_int

__all__ = ["SmallCNN", "digit_transfer_datasets"]


class SmallCNN(nn.Module):
    """A small CNN for 1x28x28 digits whose classifier head is ``fc``, as in ResNet.

    ``features`` (the backbone): conv3x3(16)-relu-maxpool2 - conv3x3(32)-relu-maxpool2 - flatten, giving
    32*7*7 = 1568 features; ``fc`` (the replaceable head): ``Linear(1568, num_classes)``. As in ResNet,
    the head reads the convolutional features directly (no hidden fully-connected layer that would
    specialise them to the pretraining classes), which is what makes a frozen backbone transfer.
    """

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Linear(32 * 7 * 7, positive_int("SmallCNN", "num_classes", num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def _digits(X, y, digits, limit, generator) -> torch.utils.data.TensorDataset:
    """The samples of ``digits`` (relabelled 0..len(digits)-1), at most ``limit`` of them, drawn at random."""
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.long)
    digits = torch.as_tensor(list(digits), dtype=torch.long)
    keep = torch.nonzero(torch.isin(y, digits)).flatten()
    if limit is not None and len(keep) > limit:
        keep = torch.sort(keep[torch.randperm(len(keep), generator=generator)[:limit]]).values
    relabel = torch.full((int(y.max()) + 1,), -1, dtype=torch.long)
    relabel[digits] = torch.arange(len(digits))
    return torch.utils.data.TensorDataset(X[keep], relabel[y[keep]])


def digit_transfer_datasets(mnist: dict, *, source_digits=(0, 1, 2, 3, 4), target_digits=(5, 6, 7, 8, 9),
                            labels_per_class: int = 10, max_source: int | None = None, max_eval: int | None = None,
                            generator: torch.Generator | None = None) -> dict:
    """Split MNIST into a source task (pretraining) and a target task with few labels.

    Inputs:
    - mnist: the dict of :func:`hwlib.data.load_mnist` (``X_train`` of shape (N, 1, 28, 28), ``y_train``,
      ``X_val``, ``y_val``, ``X_test``, ``y_test``).
    - source_digits, target_digits: the digits of each task (disjoint); labels become 0..len-1.
    - labels_per_class: labelled target training samples per class.
    - max_source: at most this many source training samples (None: all); ``max_eval``: at most this
      many samples in each validation/test set.
    - generator: a ``torch.Generator`` for the random draws.

    Returns a dict of ``TensorDataset``: ``source_train``, ``source_val`` (source digits of the training
    and validation splits), ``target_train`` (``labels_per_class`` per class from the training split),
    ``target_val``, ``target_test`` (target digits of the validation and test splits).
    """
    if set(source_digits) & set(target_digits):
        raise ValueError(f"digit_transfer_datasets: source_digits {tuple(source_digits)} and target_digits "
                         f"{tuple(target_digits)} must be disjoint")
    for key in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        if key not in mnist:
            raise ValueError(f"digit_transfer_datasets: mnist must have the key {key!r} (as load_mnist returns); "
                             f"got {sorted(mnist)}")
    target_pool = _digits(mnist["X_train"], mnist["y_train"], target_digits, None, generator)
    return {
        "source_train": _digits(mnist["X_train"], mnist["y_train"], source_digits, max_source, generator),
        "source_val": _digits(mnist["X_val"], mnist["y_val"], source_digits, max_eval, generator),
        "target_train": per_class_subset(target_pool, labels_per_class, generator),
        "target_val": _digits(mnist["X_val"], mnist["y_val"], target_digits, max_eval, generator),
        "target_test": _digits(mnist["X_test"], mnist["y_test"], target_digits, max_eval, generator),
    }

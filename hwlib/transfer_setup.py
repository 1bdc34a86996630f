"""Set-up for transfer learning (Q5): device, seeding, transforms, datasets, dataloaders, ResNet-18.

Given code, shared by the seed's experiment (ants vs bees with a pretrained ResNet-18) and the offline
digits experiment (:mod:`hwlib.transfer_digits`). What students write is in :mod:`hwlib.transfer`
(``train_model``, ``visualize_model``, ``finetune``, ``freeze``); nothing here calls it, so this module
sits below it.

Typical use (see ``notebooks/05_transfer_learning.ipynb``)::

    device = choose_device("auto")
    generator = seed_everything(0)
    datasets = hwlib.data.hymenoptera.load_hymenoptera(root, data_transforms())
    dataloaders, dataset_sizes = make_dataloaders(datasets, batch_size=4, generator=generator)
    model, source = load_resnet18(pretrained=True, data_root=root)   # or imagenet_resnet18(root)
    # ... model = hwlib.transfer.freeze(device, dataloaders, dataset_sizes, 2, pretrained=...)
    evaluate(model, dataloaders["val"], device)      # accuracy in [0, 1]
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data.download import DataError, fetch
from .data.hymenoptera import RESNET18_WEIGHTS_URL, verify_weights, weights_path

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "choose_device", "seed_everything", "data_transforms",
           "per_class_subset", "make_dataloaders", "load_resnet18", "imagenet_resnet18", "evaluate"]

# The channel means and standard deviations of ImageNet: what the pretrained weights expect as input.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- set-up: device, seeds, data -----------------------------------------------------------------

def choose_device(device="auto") -> torch.device:
    """The device to train on: ``"auto"`` picks CUDA when available, else the CPU.

    Inputs:
    - device: ``"auto"``, a device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``) or a ``torch.device``.

    Returns a ``torch.device``. Asking for CUDA where there is none raises ``ValueError``.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"choose_device: device must be 'auto', 'cpu', 'cuda[:N]' or a torch.device; got {device!r} ({exc})") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"choose_device: device {device!r} asked for CUDA, but torch sees no CUDA device; use 'auto' or 'cpu'")
    return chosen


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's ``random``, NumPy's global state and torch (CPU and CUDA) with ``seed``.

    Call it once, explicitly, at the top of an experiment (nothing in hwlib seeds on import). torch's
    global generator decides the initial weights of new layers (such as a new classifier head) and the
    random crops and flips of the transforms.

    Returns a ``torch.Generator`` seeded with ``seed``: pass it to :func:`make_dataloaders` (shuffling)
    and :func:`per_class_subset`.
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed_everything: seed must be a non-negative int; got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)   # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)


def data_transforms(image_size: int = 224, resize: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> dict:
    """The seed's transforms: augmentation for training, a deterministic center crop for validation.

    train: ``RandomResizedCrop(image_size)``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``;
    val: ``Resize(resize)``, ``CenterCrop(image_size)``, ``ToTensor()``, ``Normalize(mean, std)``, with
    ``resize`` defaulting to ``image_size * 256 / 224`` (256 for the seed's 224).
    """
    from torchvision import transforms as T

    if int(image_size) != image_size or image_size < 8:
        raise ValueError(f"data_transforms: image_size must be an int >= 8; got {image_size!r}")
    image_size = int(image_size)
    resize = round(image_size * 256 / 224) if resize is None else int(resize)
    if resize < image_size:
        raise ValueError(f"data_transforms: resize must be >= image_size ({image_size}); got {resize}")
    normalize = T.Normalize(list(mean), list(std))
    return {
        "train": T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), T.ToTensor(), normalize]),
        "val": T.Compose([T.Resize(resize), T.CenterCrop(image_size), T.ToTensor(), normalize]),
    }


def _labels_of(dataset) -> torch.Tensor:
    """The labels of an ImageFolder (``targets``), a TensorDataset (second tensor) or a Subset of them."""
    if isinstance(dataset, torch.utils.data.Subset):
        return _labels_of(dataset.dataset)[torch.as_tensor(dataset.indices, dtype=torch.long)]
    if hasattr(dataset, "targets"):
        return torch.as_tensor(dataset.targets)
    if isinstance(dataset, torch.utils.data.TensorDataset):
        return dataset.tensors[1]
    raise ValueError(f"per_class_subset: cannot find the labels of a {type(dataset).__name__}; "
                     "expected an ImageFolder, a TensorDataset or a Subset of one")


def per_class_subset(dataset, per_class: int, generator: torch.Generator | None = None):
    """A ``Subset`` with ``per_class`` samples of every class, drawn at random with ``generator``.

    Inputs:
    - dataset: an ``ImageFolder``, a ``TensorDataset`` (inputs, labels) or a ``Subset`` of one.
    - per_class: samples to keep per class (a class with fewer keeps them all).
    - generator: a ``torch.Generator`` (for example from :func:`seed_everything`).
    """
    if int(per_class) != per_class or per_class < 1:
        raise ValueError(f"per_class_subset: per_class must be a positive int; got {per_class!r}")
    labels = _labels_of(dataset)
    keep = []
    for label in torch.unique(labels):
        members = torch.nonzero(labels == label).flatten()
        order = torch.randperm(len(members), generator=generator)
        keep.append(members[order[: int(per_class)]])
    indices = torch.sort(torch.cat(keep)).values
    return torch.utils.data.Subset(dataset, indices.tolist())


def make_dataloaders(datasets: dict, batch_size: int = 4, generator: torch.Generator | None = None,
                     num_workers: int = 0, eval_batch_size: int | None = None) -> tuple[dict, dict]:
    """DataLoaders for ``{"train": ..., "val": ...}`` (and any other split): shuffled for ``train`` only.

    Returns ``(dataloaders, dataset_sizes)``: dicts keyed like ``datasets``, as
    :func:`hwlib.transfer.train_model` takes them. ``generator`` makes the shuffling reproducible; the splits other than ``train`` use
    ``eval_batch_size`` (default: ``batch_size``), which changes nothing but speed.
    """
    if "train" not in datasets or "val" not in datasets:
        raise ValueError(f"make_dataloaders: datasets must have 'train' and 'val' keys; got {sorted(datasets)}")
    eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
    for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"make_dataloaders: {name} must be a positive int; got {value!r}")
    dataloaders = {
        split: torch.utils.data.DataLoader(ds, batch_size=int(batch_size if split == "train" else eval_batch_size),
                                           shuffle=(split == "train"),
                                           generator=generator if split == "train" else None,
                                           num_workers=num_workers)
        for split, ds in datasets.items()
    }
    return dataloaders, {split: len(ds) for split, ds in datasets.items()}


# --- the pretrained network -----------------------------------------------------------------------

def _no_weights_hint(root) -> str:
    return (f"no weights: run `python -m hwlib.data fetch resnet18` online, or put {RESNET18_WEIGHTS_URL} "
            f"into {weights_path(root).parent}")


def load_resnet18(pretrained: bool = True, data_root=None, *, download: bool = False) -> tuple[nn.Module, str]:
    """A torchvision ResNet-18 (1000 ImageNet classes), with its ImageNet weights where they can be had.

    Looks for torchvision's weights file ``resnet18-f37072fd.pth`` in ``<data root>/weights/``, then in
    torch's hub cache (where torchvision's own download puts it); with ``download=True`` it fetches the
    file into ``<data root>/weights/`` when neither is there. A file found is verified (the SHA-256
    prefix in its name, as ``torch.hub`` checks it) and a corrupt one raises :class:`DataError`.

    Returns ``(model, source)``; ``source`` is ``"ImageNet weights (<file>)"`` or
    ``"random init (...)"`` saying why and how to get the weights.
    """
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    if not pretrained:
        return model, "random init (pretrained=False)"
    in_root = weights_path(data_root)
    in_hub_cache = Path(torch.hub.get_dir()) / "checkpoints" / in_root.name   # where torchvision downloads to
    candidates = [in_root, in_hub_cache]
    found = next((path for path in candidates if path.is_file()), None)
    if found is None and download:
        try:
            found = fetch("resnet18", data_root) / weights_path(data_root).name
        except DataError as exc:
            return model, f"random init ({_no_weights_hint(data_root)}; the download failed: {exc})"
    if found is None:
        return model, f"random init ({_no_weights_hint(data_root)})"
    verify_weights(found)
    try:
        state = torch.load(found, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # unpickling errors, or a state dict of another architecture
        raise DataError(f"{found} is not a ResNet-18 state dict ({type(exc).__name__}: {str(exc)[:200]}); "
                        "delete it and run `python -m hwlib.data fetch resnet18`") from None
    return model, f"ImageNet weights ({found})"


def imagenet_resnet18(data_root=None) -> nn.Module:
    """A fresh ResNet-18 with torchvision's ImageNet weights from the data root (see :func:`load_resnet18`).

    The default ``pretrained`` network of :func:`hwlib.transfer.finetune` and :func:`hwlib.transfer.freeze`.
    Raises :class:`DataError` saying how to get the weights when they are not there.
    """
    model, source = load_resnet18(pretrained=True, data_root=data_root)
    if not source.startswith("ImageNet weights"):
        raise DataError(f"imagenet_resnet18: {source}")
    return model


# --- measuring -------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: nn.Module, dataloader, device) -> float:
    """Accuracy in [0, 1] of ``model`` (in eval mode) on the ``(inputs, labels)`` batches of ``dataloader``."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for inputs, labels in dataloader:
        outputs = model(inputs.to(device))
        correct += int((outputs.argmax(dim=1).cpu() == labels).sum())
        total += labels.numel()
    model.train(was_training)
    if total == 0:
        raise ValueError("evaluate: dataloader yielded no samples")
    return correct / total


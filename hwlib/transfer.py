"""Transfer learning in PyTorch (Q5): fine-tune a pretrained network, or use it as a frozen feature extractor.

The seed's experiment: a torchvision ResNet-18 pretrained on ImageNet learns to tell ants from bees
(``hymenoptera_data``, 244 training images) in two ways:

* **fine-tuning** (:func:`finetune`): replace the classifier head by a new ``Linear(num_ftrs, 2)`` and
  train *all* parameters;
* **feature extraction** (:func:`freeze`): freeze every parameter of the backbone, replace the head, and
  train the head only (the optimizer sees the head's parameters only).

Both use :func:`train_model` (SGD lr 1e-3, momentum 0.9, ``StepLR(step_size=7, gamma=0.1)``, 25 epochs,
batch 4 in the seed). Without the ImageNet weights (offline), the same code runs a small transfer
experiment on MNIST digits instead: pretrain :class:`SmallCNN` on digits 0-4, transfer to digits 5-9
with a few labels per class (:func:`digit_transfer_datasets`).

Typical use (see ``notebooks/05_transfer_learning.ipynb``)::

    device = choose_device("auto")
    generator = seed_everything(0)
    datasets = hwlib.data.hymenoptera.load_hymenoptera(root, data_transforms())
    dataloaders, dataset_sizes = make_dataloaders(datasets, batch_size=4, generator=generator)
    model, source = load_resnet18(pretrained=True, data_root=root)
    model = train_transfer("freeze", model, dataloaders, dataset_sizes, device, num_classes=2)
    model.history["val_acc"]       # per-epoch curves; the model holds the best-validation weights

Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write.
"""

from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data.download import DataError
from .data.hymenoptera import RESNET18_WEIGHTS_URL, verify_weights, weights_path
from .progress import progress

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "HISTORY_KEYS", "choose_device", "seed_everything", "data_transforms",
    "per_class_subset", "make_dataloaders", "load_resnet18", "train_model", "evaluate", "finetune", "freeze",
    "trainable_parameters", "train_transfer", "visualize_model", "plot_history", "SmallCNN",
    "digit_transfer_datasets",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc")


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

    Returns ``(dataloaders, dataset_sizes)``: dicts keyed like ``datasets``, as :func:`train_model`
    takes them. ``generator`` makes the shuffling reproducible; the splits other than ``train`` use
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
        from .data.download import fetch

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


# --- training --------------------------------------------------------------------------------------

def train_model(device, dataloaders, dataset_sizes, model, criterion, optimizer, scheduler, num_epochs=25,
                *, verbose: bool = True) -> nn.Module:
    """Train ``model``; return it holding the weights of its best validation epoch.

    Every epoch runs a ``"train"`` phase (forward, loss, backward, ``optimizer.step()`` per batch), then
    steps ``scheduler`` once (after the epoch's optimizer steps, the order PyTorch requires), then a
    ``"val"`` phase (forward only, no gradients). The weights of the epoch with the highest validation
    accuracy (the first such epoch on a tie) are copied aside and loaded back at the end.

    Inputs:
    - device: a ``torch.device`` (see :func:`choose_device`); inputs and labels are moved there.
    - dataloaders: dict with ``"train"`` and ``"val"`` DataLoaders yielding ``(inputs, labels)``.
    - dataset_sizes: dict with the number of samples of each split (as :func:`make_dataloaders` gives).
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


def _check_num_classes(func: str, num_classes) -> int:
    if int(num_classes) != num_classes or num_classes < 1:
        raise ValueError(f"{func}: num_classes must be a positive int; got {num_classes!r}")
    return int(num_classes)


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
    num_classes = _check_num_classes("finetune", num_classes)
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
    num_classes = _check_num_classes("freeze", num_classes)
    old_head = _get_head("freeze", model, head)
    ### BEGIN SOLUTION
    for param in model.parameters():
        param.requires_grad = False
    num_ftrs = old_head.in_features
    _set_head(model, head, nn.Linear(num_ftrs, num_classes).to(old_head.weight.device))
    ### END SOLUTION
    return model


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


# --- pictures ---------------------------------------------------------------------------------------

def _to_image(tensor: torch.Tensor, mean, std) -> np.ndarray:
    """Undo ``Normalize(mean, std)``: a (C, H, W) tensor -> an (H, W, 3) or (H, W) array in [0, 1]."""
    channels = tensor.shape[0]
    mean = torch.as_tensor(mean, dtype=tensor.dtype).reshape(-1, 1, 1)
    std = torch.as_tensor(std, dtype=tensor.dtype).reshape(-1, 1, 1)
    if mean.shape[0] not in (1, channels) or std.shape[0] not in (1, channels):
        raise ValueError(f"visualize_model: mean and std need 1 or {channels} entries (one per channel); "
                         f"got {mean.shape[0]} and {std.shape[0]}")
    image = (tensor.cpu() * std + mean).clamp(0, 1)
    return image[0].numpy() if channels == 1 else image.permute(1, 2, 0).numpy()


@torch.no_grad()
def visualize_model(device, dataloaders, model, class_names, num_images: int = 6, *, mean=IMAGENET_MEAN,
                    std=IMAGENET_STD, columns: int = 3, title: str | None = None):
    """Show ``num_images`` validation images with the model's prediction and the true label.

    The images are spread evenly over the validation set (so classes stored one after the other all
    show up) and un-normalised with ``mean`` and ``std`` (those of the transforms; ImageNet's by
    default). A caption is green when the prediction is right, red when wrong. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if int(num_images) != num_images or num_images < 1:
        raise ValueError(f"visualize_model: num_images must be a positive int; got {num_images!r}")
    dataset = dataloaders["val"].dataset
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(int(num_images), len(dataset))).round().astype(int))
    inputs = torch.stack([dataset[i][0] for i in indices])
    labels = [int(dataset[i][1]) for i in indices]
    was_training = model.training
    model.eval()
    preds = model(inputs.to(device)).argmax(dim=1).cpu().tolist()
    model.train(was_training)
    columns = min(columns, len(indices))
    rows = -(-len(indices) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, pred, label in zip(axes.flat, inputs, preds, labels):
        ax.imshow(_to_image(image, mean, std), cmap="gray")
        ax.set_title(f"predicted: {class_names[pred]}\ntrue: {class_names[label]}",
                     color="green" if pred == label else "red", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(histories, title: str | None = None):
    """Loss and accuracy per epoch, train (dashed) vs val (solid).

    ``histories``: one ``model.history`` dict, or a dict ``{label: history}`` to compare runs.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if all(key in histories for key in HISTORY_KEYS):
        histories = {"": histories}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (label, history) in enumerate(histories.items()):
        missing = [key for key in HISTORY_KEYS if key not in history]
        if missing:
            raise ValueError(f"plot_history: history {label!r} lacks {missing}; expected the keys {HISTORY_KEYS}")
        epochs = np.arange(1, len(history["train_loss"]) + 1)
        color = f"C{i}"
        prefix = f"{label} " if label else ""
        for ax, quantity in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(epochs, history[f"train_{quantity}"], "--", color=color, label=f"{prefix}train")
            ax.plot(epochs, history[f"val_{quantity}"], "-", color=color, label=f"{prefix}val")
    ax_loss.set(xlabel="epoch", ylabel="loss (mean per sample)", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend(fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- the offline experiment: transfer between MNIST digits ------------------------------------------

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
        self.fc = nn.Linear(32 * 7 * 7, _check_num_classes("SmallCNN", num_classes))

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

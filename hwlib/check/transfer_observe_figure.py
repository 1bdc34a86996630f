"""The observing half of the ``visualize_model`` check: call it, read its figure back, record plain values.

The validation set is made of flat grey images, image ``i`` holding the value ``(i + 0.5) / N``
everywhere once un-normalised with :data:`MEAN` and :data:`STD` (which the check passes to
``visualize_model``), so a picture in the figure tells which validation image it shows. The network
(:class:`_Lookup`) predicts a known class for each image, different from its label for about half of
them, and records the mode it is called in and whether gradients are on. Nothing is judged here
(:mod:`hwlib.check.transfer` does it); every figure the call opened is closed again, so a check run
in a notebook draws nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import transfer
from ..transfer_setup import make_dataloaders

__all__ = ["CLASS_NAMES", "MEAN", "STD", "observe_visualize_model"]

# The class names the check draws from (distinct words, so a title names exactly one of them).
CLASS_NAMES = ("ant", "bee", "wasp", "moth", "beetle", "cricket", "termite", "hornet")
MEAN, STD = 0.25, 0.5     # the images' normalisation: a picture drawn without undoing it shows other values


class _Lookup(nn.Module):
    """Class scores read from the image's value: image ``i`` gets class ``classes[i]`` (one-hot scores,
    times a parameter so that gradients could flow); every call's (training, grad enabled) is recorded."""

    def __init__(self, classes: torch.Tensor, num_classes: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.classes, self.num_classes, self.calls = classes, num_classes, []

    def forward(self, x):
        self.calls.append((self.training, torch.is_grad_enabled()))
        index = ((x.flatten(1).mean(1) * STD + MEAN) * len(self.classes)).floor().long().clamp(0, len(self.classes) - 1)
        return nn.functional.one_hot(self.classes[index], self.num_classes).float() * self.scale


def _shown_index(image, count: int) -> int:
    """The validation image a drawn picture shows (-1: none of them)."""
    pixels = np.asarray(image, dtype=float)
    value = float(pixels.mean())
    index = int(np.floor(value * count))
    flat = pixels.size and float(np.ptp(pixels)) < 0.1 / count
    return index if flat and 0 <= index < count and abs(value - (index + 0.5) / count) < 0.25 / count else -1


def _figure_of(returned, before: set):
    """The figure to read: the one returned, else the newest figure the call opened."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    if isinstance(returned, Figure):
        return returned
    new = [n for n in plt.get_fignums() if n not in before]
    return plt.figure(new[-1]) if new else None


def observe_visualize_model(num_images: int, num_classes: int, num_val: int, seed: int) -> dict:
    """Call ``transfer.visualize_model`` twice (the network in train mode, then in eval mode) on
    ``num_val`` validation images of ``num_classes`` classes; record the first figure's pictures and
    titles with the network's prediction and the label of each picture, the modes left behind, the
    modes and grad modes of the network's calls, and whether any gradient was recorded."""
    import matplotlib.pyplot as plt

    generator = torch.Generator().manual_seed(seed)
    names = [CLASS_NAMES[i] for i in torch.randperm(len(CLASS_NAMES), generator=generator)[:num_classes].tolist()]
    labels = torch.randint(num_classes, (num_val,), generator=generator)
    shift = torch.randint(1, num_classes, (num_val,), generator=generator)
    same = torch.rand(num_val, generator=generator) < 0.5
    classes = torch.where(same, labels, (labels + shift) % num_classes)
    values = (torch.arange(num_val, dtype=torch.float32) + 0.5) / num_val
    images = ((values - MEAN) / STD)[:, None, None, None].expand(num_val, 1, 6, 6).clone()
    loaders, _ = make_dataloaders({"train": torch.utils.data.TensorDataset(images, labels),
                                   "val": torch.utils.data.TensorDataset(images, labels)}, batch_size=4,
                                  generator=generator)
    model = _Lookup(classes, num_classes)
    obs = {"num_val": num_val, "class_names": names}
    for start_training in (True, False):
        model.train(start_training)
        before = set(plt.get_fignums())
        try:
            returned = transfer.visualize_model(torch.device("cpu"), loaders, model, names, num_images=num_images,
                                                mean=(MEAN,), std=(STD,))
            fig = _figure_of(returned, before)
            if start_training:
                obs["returned_figure"] = fig is returned and fig is not None
                shown = [ax for ax in (fig.axes if fig is not None else []) if ax.images]
                obs["titles"] = [ax.get_title() for ax in shown]
                obs["shown"] = [_shown_index(ax.images[0].get_array(), num_val) for ax in shown]
                obs["predicted"] = [names[int(classes[i])] if i >= 0 else "" for i in obs["shown"]]
                obs["true"] = [names[int(labels[i])] if i >= 0 else "" for i in obs["shown"]]
        finally:
            for number in set(plt.get_fignums()) - before:
                plt.close(number)
        obs["left_training" if start_training else "left_eval"] = bool(model.training)
    obs["calls/training"] = [bool(t) for t, _ in model.calls]
    obs["calls/grad"] = [bool(g) for _, g in model.calls]
    obs["grad_recorded"] = model.scale.grad is not None
    return obs

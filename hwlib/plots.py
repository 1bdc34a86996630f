"""Plots for the notebooks: training curves (a Solver's, a transfer run's history), sweeps, image grids
(filters, digits) and images captioned with a model's predictions.

Every function draws on a new figure (or on the axes you pass) and returns the figure; nothing
here changes matplotlib's global settings (``rcParams``), on import or otherwise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["moving_average", "plain_log_axis", "plot_loss", "plot_training", "plot_sweep", "show_images",
           "show_filters", "plot_history", "show_predictions"]


def _plt():
    import matplotlib.pyplot as plt  # imported on first use: importing hwlib stays light
    return plt


def _axes(ax, figsize):
    """``(fig, ax)``: the axes passed in and their figure, or a new figure of ``figsize`` with one axes."""
    if ax is None:
        return _plt().subplots(figsize=figsize)
    return ax.figure, ax


def moving_average(values, window: int) -> np.ndarray:
    """Moving average over ``window`` points, shorter at the start, for noisy per-iteration losses.

    Entry i averages ``values[max(0, i - window + 1)]`` ... ``values[i]``: one value per input
    value, so the average plots on the same x axis as the values.
    """
    values = np.asarray(values, dtype=np.float64)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"moving_average: window must be a positive integer; got {window!r}")
    if window == 1 or len(values) < 2:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)


def plain_log_axis(ax, axis: str = "y") -> None:
    """Put ``ax``'s ``axis`` on a log scale whose tick labels are plain numbers (2.4, 0.01, 300).

    Matplotlib writes them as powers of ten by default, so a loss spanning less than a decade (one
    epoch's, a fine-tuned model's) gets an axis of ``2.4x10^0``-style labels. Which ticks are labelled
    stays matplotlib's choice (fewer minor labels on a wide range).
    """
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):
        def __call__(self, x, pos=None):
            return f"{x:.4g}" if super().__call__(x, pos) else ""

    getattr(ax, f"set_{axis}scale")("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
    target.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def plot_loss(losses, per_epoch: int | None = None, smooth: int | None = None, log_loss: bool = False,
              target: float | None = None, title: str = "training loss", ax=None):
    """Training loss per iteration: the minibatch losses and, with ``smooth``, their moving average.

    Inputs:
    - losses: one loss per iteration (e.g. ``solver.loss_history``)
    - per_epoch: iterations per epoch; the x axis then counts epochs (None: iterations)
    - smooth: moving-average window, in iterations (None: no average)
    - log_loss: draw the loss on a log scale (shows progress once the loss is small)
    - target: a loss to reach, drawn as a dashed line (e.g. 0.1)
    - title: the title of the axes
    - ax: matplotlib axes to draw on (None: a new figure)

    Returns the figure.
    """
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError(f"plot_loss: losses must be a non-empty 1-D sequence (one loss per iteration); "
                         f"got shape {losses.shape}")
    fig, ax = _axes(ax, (6.5, 3.5))
    x = np.arange(1, losses.size + 1) / (per_epoch or 1)
    if smooth is None:
        ax.plot(x, losses, label="minibatch loss")
    else:
        ax.plot(x, losses, lw=0.6, alpha=0.35, label="minibatch loss")
        ax.plot(x, moving_average(losses, smooth), lw=1.5, label=f"moving average ({smooth} it.)")
    if target is not None:
        ax.axhline(target, color="gray", ls="--", lw=1, label=f"{target:g}")
    ax.set(xlabel="epoch" if per_epoch else "iteration", ylabel="training loss", title=title)
    if log_loss:
        plain_log_axis(ax)
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_training(solver, title: str | None = None, smooth: int | None = None, log_loss: bool = False,
                  zoom: bool = True):
    """Loss per iteration (raw and smoothed) and train/validation accuracy per epoch of a trained Solver.

    Inputs:
    - solver: a :class:`hwlib.solver.Solver` after ``train()``
    - title: figure title (default: the model's class name)
    - smooth: moving-average window for the loss (default: a tenth of an epoch, at least 1 iteration)
    - log_loss: draw the loss on a log scale (shows progress once the loss is small)
    - zoom: fit the accuracy axis to the measurements after the first one (taken after a single
      iteration, near chance), when that first one would squash the others into a thin band

    Returns the matplotlib figure (two panels: loss, accuracy).
    """
    losses = np.asarray(solver.loss_history, dtype=np.float64)
    if losses.size == 0:
        raise ValueError("plot_training: solver.loss_history is empty; call solver.train() first")
    per_epoch = max(solver.num_train // solver.batch_size, 1)
    if smooth is None:
        smooth = max(1, per_epoch // 10)
    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_loss(losses, per_epoch=per_epoch, smooth=smooth, log_loss=log_loss,
              title="loss" + (" (log scale)" if log_loss else ""), ax=ax_loss)
    if solver.val_acc_history:
        at = np.asarray(solver.check_iterations, dtype=np.float64) / per_epoch
        curves = [(solver.train_acc_history, "train (subsample)")] if solver.train_acc_history else []
        curves.append((solver.val_acc_history, "validation"))
        for values, label in curves:
            ax_acc.plot(at, values, "o-", label=label)
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        later = np.concatenate([np.asarray(v[1:], dtype=np.float64) for v, _ in curves])
        first = min(v[0] for v, _ in curves)
        if zoom and later.size >= 2:
            low, high = later.min(), max(later.max(), 1.0)
            if first < low - 2 * (high - low):   # the first point would squash the rest
                margin = 0.1 * (high - low) + 1e-3
                ax_acc.set_ylim(low - margin, high + margin)
                ax_acc.set_title("accuracy (first point, near chance, off the axis)")
        ax_acc.legend(loc="lower right")
    else:
        ax_acc.set_axis_off()
        ax_acc.text(0.5, 0.5, "no validation set", ha="center", va="center", transform=ax_acc.transAxes)
    ax_acc.grid(alpha=0.3)
    fig.suptitle(title if title is not None else type(solver.model).__name__)
    fig.tight_layout()
    return fig


def plot_sweep(values, scores, xlabel: str, ylabel: str = "validation accuracy", best=None, logx: bool = True,
               title: str | None = None, ax=None):
    """One score per setting of a hyperparameter (e.g. validation accuracy per hidden size).

    ``best`` (one of ``values``) is marked; ``logx`` uses a log-2 axis for sizes that double.
    Returns the figure.
    """
    values, scores = np.asarray(values), np.asarray(scores, dtype=np.float64)
    if values.shape != scores.shape or values.ndim != 1 or values.size == 0:
        raise ValueError(f"plot_sweep: values and scores must be 1-D of the same length; got shapes "
                         f"{values.shape} and {scores.shape}")
    fig, ax = _axes(ax, (5.5, 3.8))
    ax.plot(values, scores, "o-")
    if best is not None:
        i = int(np.flatnonzero(values == best)[0])
        ax.plot([values[i]], [scores[i]], "r*", ms=14, label=f"best: {best}")
        ax.legend(loc="lower right")
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(values, [str(v) for v in values])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title or f"{ylabel} vs {xlabel}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def show_images(images, titles=None, ncols: int = 8, scale: str = "each", cmap: str = "gray",
                size: float = 1.3, suptitle: str | None = None):
    """A grid of grey-scale images.

    Inputs:
    - images: (N, H, W) or (N, 1, H, W) array (one channel; for multi-channel kernels show one
      channel at a time)
    - titles: optional list of N strings shown above the images
    - ncols: images per row
    - scale: "each" stretches every image to its own min..max (filters), "all" uses one common range
      (digits: comparable brightness)
    - size: inches per image

    Returns the figure.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"show_images: images must have shape (N, H, W) or (N, 1, H, W) with N >= 1; "
                         f"got shape {np.shape(images)}")
    if scale not in ("each", "all"):
        raise ValueError(f"show_images: scale must be 'each' or 'all'; got {scale!r}")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"show_images: titles must have one entry per image ({len(images)}); got {len(titles)}")
    n = len(images)
    ncols = max(1, min(int(ncols), n))
    nrows = -(-n // ncols)
    vmin, vmax = (float(images.min()), float(images.max())) if scale == "all" else (None, None)
    plt = _plt()
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.25 * nrows if titles else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_filters(W, ncols: int = 8, channel: int = 0, suptitle: str | None = None):
    """Convolution kernels W (F, C, k, k) as a grid, channel ``channel`` of each, each scaled to its own range."""
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"show_filters: W must have shape (F, C, k, k); got shape {W.shape}")
    if not 0 <= channel < W.shape[1]:
        raise ValueError(f"show_filters: channel must be in [0, {W.shape[1]}); got {channel}")
    return show_images(W[:, channel], ncols=ncols, scale="each", size=0.9,
                       suptitle=suptitle or f"{W.shape[0]} learned {W.shape[2]}x{W.shape[3]} filters")


# --- transfer learning (Q5) -------------------------------------------------------------------------

# The curves of plot_history: per epoch, loss and accuracy of each phase (the keys train_model records).
_HISTORY_CURVES = ("loss", "acc")
_HISTORY_PHASES = ("train", "val")


def plot_history(histories, title: str | None = None):
    """Loss and accuracy per epoch, train (dashed) vs val (solid).

    ``histories``: one history dict (``model.history`` of :func:`hwlib.transfer.train_model`, keys
    ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``), or a dict ``{label: history}`` to compare
    runs. Returns the matplotlib figure.
    """
    keys = tuple(f"{phase}_{curve}" for curve in _HISTORY_CURVES for phase in _HISTORY_PHASES)
    if all(key in histories for key in keys):
        histories = {"": histories}
    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (label, history) in enumerate(histories.items()):
        missing = [key for key in keys if key not in history]
        if missing:
            raise ValueError(f"plot_history: history {label!r} lacks {missing}; expected the keys {keys}")
        epochs = np.arange(1, len(history["train_loss"]) + 1)
        color = f"C{i}"
        prefix = f"{label} " if label else ""
        for ax, curve in zip((ax_loss, ax_acc), _HISTORY_CURVES):
            ax.plot(epochs, history[f"train_{curve}"], "--", color=color, label=f"{prefix}train")
            ax.plot(epochs, history[f"val_{curve}"], "-", color=color, label=f"{prefix}val")
    ax_loss.set(xlabel="epoch", ylabel="loss (mean per sample)", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend(fontsize=8)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _unnormalize(image, mean, std) -> np.ndarray:
    """Undo ``Normalize(mean, std)``: a (C, H, W) array -> an (H, W, 3) or (H, W) array in [0, 1]."""
    channels = image.shape[0]
    mean = np.asarray(mean, dtype=image.dtype).reshape(-1, 1, 1)
    std = np.asarray(std, dtype=image.dtype).reshape(-1, 1, 1)
    if mean.shape[0] not in (1, channels) or std.shape[0] not in (1, channels):
        raise ValueError(f"show_predictions: mean and std need 1 or {channels} entries (one per channel); "
                         f"got {mean.shape[0]} and {std.shape[0]}")
    image = np.clip(image * std + mean, 0, 1)
    return image[0] if channels == 1 else image.transpose(1, 2, 0)


def show_predictions(images, predicted, true, class_names, *, mean=(0.0,), std=(1.0,), columns: int = 3,
                     title: str | None = None):
    """A grid of normalised images, each captioned with its predicted and true class.

    Inputs:
    - images: (N, C, H, W) array, normalised as ``Normalize(mean, std)`` left them (C is 1 or 3)
    - predicted, true: N class indices each
    - class_names: the name of each class index
    - mean, std: the normalisation to undo (one value, or one per channel)
    - columns: images per row

    A caption is green when the prediction is right, red when wrong. Returns the figure.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"show_predictions: images must have shape (N, C, H, W) with N >= 1; got shape {images.shape}")
    if not len(predicted) == len(true) == len(images):
        raise ValueError(f"show_predictions: predicted and true need one entry per image ({len(images)}); "
                         f"got {len(predicted)} and {len(true)}")
    columns = max(1, min(int(columns), len(images)))
    rows = -(-len(images) // columns)
    plt = _plt()
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, pred, label in zip(axes.flat, images, predicted, true):
        ax.imshow(_unnormalize(image, mean, std), cmap="gray")
        ax.set_title(f"predicted: {class_names[pred]}\ntrue: {class_names[label]}",
                     color="green" if pred == label else "red", fontsize=10)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

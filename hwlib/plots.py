"""Plots for the notebooks: training curves of a Solver, sweeps, and image grids (filters, digits).

Every function draws on a new figure (or on the axes you pass) and returns the figure; nothing
here changes matplotlib's global settings (``rcParams``), on import or otherwise.
"""

from __future__ import annotations

import numpy as np

__all__ = ["plot_training", "plot_sweep", "show_images", "show_filters"]


def _plt():
    import matplotlib.pyplot as plt  # imported on first use: importing hwlib stays light
    return plt


def _smooth(values, window):
    """Moving average over ``window`` points (shorter at the start), for noisy per-iteration losses."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) < 2:
        return values
    csum = np.cumsum(np.insert(values, 0, 0.0))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)


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
    epochs = np.arange(1, losses.size + 1) / per_epoch
    ax_loss.plot(epochs, losses, lw=0.6, alpha=0.35, label="minibatch loss")
    ax_loss.plot(epochs, _smooth(losses, smooth), lw=1.5, label=f"moving average ({smooth} it.)")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss" + (" (log scale)" if log_loss else ""))
    if log_loss:
        ax_loss.set_yscale("log")
    ax_loss.legend(loc="upper right")
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
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
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
    plt = _plt()
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
    else:
        fig = ax.figure
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

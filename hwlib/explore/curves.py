"""Learning curves: redrawn every epoch while a Solver trains (Q3), and a hidden-size sweep browser (Q2).

* :func:`train_live` trains a :class:`hwlib.solver.Solver` and shows its loss and accuracy curves:
  redrawn at the end of every epoch when a person watches the notebook live, drawn once at the
  end otherwise (executed notebooks, the report, tests, grading: no output is left half drawn).
* :func:`sweep_explorer`: one trained Solver per setting of a hyperparameter (the hidden size M of
  Q2); a selector picks the setting whose training and validation curves are drawn, beside the
  validation accuracy of every setting.
"""

from __future__ import annotations

import base64

import numpy as np

from ..plots import moving_average, plain_log_axis, plot_training
from ..progress import live_display
from ._common import Explorer, css_class, figure_png, picture_widget, plt, show_static

__all__ = ["LiveCurves", "train_live", "SweepExplorer", "sweep_explorer"]


class LiveCurves:
    """A Solver's ``on_epoch`` callback drawing :func:`hwlib.plots.plot_training` into one output.

    Live, the output is created when training starts and redrawn every epoch (an IPython display
    handle: no widget needed, and the last drawing is what the notebook keeps); otherwise nothing
    is drawn until :meth:`finish`, which shows the final curves once.
    """

    def __init__(self, title: str | None = None, log_loss: bool = False, live: bool | None = None):
        self.title, self.log_loss = title, log_loss
        self.live = live_display() if live is None else live
        self.handle = None
        self.redraws = 0

    def _show(self, solver):
        from IPython.display import display

        if self.handle is None:
            waiting = "training: the curves appear after the first epoch"
            self.handle = display({"text/html": f'<div class="{css_class("curves")}">{waiting}</div>',
                                   "text/plain": waiting}, raw=True, display_id=True)
        if solver is not None and solver.loss_history:
            png = figure_png(plot_training(solver, title=self.title, log_loss=self.log_loss))
            self.handle.update({"image/png": base64.b64encode(png).decode("ascii"), "text/plain": self.text(solver)},
                               metadata={"hwlib": "curves"}, raw=True)
            self.redraws += 1

    def text(self, solver) -> str:
        """The curves in words (the plain-text form of the picture)."""
        text = (f"learning curves{f' of {self.title}' if self.title else ''}: epoch {solver.epoch}, "
                f"{len(solver.loss_history)} iterations, last loss {solver.loss_history[-1]:.4f}")
        if solver.val_acc_history:
            text += f", validation accuracy {solver.val_acc_history[-1]:.4f} (best {solver.best_val_acc:.4f})"
        return text

    def start(self):
        if self.live:
            self._show(None)

    def __call__(self, solver):
        if self.live:
            self._show(solver)

    def finish(self, solver):
        if self.live:
            self._show(solver)
        else:
            show_static(plot_training(solver, title=self.title, log_loss=self.log_loss), self.text(solver))


def train_live(solver, title: str | None = None, log_loss: bool = False) -> None:
    """``solver.train()`` with its learning curves on show (see :class:`LiveCurves`).

    Returns None, so that a cell ending with ``train_live(solver)`` shows the curves and nothing under
    them; the trained ``solver`` is the one passed in.
    """
    curves = LiveCurves(title=title, log_loss=log_loss)
    previous = solver.on_epoch

    def on_epoch(s):
        curves(s)
        if previous is not None:
            previous(s)

    solver.on_epoch = on_epoch
    curves.start()
    try:
        solver.train()
    finally:
        solver.on_epoch = previous
    curves.finish(solver)


class SweepExplorer(Explorer):
    """See the module docstring: ``solvers`` maps each setting (e.g. a hidden size) to its trained Solver."""

    css = "sweep"
    name = "sweep explorer"

    def __init__(self, solvers: dict, best=None, xlabel: str = "hidden size M"):
        if not solvers or any(not s.loss_history for s in solvers.values()):
            raise ValueError("sweep_explorer: solvers must map settings to trained Solvers (call train() first)")
        self.solvers, self.xlabel = dict(solvers), xlabel
        self.settings = list(self.solvers)
        scores = [s.best_val_acc or 0.0 for s in self.solvers.values()]
        self.best = best if best is not None else self.settings[int(np.argmax(scores))]
        self.selected = self.best

    def figure(self):
        """Three panels: the sweep (the selected setting circled), accuracy curves, the selected loss.

        Drawn directly rather than through :mod:`hwlib.plots` (whose functions each run a tight
        layout): a static explorer should cost a notebook little.
        """
        fig, (ax_sweep, ax_acc, ax_loss) = plt().subplots(1, 3, figsize=(13, 3.6))  # 936 px: never shrunk
        scores = [self.solvers[m].best_val_acc or 0.0 for m in self.settings]
        positions = np.arange(len(self.settings))
        ax_sweep.plot(positions, scores, "o-")
        best, chosen = self.settings.index(self.best), self.settings.index(self.selected)
        ax_sweep.plot([best], [scores[best]], "r*", ms=14, label=f"best: {self.best}")
        ax_sweep.plot([chosen], [scores[chosen]], "o", ms=14, mfc="none", mec="black", mew=2, label="shown")
        ax_sweep.set_xticks(positions, [str(m) for m in self.settings])
        ax_sweep.set(xlabel=self.xlabel, ylabel="best validation accuracy", title="the sweep")
        ax_sweep.legend(loc="lower right", fontsize=8)
        for k, m in enumerate(self.settings):
            solver = self.solvers[m]
            per_epoch = max(solver.num_train // solver.batch_size, 1)
            at = np.asarray(solver.check_iterations, dtype=float) / per_epoch
            selected = m == self.selected
            ax_acc.plot(at, solver.val_acc_history, "-", color=f"C{k}", lw=2.5 if selected else 0.8,
                        alpha=1 if selected else 0.5, label=f"{m}")
            if selected and solver.train_acc_history:
                ax_acc.plot(at, solver.train_acc_history, "--", color=f"C{k}", lw=1.5, label=f"{m} train")
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title=f"validation (solid), training (dashed): {self.selected}")
        ax_acc.legend(fontsize=7, ncol=2, loc="lower right")
        solver = self.solvers[self.selected]
        per_epoch = max(solver.num_train // solver.batch_size, 1)
        losses = np.asarray(solver.loss_history, dtype=float)
        x = np.arange(1, losses.size + 1) / per_epoch
        ax_loss.plot(x, losses, lw=0.6, alpha=0.4, label="minibatch loss")
        ax_loss.plot(x, moving_average(losses, max(per_epoch // 10, 1)), lw=1.5, label="moving average")
        ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"training loss, {self.xlabel} = {self.selected}")
        plain_log_axis(ax_loss)
        ax_loss.legend(loc="upper right", fontsize=8)
        for ax in (ax_sweep, ax_acc, ax_loss):
            ax.grid(alpha=0.3)
        fig.subplots_adjust(left=0.05, right=0.99, bottom=0.15, top=0.9, wspace=0.25)
        return fig

    def build(self):
        import ipywidgets as widgets

        pick = widgets.ToggleButtons(options=[(str(m), m) for m in self.settings], value=self.selected,
                                     description=self.xlabel, style={"button_width": "auto"})
        picture = picture_widget(figure_png(self.figure()))
        caption = widgets.HTML()
        caption.add_class("hwlib-formula")

        def choose(change):
            self.selected = change["new"]
            picture.value = figure_png(self.figure())
            caption.value = self.caption()
            self.publish()

        pick.observe(choose, names="value")
        caption.value = self.caption()
        return widgets.VBox([pick, picture, caption])

    def caption(self) -> str:
        solver = self.solvers[self.selected]
        mark = " (chosen on validation)" if self.selected == self.best else ""
        return (f"{self.xlabel} = {self.selected}{mark}: best validation accuracy {solver.best_val_acc:.4f}, "
                f"final training loss {np.mean(solver.loss_history[-10:]):.4f} (mean of the last 10 iterations)")


def sweep_explorer(solvers: dict, best=None, xlabel: str = "hidden size M") -> SweepExplorer:
    """The sweep explorer (see the module docstring); display it as the last line of a cell."""
    return SweepExplorer(solvers, best, xlabel)

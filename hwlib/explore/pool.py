"""The max-pool explorer (Q1.5, Q3): each window's winner and where its gradient goes, on your code.

A slider steps through the pooling windows in the order the output is stored (row-major). For the
current window the figure marks its maximum (the *first* one in row-major order when several
entries tie, as ``max_pool_backward`` must choose; the other tied entries are crossed out), and
the gradient dY of that window going to the winner's pixel; dX fills in window by window, so where
windows overlap a pixel that wins several windows adds up their gradients.

The values come from your ``hwlib.layers.max_pool_forward`` / ``max_pool_backward`` and, beside
them, from a reference written here with NumPy loops (independent of your code). A stub shows its
``NotImplementedError`` message; a wrong value shows in red beside the right one.
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ._common import (Explorer, add_notes, figure_png, grid_figure, mark_cells, picture_widget, student_call,
                      verdict_html)

__all__ = ["PoolExplorer", "pool_explorer", "TIES_INPUT", "DEFAULT_POOLS", "reference_pool"]

# Ties (two 9s, two 7s, two 8s) and, with overlapping windows, pixels that win several windows.
TIES_INPUT = np.array([[1, 5, 2, 0, 3, 1],
                       [3, 9, 4, 7, 7, 2],
                       [9, 0, 6, 2, 1, 0],
                       [4, 8, 8, 5, 0, 6],
                       [2, 1, 3, 6, 4, 6],
                       [0, 2, 1, 3, 5, 2]], dtype=float)
DEFAULT_POOLS = {
    "2x2, stride 1 (overlapping)": {"pool_height": 2, "pool_width": 2, "stride": 1},
    "2x2, stride 2 (tiling, as in the ConvNet)": {"pool_height": 2, "pool_width": 2, "stride": 2},
    "4x4, stride 2 (overlapping)": {"pool_height": 4, "pool_width": 4, "stride": 2},
}


def reference_pool(x, pool):
    """``(out, winners)``: the max of every window and the (row, column) of its first maximum."""
    ph, pw, s = pool["pool_height"], pool["pool_width"], pool["stride"]
    Ho, Wo = (x.shape[0] - ph) // s + 1, (x.shape[1] - pw) // s + 1
    out, winners = np.zeros((Ho, Wo)), []
    for i in range(Ho):
        for j in range(Wo):
            window = x[i * s:i * s + ph, j * s:j * s + pw]
            a, b = np.unravel_index(np.argmax(window), window.shape)  # argmax: the first maximum
            out[i, j] = window[a, b]
            winners.append((i * s + int(a), j * s + int(b)))
    return out, winners


class PoolExplorer(Explorer):
    """See the module docstring. ``x`` is a 2-D array, ``pools`` maps names to pool_param dicts."""

    css = "pool"
    name = "max-pool explorer"

    def __init__(self, x=None, pools=None, position: int = 5):
        self.x = np.asarray(TIES_INPUT if x is None else x, dtype=float)
        if self.x.ndim != 2:
            raise ValueError(f"pool_explorer: x must be a 2-D array; got shape {self.x.shape}")
        self.pools = dict(pools or DEFAULT_POOLS)
        self.pool = next(iter(self.pools))
        self.position = int(position)
        self._cases = {}

    def case(self) -> dict:
        if self.pool not in self._cases:
            pool = self.pools[self.pool]
            out, winners = reference_pool(self.x, pool)
            dY = np.arange(1, out.size + 1, dtype=float).reshape(out.shape)  # window k sends k: sums stay readable
            dX = np.zeros_like(self.x)
            for g, (r, c) in zip(dY.ravel(), winners):
                dX[r, c] += g
            yours, message = student_call(layers.max_pool_forward, self.x[None, None], pool)
            your_dx = None
            if message is None:
                your_dx, message = student_call(layers.max_pool_backward, dY[None, None], yours[1])
                yours = np.asarray(yours[0])[0, 0]
                your_dx = None if message else np.asarray(your_dx)[0, 0]
            self._cases[self.pool] = {"out": out, "winners": winners, "dY": dY, "dX": dX, "yours": yours,
                                      "your_dx": your_dx, "message": message}
        return self._cases[self.pool]

    def state(self) -> dict:
        case = self.case()
        pool = self.pools[self.pool]
        ph, pw, s = pool["pool_height"], pool["pool_width"], pool["stride"]
        self.position = min(max(self.position, 0), case["out"].size - 1)
        i, j = np.unravel_index(self.position, case["out"].shape)
        top, left = int(i) * s, int(j) * s
        window = self.x[top:top + ph, left:left + pw]
        r, c = case["winners"][self.position]
        ties = [(top + int(a), left + int(b)) for a, b in np.argwhere(window == window.max()) if (top + a, left + b) != (r, c)]
        sofar = [k for k, w in enumerate(case["winners"][:self.position + 1]) if w == (r, c)]
        text = (f"window {self.position + 1} (rows {top + 1}-{top + ph}, columns {left + 1}-{left + pw}): "
                f"max {window.max():g} at ({r + 1}, {c + 1})")
        if ties:
            text += (" -- a tie with " + ", ".join(f"({a + 1}, {b + 1})" for a, b in ties)
                     + ": the first maximum in row-major order wins")
        text += (f". Its gradient dY = {case['dY'].flat[self.position]:g} goes to dX[{r + 1}, {c + 1}], which holds "
                 + " + ".join(f"{case['dY'].flat[k]:g}" for k in sofar)
                 + (f" = {sum(case['dY'].flat[k] for k in sofar):g} so far" if len(sofar) > 1 else " so far"))
        verdict = self._verdict(case, (int(i), int(j)), (r, c))
        return {"window": (top, left, ph, pw), "winner": (r, c), "ties": ties, "text": text, "verdict": verdict}

    @staticmethod
    def _verdict(case, cell, pixel):
        if case["message"] is not None:
            return [("bad", case["message"])]
        yours, your_dx = np.asarray(case["yours"], dtype=float), np.asarray(case["your_dx"], dtype=float)
        if yours.shape != case["out"].shape or your_dx.shape != case["dX"].shape:
            return [("bad", f"your shapes: out {yours.shape}, dx {your_dx.shape}; expected "
                            f"{case['out'].shape} and {case['dX'].shape}")]
        lines = [("ok" if yours[cell] == case["out"][cell] else "bad",
                  f"your max_pool_forward here: {yours[cell]:g}   reference: {case['out'][cell]:g}")]
        good = np.allclose(your_dx, case["dX"])
        lines.append(("ok" if good else "bad", f"your max_pool_backward: dX[{pixel[0] + 1}, {pixel[1] + 1}] = "
                      f"{your_dx[pixel]:g} with every window's gradient; reference {case['dX'][pixel]:g}"
                      + ("" if good else f"; dX differs at {int((~np.isclose(your_dx, case['dX'])).sum())} pixels")))
        return lines

    def figure(self, notes: bool = True):
        from matplotlib.patches import Circle

        case, state = self.case(), self.state()
        top, left, ph, pw = state["window"]
        r, c = state["winner"]
        sofar = np.zeros_like(self.x)
        for g, (a, b) in zip(case["dY"].ravel()[:self.position + 1], case["winners"][:self.position + 1]):
            sofar[a, b] += g
        filled = np.where(np.arange(case["out"].size).reshape(case["out"].shape) <= self.position, case["out"], np.nan)
        cell = np.unravel_index(self.position, case["out"].shape)
        fig, axes = grid_figure(
            [{"values": self.x, "title": "input X: window and its winner", "cmap": "Greens", "symmetric": False},
             {"values": filled, "title": "Y = max of each window", "cmap": "Greens", "symmetric": False},
             {"values": case["dY"], "title": "upstream gradient dY", "cmap": "Blues", "symmetric": False},
             {"values": sofar, "title": "dX so far (windows 1 ... this one; blank: 0)", "cmap": "Blues",
              "symmetric": False, "zeros": False}],
            suptitle=f"max-pooling {self.pool}: window {self.position + 1} of {case['out'].size} "
                     "(red circle: the winner; grey x: a tied entry that loses)")
        mark_cells(axes[0], top, left, ph, pw)
        axes[0].add_patch(Circle((c, r), 0.42, fill=False, edgecolor="red", linewidth=2))  # in cells: any size
        for a, b in state["ties"]:
            axes[0].plot([b - 0.3, b + 0.3, np.nan, b - 0.3, b + 0.3], [a - 0.3, a + 0.3, np.nan, a + 0.3, a - 0.3],
                         color="gray", lw=2)
        for ax in axes[1:3]:
            mark_cells(ax, int(cell[0]), int(cell[1]))
        mark_cells(axes[3], r, c, colour="red")
        if notes:  # the widget shows them as text instead
            add_notes(fig, [("formula", state["text"])] + state["verdict"])
        return fig

    def build(self):
        import ipywidgets as widgets

        pick = widgets.ToggleButtons(options=list(self.pools), value=self.pool, style={"button_width": "auto"})
        slider = widgets.IntSlider(min=1, max=self.case()["out"].size, value=self.position + 1,
                                   continuous_update=False, description="window")
        slider.add_class("hwlib-position")
        picture = picture_widget()
        text, verdict = widgets.HTML(), widgets.HTML()
        text.add_class("hwlib-formula")
        verdict.add_class("hwlib-verdict")

        def redraw(*_):
            state = self.state()
            picture.value = figure_png(self.figure(notes=False))
            text.value = state["text"]
            verdict.value = verdict_html(state["verdict"])
            self.publish()

        def choose(change):
            self.pool = change["new"]
            slider.max = self.case()["out"].size
            self.position = min(self.position, slider.max - 1)
            redraw()

        def move(change):
            self.position = change["new"] - 1
            redraw()

        pick.observe(choose, names="value")
        slider.observe(move, names="value")
        redraw()
        return widgets.VBox([pick, slider, picture, text, verdict])


def pool_explorer(x=None, pools=None, position: int = 5) -> PoolExplorer:
    """The max-pool explorer (see the module docstring); display it as the last line of a cell.

    Inputs: x, a 2-D array (default: a 6x6 array with ties); pools, dict name -> pool_param (default:
    2x2 stride 1, 2x2 stride 2, 4x4 stride 2); position, the starting window (0-based, row-major; default 5: a tie, and a pixel that wins several windows).
    """
    return PoolExplorer(x, pools, position)

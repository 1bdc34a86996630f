"""The convolution explorer (Q1.4, Q3, Q6): one output cell at a time, on your ``conv_forward``/``conv_backward``.

Pick an input (a small array, a digit), a kernel (edge, blur, the worked example, a learned filter)
and a view:

* **filtering**, **valid convolution**, **full convolution**: a slider steps through the output
  positions; the figure shows the window on the input (zero-padded for the full convolution), the
  kernel as applied (flipped for the convolutions), the products, and the output filling in; the
  text gives the cell's formula with its numbers;
* **backward: dX**: for one input pixel, the output gradients that reach it -- the window of the
  zero-padded dY times the flipped kernel, i.e. ``dX = dY *full K`` (Q6);
* **backward: dK**: for one kernel weight, the input region that multiplies dY, ``dK = X *filt dY``.

Every value also comes from your code (``hwlib.layers.conv_forward`` and ``conv_backward``), shown
beside the reference of :mod:`hwlib.conv_formulas` (independent NumPy definitions). A stub shows its
``NotImplementedError`` message; a wrong result is shown in red next to the right one.
"""

from __future__ import annotations

import numpy as np

from .. import conv_formulas, layers
from ._common import (Explorer, add_notes, figure_png, grid_figure, mark_cells, picture_widget, plt, student_call,
                      verdict_html)

__all__ = ["ConvExplorer", "conv_explorer", "sample_digit", "VIEWS", "SMALL_INPUT", "DEFAULT_KERNELS"]

VIEWS = ("filtering", "valid convolution", "full convolution", "backward: dX", "backward: dK")
FORWARD = {"filtering": conv_formulas.filt, "valid convolution": conv_formulas.valid,
           "full convolution": conv_formulas.full}
SMALL_INPUT = np.array([[0, 1, 2, 1, 0, 0, 1],
                        [1, 3, 4, 3, 1, 0, 0],
                        [0, 2, 5, 2, 0, 1, 2],
                        [0, 1, 2, 1, 0, 2, 4],
                        [1, 0, 0, 1, 3, 4, 2],
                        [0, 0, 1, 2, 4, 5, 1]], dtype=float)
DEFAULT_KERNELS = {
    "edge (Sobel, vertical edges)": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=float),
    "blur (1-2-1, sums to 1)": np.outer([1, 2, 1], [1, 2, 1]) / 16.0,
    "worked example K (2x2)": np.array([[1, 2], [0, -1]], dtype=float),
}
MAX_TERMS = 9  # terms of a formula written out before "..."


def sample_digit(data_root=None, index: int = 0) -> np.ndarray:
    """MNIST test digit ``index`` as a (28, 28) array of intensities in [0, 1], two decimals.

    Read from the start of the full set's test file when the data root has it, else from the
    embedded 5,000-digit sample -- without loading and normalising a whole set for one picture.
    """
    import gzip

    from ..data.mnist import _FILES, MNIST, _embedded_path

    path = MNIST.path(data_root) / _FILES["test_images"][0]
    if path.is_file():
        with gzip.open(path, "rb") as fh:
            header = np.frombuffer(fh.read(16), dtype=">u4")
            if header.size != 4 or header[0] != 2051 or index >= header[1]:
                raise ValueError(f"sample_digit: {path} is not an MNIST image file with {index + 1} images")
            fh.seek(16 + 784 * index)
            pixels = np.frombuffer(fh.read(784), dtype=np.uint8)
    else:
        with gzip.open(_embedded_path(), "rt") as fh:
            for _ in range(index + 1):
                row = fh.readline()
            pixels = np.array(row.split(",")[:784], dtype=np.uint8)
    return (pixels.reshape(28, 28) / 255.0).round(2)


def upstream_gradient(shape) -> np.ndarray:
    """The fixed dY of the backward views: small integers (-2 ... 2), the same every time."""
    return np.random.default_rng(545).integers(-2, 3, size=shape).astype(float)


def _terms(left, right, total) -> str:
    """``a*b + c*d + ... = total``: the non-zero products (at most MAX_TERMS written), then how many
    products were 0 and left out; ``0 (all 9 products are 0)`` when every one is."""
    pairs = [(a, b) for a, b in zip(np.ravel(left), np.ravel(right)) if a * b != 0]
    zero = np.size(left) - len(pairs)
    if not pairs:
        return f"{total + 0.0:.4g} (all {zero} products are 0)"
    text = " + ".join(f"{a:.3g}*{b:.3g}" for a, b in pairs[:MAX_TERMS])
    if len(pairs) > MAX_TERMS:
        text += f" + ... ({len(pairs)} non-zero products)"
    return f"{text} = {total + 0.0:.4g}" + (f" ({zero} zero product{'s' * (zero > 1)} left out)" if zero else "")


def _compare(name, yours, reference, cell, message):
    """Verdict lines: the student's value at ``cell`` beside the reference, and the whole array checked."""
    if message is not None:
        return [("bad", message), ("info", f"reference: {reference[cell]:.4g}")]
    yours = np.asarray(yours, dtype=float)
    if yours.shape != reference.shape:
        return [("bad", f"your {name} has shape {yours.shape}; expected {reference.shape}"),
                ("info", f"reference: {reference[cell]:.4g}")]
    here = np.isclose(yours[cell], reference[cell], rtol=1e-6, atol=1e-9)
    lines = [("ok" if here else "bad", f"your {name}: {yours[cell]:.4g}   reference: {reference[cell]:.4g}"
              + ("   (equal)" if here else "   (different!)"))]
    wrong = ~np.isclose(yours, reference, rtol=1e-6, atol=1e-9)
    if wrong.any():
        worst = np.unravel_index(np.argmax(np.abs(yours - reference)), reference.shape)
        lines.append(("bad", f"your {name} differs from the reference at {int(wrong.sum())} of {wrong.size} "
                             f"positions; the largest difference is at {tuple(int(i) + 1 for i in worst)} "
                             f"(yours {yours[worst]:.4g}, reference {reference[worst]:.4g})"))
    else:
        lines.append(("ok", f"your {name} matches the reference everywhere ({reference.size} values)"))
    return lines


class ConvExplorer(Explorer):
    """See the module docstring. ``images`` and ``kernels`` map names to 2-D arrays; they come first,
    before the defaults (a small array; Sobel, blur, the worked example's K)."""

    css = "conv"
    name = "convolution explorer"

    def __init__(self, images=None, kernels=None, view: str = "filtering", position: int | None = None):
        images = {**(images or {}), **{k: v for k, v in {"small array": SMALL_INPUT}.items() if k not in (images or {})}}
        kernels = {**(kernels or {}), **{k: v for k, v in DEFAULT_KERNELS.items() if k not in (kernels or {})}}
        self.images = {name: np.asarray(a, dtype=float) for name, a in images.items()}
        self.kernels = {name: np.asarray(k, dtype=float) for name, k in kernels.items()}
        for what, arrays in (("images", self.images), ("kernels", self.kernels)):
            bad = [name for name, a in arrays.items() if a.ndim != 2 or a.size == 0]
            if bad or not arrays:
                raise ValueError(f"conv_explorer: {what} must map names to non-empty 2-D arrays; check {bad}")
        if view not in VIEWS:
            raise ValueError(f"conv_explorer: view must be one of {VIEWS}; got {view!r}")
        self.image, self.kernel, self.view = next(iter(self.images)), next(iter(self.kernels)), view
        self._cases = {}
        self.position = self.strongest() if position is None else int(position)

    # --- the numbers ------------------------------------------------------------------------------

    def case(self) -> dict:
        """Everything the current (input, kernel, view) needs, computed once: reference and yours."""
        key = (self.image, self.kernel, self.view)
        if key not in self._cases:
            self._cases[key] = self._compute(self.images[self.image], self.kernels[self.kernel], self.view)
        return self._cases[key]

    @staticmethod
    def _compute(A, K, view) -> dict:
        kh, kw = K.shape
        if kh > A.shape[0] or kw > A.shape[1]:
            return {"error": f"the kernel ({kh}x{kw}) is larger than the input {A.shape}: pick another pair"}
        if view in FORWARD:
            applied = K[::-1, ::-1] if view != "filtering" else K
            padded = np.pad(A, ((kh - 1,) * 2, (kw - 1,) * 2)) if view == "full convolution" else A
            result, message = student_call(layers.conv_forward, padded[None, None], applied[None, None])
            return {"A": padded, "K": applied, "reference": FORWARD[view](A, K), "grid": "output",
                    "yours": None if message else result[0][0, 0], "message": message, "name": "conv_forward"}
        dY = upstream_gradient((A.shape[0] - kh + 1, A.shape[1] - kw + 1))
        yours, message = None, None
        forward, message = student_call(layers.conv_forward, A[None, None], K[None, None])
        if message is None:
            grads, message = student_call(layers.conv_backward, dY[None, None], forward[1])
            if message is None:
                yours = np.asarray(grads[0 if view == "backward: dX" else 1])[0, 0]
        if view == "backward: dX":
            return {"A": A, "K": K, "dY": dY, "reference": conv_formulas.full(dY, K), "grid": "input pixel",
                    "yours": yours, "message": message, "name": "conv_backward dX"}
        return {"A": A, "K": K, "dY": dY, "reference": conv_formulas.filt(A, dY), "grid": "kernel entry",
                "yours": yours, "message": message, "name": "conv_backward dK"}

    def size(self) -> int:
        """How many positions the slider steps through (0 when the pair does not fit)."""
        case = self.case()
        return 0 if "error" in case else case["reference"].size

    def strongest(self) -> int:
        """The flat index of the largest output in magnitude (the first one): the starting position."""
        case = self.case()
        return 0 if "error" in case else int(np.argmax(np.abs(case["reference"])))

    def state(self) -> dict:
        """The current cell: its position, value, formula and the verdict lines (what the text shows)."""
        case = self.case()
        if "error" in case:
            return {"cell": None, "formula": case["error"], "verdict": [("info", case["error"])]}
        ref = case["reference"]
        self.position = min(max(self.position, 0), ref.size - 1)
        cell = tuple(int(i) for i in np.unravel_index(self.position, ref.shape))
        r, c = cell
        A, K = case["A"], case["K"]
        if self.view in FORWARD:
            kh, kw = K.shape
            window = A[r:r + kh, c:c + kw]
            flipped = "flip(K)" if self.view != "filtering" else "K"
            pad = " (A zero-padded)" if self.view == "full convolution" else ""
            formula = (f"Y[{r + 1}, {c + 1}] = sum over p, q of A[{r + 1}+p-1, {c + 1}+q-1] * {flipped}[p, q]{pad} = "
                       + _terms(window, K, float(np.sum(window * K))))
            where = f"window: rows {r + 1}-{r + kh}, columns {c + 1}-{c + kw} of the input"
        elif self.view == "backward: dX":
            kh, kw = K.shape
            padded = np.pad(case["dY"], ((kh - 1,) * 2, (kw - 1,) * 2))
            window = padded[r:r + kh, c:c + kw]
            formula = (f"dX[{r + 1}, {c + 1}] = sum of the padded dY window times flip(K) = "
                       + _terms(window, K[::-1, ::-1], float(np.sum(window * K[::-1, ::-1]))))
            rows = f"{max(r - kh + 1, 0) + 1}-{min(r, ref.shape[0] - K.shape[0]) + 1}"
            where = (f"input pixel ({r + 1}, {c + 1}) is read by the outputs in rows {rows}, columns "
                     f"{max(c - kw + 1, 0) + 1}-{min(c, A.shape[1] - kw) + 1}: their dY reach it")
        else:
            dY = case["dY"]
            region = A[r:r + dY.shape[0], c:c + dY.shape[1]]
            formula = (f"dK[{r + 1}, {c + 1}] = sum over i, j of X[i+{r}, j+{c}] * dY[i, j] = "
                       + _terms(region, dY, float(np.sum(region * dY))))
            where = (f"kernel weight ({r + 1}, {c + 1}) multiplies input rows {r + 1}-{r + dY.shape[0]}, "
                     f"columns {c + 1}-{c + dY.shape[1]}")
        verdict = _compare(case["name"], case["yours"], ref, cell, case["message"])
        return {"cell": cell, "value": float(ref[cell]), "formula": formula, "where": where, "verdict": verdict}

    # --- the picture ------------------------------------------------------------------------------

    def figure(self, notes: bool = True):
        """The current state as one matplotlib figure (what the static display shows)."""
        case, state = self.case(), self.state()
        if "error" in case:
            fig, ax = plt().subplots(figsize=(6, 1))
            ax.axis("off")
            ax.text(0, 0.5, case["error"], va="center")
            return fig
        r, c = state["cell"]
        A, K, ref = case["A"], case["K"], case["reference"]
        filled = np.where(np.arange(ref.size).reshape(ref.shape) <= self.position, ref, np.nan)
        if self.view in FORWARD:
            kh, kw = K.shape
            kernel_title = "K, as stored" if self.view == "filtering" else "flip(K): K turned 180°"
            panels = [(A, "input" + (" zero-padded" if self.view == "full convolution" else ""), (r, c, kh, kw)),
                      (K, kernel_title, None),
                      (A[r:r + kh, c:c + kw] * K, f"products, sum {state['value']:.4g}", None),
                      (filled, f"{self.view} output Y", (r, c, 1, 1))]
        elif self.view == "backward: dX":
            kh, kw = K.shape
            padded = np.pad(case["dY"], ((kh - 1,) * 2, (kw - 1,) * 2))
            panels = [(A, "input X: one pixel", (r, c, 1, 1)),
                      (padded, "dY zero-padded: the outputs that reach it", (r, c, kh, kw)),
                      (K[::-1, ::-1], "flip(K)", None),
                      (padded[r:r + kh, c:c + kw] * K[::-1, ::-1], f"products, sum {state['value']:.4g}", None),
                      (filled, "dX = dY *full K", (r, c, 1, 1))]
        else:
            dY = case["dY"]
            panels = [(A, "input X: the region for one weight", (r, c) + dY.shape), (dY, "upstream gradient dY", None),
                      (A[r:r + dY.shape[0], c:c + dY.shape[1]] * dY, f"products, sum {state['value']:.4g}", None),
                      (filled, "dK = X *filt dY", (r, c, 1, 1))]
        fig, axes = grid_figure([{"values": values, "title": title, "zeros": "padded" not in title}
                                 for values, title, _ in panels],
                                suptitle=f"{self.image}, {self.kernel}: {self.view}, {case['grid']} "
                                         f"{self.position + 1} of {ref.size} (indices from 1, as in the math)")
        for ax, (_, _, box) in zip(axes, panels):
            if box is not None:
                mark_cells(ax, *box)
        if notes:  # the widget shows them as text instead
            add_notes(fig, [("formula", state["formula"])] + state["verdict"])
        return fig

    # --- the widget -------------------------------------------------------------------------------

    def build(self):
        import ipywidgets as widgets

        pick_image = widgets.Dropdown(options=list(self.images), value=self.image, description="input")
        pick_kernel = widgets.Dropdown(options=list(self.kernels), value=self.kernel, description="kernel")
        pick_view = widgets.ToggleButtons(options=VIEWS, value=self.view, style={"button_width": "auto"})
        slider = widgets.IntSlider(min=1, max=max(self.size(), 1), value=self.position + 1, continuous_update=False,
                                   description="position", layout=widgets.Layout(width="60%"))
        slider.add_class("hwlib-position")
        picture = picture_widget()
        formula, where, verdict = widgets.HTML(), widgets.HTML(), widgets.HTML()
        formula.add_class("hwlib-formula")
        where.add_class("hwlib-where")
        verdict.add_class("hwlib-verdict")

        def redraw(*_):
            state = self.state()
            picture.value = figure_png(self.figure(notes=False))
            formula.value = f"<code>{state['formula']}</code>"
            where.value = f"<i>{state.get('where', '')}</i>"
            verdict.value = verdict_html(state["verdict"])
            self.publish()

        def choose(*_):
            self.image, self.kernel, self.view = pick_image.value, pick_kernel.value, pick_view.value
            slider.max = max(self.size(), 1)
            slider.description = self.case().get("grid", "position")
            self.position = min(self.position, slider.max - 1)
            if slider.value != self.position + 1:
                slider.value = self.position + 1  # redraws through move()
            else:
                redraw()

        def move(change):
            self.position = change["new"] - 1
            redraw()

        for control in (pick_image, pick_kernel, pick_view):
            control.observe(choose, names="value")
        slider.observe(move, names="value")
        slider.description = self.case().get("grid", "position")
        redraw()
        return widgets.VBox([widgets.HBox([pick_image, pick_kernel]), pick_view, slider, where, picture, formula,
                             verdict])


def conv_explorer(images=None, kernels=None, view: str = "filtering", position: int | None = None) -> ConvExplorer:
    """The convolution explorer (see the module docstring); display it as the last line of a cell.

    Inputs:
    - images: dict name -> 2-D array, e.g. a digit; listed first, before a 6x7 array of small integers
    - kernels: dict name -> 2-D array, e.g. learned filters; listed first, before the Sobel edge
      kernel, the 1-2-1 blur and the worked example's K
    - view: one of ``VIEWS``; position: the starting position (0-based, row-major; default: the
      largest output in magnitude)
    """
    return ConvExplorer(images, kernels, view, position)

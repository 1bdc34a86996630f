"""What the explorers share: live or static display, calling the student's code, pictures as PNG.

An explorer is an object that displays itself (``_ipython_display_``): as an ipywidgets panel when
:func:`hwlib.progress.live_display` says a person watches the notebook live, otherwise as one static
matplotlib figure of a representative state (executed notebooks, the report, tests, grading), so
a headless run never waits on a widget and never saves an empty output.
"""

from __future__ import annotations

import abc
import html
import io
import textwrap

import numpy as np

from ..progress import live_display

__all__ = ["Explorer", "student_call", "figure_png", "add_notes", "show_static", "plt", "draw_grid", "mark_cells",
           "css_class", "verdict_html"]


def plt():
    import matplotlib.pyplot as pyplot  # imported on use: importing hwlib stays light
    return pyplot


def css_class(name: str) -> str:
    """The CSS class of an explorer's root widget (``hwlib-conv-explorer``): the UI test finds it by it."""
    return f"hwlib-{name}-explorer"


def student_call(function, *args, **kwargs):
    """``(result, None)``, or ``(None, message)`` when the student's ``function`` raises.

    A stub's ``NotImplementedError`` shows its own message (it names the task); any other error of
    the student's code shows as one line, never as a traceback in the middle of an explorer.
    """
    name = getattr(function, "__name__", "the function")
    try:
        return function(*args, **kwargs), None
    except NotImplementedError as exc:
        return None, f"NotImplementedError: {exc or f'{name} is not written yet'}"
    except Exception as exc:  # noqa: BLE001 -- a wrong implementation can raise anything
        return None, f"{name} raised {type(exc).__name__}: {exc}"


def figure_png(fig, dpi: int = 72) -> bytes:
    """The figure as PNG bytes, drawn once (no tight bounding box: that draws twice); the figure is
    closed (the inline backend must not show it again)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt().close(fig)
    return buffer.getvalue()


NOTE_COLOURS = {"ok": "#1a7f37", "bad": "#c62828", "info": "#555", "formula": "black"}


def add_notes(fig, notes, width: int = 150, row: float = 0.17) -> None:
    """Write ``notes`` (``[(kind, text)]``, kind as in :func:`verdict_html` or "formula") under the
    axes, wrapped at ``width`` characters; the figure grows by one ``row`` (inches) per line."""
    rows = [(kind, line) for kind, text in notes for line in (textwrap.wrap(text, width) or [""])]
    w, h = fig.get_size_inches()
    extra = row * len(rows) + 0.15
    fig.set_size_inches(w, h + extra)
    pars = fig.subplotpars
    fig.subplots_adjust(top=1 - (1 - pars.top) * h / (h + extra), bottom=(pars.bottom * h + extra) / (h + extra))
    for k, (kind, line) in enumerate(rows):
        fig.text(0.01, (extra - 0.08 - row * k) / (h + extra), line, fontsize=8, va="top", color=NOTE_COLOURS[kind])


def verdict_html(lines: list[tuple[str, str]]) -> str:
    """``[(kind, text)]`` as HTML lines; kind is "ok" (green), "bad" (red) or "info" (grey)."""
    colours = {"ok": "#1a7f37", "bad": "#c62828", "info": "#555"}
    return "<br>".join(f'<span style="color:{colours[kind]}">{html.escape(text)}</span>' for kind, text in lines)


def draw_grid(ax, values, title: str, *, numbers: bool | None = None, cmap: str = "RdBu_r", limit=None,
              symmetric: bool = True, fmt: str = "{:g}", zeros: bool = True):
    """An array as coloured cells, its entries written in when small (at most 64 cells by default).

    ``symmetric``: a diverging scale, white at 0 (signed values); otherwise the scale runs from 0 (or
    the minimum) to the maximum. NaN cells stay empty (an output not filled in yet); ``zeros=False``
    leaves 0 entries unwritten too (zero padding: white says it, and every label costs drawing time).
    """
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if limit is None:
        limit = float(np.abs(finite).max()) if finite.size else 1.0
    limit = limit or 1.0
    lower = -limit if symmetric else min(0.0, float(finite.min()) if finite.size else 0.0)
    ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=lower, vmax=limit, interpolation="nearest")
    if numbers is None:
        numbers = values.size <= 64
    if numbers:
        dark = (lambda v: abs(v) > 0.6 * limit) if symmetric else (lambda v: v - lower > 0.6 * (limit - lower))
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v) and (zeros or v != 0):
                ax.text(c, r, fmt.format(round(float(v), 2) + 0.0), ha="center", va="center", fontsize=7,
                        color="white" if dark(v) else "black", in_layout=False)  # inside the axes: no layout cost
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def mark_cells(ax, top: int, left: int, height: int = 1, width: int = 1, colour: str = "gold", lw: float = 2.5):
    """A rectangle around cells ``[top:top + height, left:left + width]`` of an array drawn by :func:`draw_grid`."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor=colour, linewidth=lw))


class Explorer(abc.ABC):
    """Base class: subclasses give :meth:`figure` (the current state drawn) and :meth:`build` (the widget).

    Displaying the object shows the widget when the notebook is watched live, the figure otherwise.
    ``css`` names the explorer (the root widget gets the CSS class ``hwlib-<css>-explorer``).
    """

    css = "base"

    @abc.abstractmethod
    def figure(self):
        """The current state as a matplotlib figure (the static display)."""

    @abc.abstractmethod
    def build(self):
        """The ipywidgets panel (the live display)."""

    @property
    def live(self) -> bool:
        return live_display()

    def widget(self):
        """The ipywidgets panel (built on first use)."""
        if getattr(self, "_widget", None) is None:
            self._widget = self.build()
            self._widget.add_class("hwlib-explorer")
            self._widget.add_class(css_class(self.css))
        return self._widget

    def _ipython_display_(self):
        from IPython.display import display

        if self.live:
            display(self.widget())
        else:
            show_static(self.figure())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'live' if self.live else 'static'})"


def show_static(fig) -> None:
    """Display ``fig`` as one PNG (drawn once, at :func:`figure_png`'s resolution) and close it."""
    from IPython.display import Image, display

    display(Image(data=figure_png(fig), format="png"))

"""What the explorers share: live or static display, calling the student's code, pictures as PNG.

An explorer is an object that displays itself (``_ipython_display_``): as an ipywidgets panel when
:func:`hwlib.progress.live_display` says a person watches the notebook live, otherwise as one static
matplotlib figure of a representative state (executed notebooks, the report, tests, grading), so
a headless run never waits on a widget and never saves an empty output.

**Saved notebooks.** A widget lives in the kernel: a notebook saved with a live explorer and opened
again (a fresh kernel, no kernel at all, a TA's copy of a submission, the grader's feedback) no longer
has it. So a live explorer shows two outputs: the widget, whose plain-text form is a sentence (not
a ``VBox(...)`` repr), and a *snapshot* of its current view -- the picture as ``image/png``, the
picture with its text as ``text/html``, the text as ``text/plain`` -- updated (an IPython display
handle) every time the view changes. The snapshot also carries a widget view with an empty model
id, which JupyterLab's widget renderer hides: where widgets render (the live page, or a page restored
from the widget state that the course's JupyterLab settings save with the notebook) it takes no room;
everywhere else the last view shows as a picture.
"""

from __future__ import annotations

import abc
import base64
import html
import io
import re
import textwrap
import uuid

import numpy as np

from ..progress import live_display

__all__ = ["Explorer", "student_call", "figure_png", "add_notes", "show_static", "plt", "draw_grid", "mark_cells",
           "css_class", "verdict_html", "grid_figure", "grid_labels", "picture_widget", "snapshot_bundle", "DPI",
           "GRID_FONT_PT", "MAX_WIDTH_PX", "WIDGET_VIEW"]

DPI = 72                # every explorer picture: 1 figure inch = 72 image pixels, shown 1:1 in the browser
GRID_FONT_PT = 12       # the numbers in grid cells: 12 pt at 72 dpi = 12 px on screen at 100 % zoom
TITLE_FONT_PT = 11      # panel titles and the notes under a static figure
MAX_WIDTH_PX = 940      # widest picture: fits JupyterLab's output area at 1400 px (not scaled down)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


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


def figure_png(fig, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, drawn once (no tight bounding box: that draws twice); the figure is
    closed (the inline backend must not show it again)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt().close(fig)
    return buffer.getvalue()


NOTE_COLOURS = {"ok": "#1a7f37", "bad": "#c62828", "info": "#555", "formula": "black"}


def add_notes(fig, notes, width: int | None = None, row: float = 0.22) -> None:
    """Write ``notes`` (``[(kind, text)]``, kind as in :func:`verdict_html` or "formula") under the
    axes, wrapped to the figure's width (or ``width`` characters); the figure grows by one ``row``
    (inches) per line."""
    w, h = fig.get_size_inches()
    width = width or int(w * DPI / (0.6 * TITLE_FONT_PT))   # characters of about 0.6 em
    rows = [(kind, line) for kind, text in notes for line in (textwrap.wrap(text, width) or [""])]
    extra = row * len(rows) + 0.15
    boxes = [ax.get_position(original=True).bounds for ax in fig.axes]  # before resizing: no aspect applied
    fig.set_size_inches(w, h + extra)
    for ax, (x0, y0, aw, ah) in zip(fig.axes, boxes):  # keep every axes where it was, in inches from the top
        ax.set_position([x0, (y0 * h + extra) / (h + extra), aw, ah * h / (h + extra)])
    for text in fig.texts:
        text.set_y((text.get_position()[1] * h + extra) / (h + extra))
    for k, (kind, line) in enumerate(rows):
        fig.text(0.01, (extra - 0.08 - row * k) / (h + extra), line, fontsize=TITLE_FONT_PT, va="top",
                 color=NOTE_COLOURS[kind])


def verdict_html(lines: list[tuple[str, str]]) -> str:
    """``[(kind, text)]`` as HTML lines; kind is "ok" (green), "bad" (red) or "info" (grey)."""
    colours = {"ok": "#1a7f37", "bad": "#c62828", "info": "#555"}
    return "<br>".join(f'<span style="color:{colours[kind]}">{html.escape(text)}</span>' for kind, text in lines)


# --- grids of numbers --------------------------------------------------------------------------------

# Advance widths (em) of DejaVu Sans, matplotlib's default font, for the characters of a number.
_EM = {"-": 0.36, ".": 0.32, "e": 0.62, "+": 0.84}


def _label_px(label: str, font_px: float = GRID_FONT_PT * DPI / 72) -> float:
    return font_px * sum(_EM.get(ch, 0.64) for ch in label)


def grid_labels(values, decimals: int = 2, zeros: bool = True) -> dict:
    """``{(row, column): text}``: the entries written into a grid's cells, rounded to ``decimals``
    (NaN never; 0 only with ``zeros``)."""
    values = np.asarray(values, dtype=np.float64)
    return {cell: f"{round(float(v), decimals) + 0.0:g}" for cell, v in np.ndenumerate(values)
            if np.isfinite(v) and (zeros or v != 0)}


def _fitting_labels(values, cell_px: float, zeros: bool) -> dict:
    """The labels at 2, 1 or 0 decimals, the first whose widest one fits a cell; {} when none fits."""
    for decimals in (2, 1, 0):
        labels = grid_labels(values, decimals, zeros)
        if max((_label_px(t) for t in labels.values()), default=0) + 4 <= cell_px:
            return labels
    return {}


def draw_grid(ax, values, title: str, *, numbers: bool | None = None, cmap: str = "RdBu_r", limit=None,
              symmetric: bool = True, zeros: bool = True):
    """An array as coloured cells, its entries written in (``GRID_FONT_PT``) where they fit the cells.

    ``numbers``: write the entries (default: at most 100 cells), with as many of 2 decimals as fit
    the cell (the axes' size in the figure decides; :func:`grid_figure` sizes cells for them).
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
        numbers = values.size <= 100
    if numbers:
        ax.apply_aspect()
        box = ax.get_position()  # in figure fractions, once the aspect is applied; in pixels as saved (DPI)
        width, height = ax.figure.get_size_inches() * DPI
        cell_px = min(box.width * width / values.shape[1], box.height * height / values.shape[0])
        dark = (lambda v: abs(v) > 0.6 * limit) if symmetric else (lambda v: v - lower > 0.6 * (limit - lower))
        for (r, c), text in _fitting_labels(values, cell_px, zeros).items():
            ax.text(c, r, text, ha="center", va="center", fontsize=GRID_FONT_PT,
                    color="white" if dark(values[r, c]) else "black", in_layout=False)  # no layout cost
    ax.set_title(title, fontsize=TITLE_FONT_PT)
    ax.set_xticks([])
    ax.set_yticks([])


def grid_figure(panels, *, suptitle: str = "", height_px: int = 250):
    """``(fig, axes)``: one row of grids drawn by :func:`draw_grid`, each cell large enough for its numbers.

    ``panels``: ``[dict(values=..., title=..., **draw_grid options)]``. A panel with numbers (by
    default those of at most 100 cells) gets square cells of 2.4 times the font size, more for long
    numbers and for small grids; a picture-like panel (no numbers) gets ``height_px`` for its longer
    side. The row is scaled down to ``MAX_WIDTH_PX`` when it is wider, so that the browser never
    shrinks the picture (and its numbers); titles are wrapped to their panel's width.
    """
    font_px = GRID_FONT_PT * DPI / 72
    sizes = []
    for panel in panels:
        values = np.asarray(panel["values"], dtype=np.float64)
        rows, cols = values.shape
        numbers = panel.get("numbers")
        if numbers or (numbers is None and values.size <= 100):
            widest = max((_label_px(t) for t in grid_labels(values, 2, panel.get("zeros", True)).values()), default=0)
            cell = min(max(2.4 * font_px, widest + 10, 130 / max(rows, cols)), 64)
            sizes.append((cols * cell, rows * cell, True))
        else:
            scale = height_px / max(rows, cols)
            sizes.append((cols * scale, rows * scale, False))
    gap, margin = 22, 8
    room = MAX_WIDTH_PX - gap * (len(sizes) - 1) - 2 * margin
    numbered = sum(w for w, _, has_numbers in sizes if has_numbers)
    pictures = [(w, h) for w, h, has_numbers in sizes if not has_numbers]
    if pictures and numbered + sum(w for w, _ in pictures) > room:  # pictures give way first, to 110 px
        scale = min(1.0, max((room - numbered) / sum(w for w, _ in pictures), 110 / max(map(max, pictures))))
        sizes = [(w, h, True) if has_numbers else (w * scale, h * scale, False) for w, h, has_numbers in sizes]
    shrink = min(1.0, room / sum(w for w, _, _ in sizes))
    sizes = [(w * shrink, h * shrink) for w, h, _ in sizes]
    titles = [textwrap.wrap(p["title"], max(int(w / (0.55 * TITLE_FONT_PT)), 8)) for p, (w, _) in zip(panels, sizes)]
    title_px = (max(len(lines) for lines in titles) * 1.25 + 0.6) * TITLE_FONT_PT
    width = sum(w for w, _ in sizes) + gap * (len(sizes) - 1) + 2 * margin
    heading = textwrap.wrap(suptitle, int(width / (0.55 * (TITLE_FONT_PT + 1)))) if suptitle else []
    top_px = len(heading) * 1.3 * (TITLE_FONT_PT + 1) + 8 + title_px
    height = max(h for _, h in sizes) + top_px + 6
    fig = plt().figure(figsize=(width / DPI, height / DPI))
    axes, left = [], margin
    for panel, (w, h), lines in zip(panels, sizes, titles):
        ax = fig.add_axes((left / width, (height - top_px - h) / height, w / width, h / height))
        options = {k: v for k, v in panel.items() if k not in ("values", "title")}
        draw_grid(ax, panel["values"], "\n".join(lines), **options)
        axes.append(ax)
        left += w + gap
    if heading:
        fig.suptitle("\n".join(heading), fontsize=TITLE_FONT_PT + 1, y=1 - 4 / height, va="top")
    return fig, axes


def picture_widget(png: bytes = b""):
    """The ipywidgets Image of an explorer's figure (CSS class ``hwlib-figure``), shown at its own size:
    never stretched to the panel's width (blurred, and wider than the browser's window at times), only
    narrowed when the window is narrower (``max-width: 100%``)."""
    import ipywidgets as widgets

    picture = widgets.Image(value=png, format="png", layout=widgets.Layout(align_self="flex-start"))
    picture.add_class("hwlib-figure")
    return picture


def mark_cells(ax, top: int, left: int, height: int = 1, width: int = 1, colour: str = "gold", lw: float = 2.5):
    """A rectangle around cells ``[top:top + height, left:left + width]`` of an array drawn by :func:`draw_grid`."""
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor=colour, linewidth=lw))


# --- live and static display --------------------------------------------------------------------------

def _plain(markup: str) -> str:
    """HTML as plain text: line breaks kept, tags dropped, entities decoded."""
    text = re.sub(r"<br\s*/?>|</li>|</p>|</div>", "\n", markup, flags=re.IGNORECASE)
    text = re.sub(r"<li>", "- ", text, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def snapshot_bundle(widget, name: str, css: str) -> dict:
    """The current view of an explorer's ``widget`` as a static display bundle (see the module doc).

    Walks the panel in order: the controls' settings become one line ("input: digit · filtering ·
    output 12 of 20"), each picture an ``<img>`` (the first also the bundle's ``image/png``), each
    HTML text its own block; hidden parts are left out.
    """
    import ipywidgets as widgets

    controls, blocks, texts, pngs = [], [], [], []

    def walk(w):
        if getattr(getattr(w, "layout", None), "display", None) == "none":
            return
        if isinstance(w, widgets.Box):
            for child in w.children:
                walk(child)
        elif isinstance(w, widgets.Image):
            if w.value:
                pngs.append(bytes(w.value))
                data = base64.b64encode(bytes(w.value)).decode("ascii")
                blocks.append(f'<img class="hwlib-figure" src="data:image/{w.format};base64,{data}" '
                              f'alt="{html.escape(name)}" style="max-width:100%">')
        elif isinstance(w, (widgets.HTML, widgets.HTMLMath, widgets.Label)):
            if w.value:
                blocks.append(f"<div>{w.value}</div>")
                texts.append(_plain(w.value))
        elif isinstance(w, widgets.Checkbox):
            if w.value:
                controls.append(w.description)
        elif isinstance(w, (widgets.IntSlider, widgets.FloatSlider)):
            controls.append(f"{w.description or 'position'} {w.value} of {w.max}")
        elif isinstance(w, (widgets.Dropdown, widgets.ToggleButtons, widgets.RadioButtons, widgets.Select)):
            controls.append(f"{w.description}: {w.label}" if w.description else str(w.label))

    walk(widget)
    line = " · ".join(controls)
    note = f"{name} (a picture of its last view; run the cell to use it)"
    markup = (f'<div class="hwlib-snapshot {css_class(css)}"><p><b>{html.escape(note)}</b><br>'
              f"{html.escape(line)}</p>{''.join(blocks)}</div>")
    bundle = {WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": ""},  # hidden where widgets render
              "text/html": markup, "text/plain": "\n".join([note, line, *texts]).strip()}
    if pngs:
        bundle["image/png"] = base64.b64encode(pngs[0]).decode("ascii")
    return bundle


class Explorer(abc.ABC):
    """Base class: subclasses give :meth:`figure` (the current state drawn) and :meth:`build` (the widget).

    Displaying the object shows the widget and its snapshot when the notebook is watched live, the
    figure otherwise. ``css`` names the explorer (the root widget gets the CSS class
    ``hwlib-<css>-explorer``), ``name`` says what it is in words; :meth:`build`'s redraws call
    :meth:`publish` once the view has changed, which updates the snapshot.
    """

    css = "base"
    name = "explorer"

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

    @property
    def display_id(self) -> str:
        """The display id of this explorer's snapshot (every place it is shown is updated together)."""
        if getattr(self, "_display_id", None) is None:
            self._display_id = f"hwlib-{self.css}-{uuid.uuid4().hex}"
        return self._display_id

    def snapshot(self) -> dict:
        """The current view as a static display bundle (:func:`snapshot_bundle`)."""
        return snapshot_bundle(self.widget(), self.name, self.css)

    def publish(self) -> None:
        """Update the snapshot shown under the widget (nothing before the explorer is displayed)."""
        if getattr(self, "_shown", False):
            from IPython.display import update_display

            update_display(self.snapshot(), raw=True, display_id=self.display_id)

    def _ipython_display_(self):
        from IPython.display import display

        if not self.live:
            show_static(self.figure(), f"{self.name}: a static picture (interactive in a notebook watched live)")
            return
        view = self.widget()._repr_mimebundle_()[WIDGET_VIEW]
        display({WIDGET_VIEW: view, "text/plain": f"{self.name}: interactive while the notebook's kernel "
                 "runs it (JupyterLab, Notebook 7, VS Code); its last view is below"}, raw=True)
        display(self.snapshot(), raw=True, display_id=self.display_id)
        self._shown = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({'live' if self.live else 'static'})"


def show_static(fig, text: str = "a figure") -> None:
    """Display ``fig`` as one PNG (drawn once, at :func:`figure_png`'s resolution), with ``text`` as its
    plain-text form, and close it."""
    from IPython.display import display

    display({"image/png": base64.b64encode(figure_png(fig)).decode("ascii"), "text/plain": text}, raw=True)

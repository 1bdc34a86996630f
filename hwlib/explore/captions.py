"""The caption browser (Q4): step through images with their generated and reference captions.

Give it the result of :func:`hwlib.captioning_tools.evaluate_captioning` (the images, your model's
greedy captions and the reference captions of each image). A slider steps through the images; a
toggle keeps only the captions that are not exactly right. A generated caption is green when it
equals one of the references, red otherwise. For COCO, whose pictures are not in the data files,
the image's URL is shown instead of the picture.
"""

from __future__ import annotations

import html
import textwrap

from ._common import Explorer, figure_png, plt

__all__ = ["CaptionBrowser", "caption_browser"]


class CaptionBrowser(Explorer):
    """See the module docstring. ``result``: the dict of ``evaluate_captioning(model, data, split)``."""

    css = "captions"
    name = "caption browser"

    def __init__(self, data, split: str, result: dict, static_count: int = 4):
        missing = [k for k in ("image_idxs", "candidates", "references") if k not in result]
        if missing or not len(result.get("candidates", [])):
            raise ValueError(f"caption_browser: result must come from evaluate_captioning; it lacks {missing} "
                             "or holds no image")
        self.data, self.split, self.result = data, split, result
        self.static_count = static_count
        self.position = 0
        self.only_wrong = False

    def order(self) -> list[int]:
        """The images the slider steps through (all, or only those not captioned exactly)."""
        everything = list(range(len(self.result["candidates"])))
        if not self.only_wrong:
            return everything
        return [i for i in everything if self.exact(i) is False] or everything

    def exact(self, i: int) -> bool:
        return list(self.result["candidates"][i]) in [list(r) for r in self.result["references"][i]]

    def describe(self, i: int) -> str:
        """HTML: the generated caption (green if exact, red if not) and every reference."""
        words = lambda c: html.escape(" ".join(c))  # noqa: E731
        colour = "#1a7f37" if self.exact(i) else "#c62828"
        refs = "".join(f"<li>{words(r)}</li>" for r in self.result["references"][i])
        image = int(self.result["image_idxs"][i])
        return (f"<b>{self.split} image {image}</b> ({i + 1} of {len(self.result['candidates'])})<br>"
                f'generated: <span style="color:{colour}">{words(self.result["candidates"][i])}</span>'
                f"{' (exact)' if self.exact(i) else ''}<br>references:<ul>{refs}</ul>")

    def picture(self, i: int) -> bytes | None:
        """The image as PNG bytes, or None when the data has no pictures (COCO: URLs only)."""
        images = self.data.get(f"{self.split}_images")
        if images is None:
            return None
        fig, ax = plt().subplots(figsize=(2.6, 2.6))
        ax.imshow(images[int(self.result["image_idxs"][i])], interpolation="nearest")
        ax.set_axis_off()
        return figure_png(fig)

    def figure(self):
        """The first ``static_count`` images in a row, each with its generated and first reference caption."""
        count = min(self.static_count, len(self.result["candidates"]))
        images = self.data.get(f"{self.split}_images")
        fig, axes = plt().subplots(1, count, figsize=(2.8 * count, 3.6), squeeze=False)
        for i, ax in enumerate(axes[0]):
            ax.set_axis_off()
            index = int(self.result["image_idxs"][i])
            if images is not None:
                ax.imshow(images[index], interpolation="nearest")
            else:
                ax.text(0.5, 0.5, "\n".join(textwrap.wrap(str(self.data[f"{self.split}_urls"][index]), 30)),
                        ha="center", va="center", fontsize=7, transform=ax.transAxes)
            lines = textwrap.wrap("generated: " + " ".join(self.result["candidates"][i]), 32)
            lines += textwrap.wrap("reference: " + " ".join(self.result["references"][i][0]), 32)
            ax.set_title("\n".join(lines), fontsize=8, loc="left", color="#1a7f37" if self.exact(i) else "#c62828")
        fig.suptitle(f"the first {count} {self.split} images (green: exact; live, the browser steps through all "
                     f"{len(self.result['candidates'])})", fontsize=10)
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.62, wspace=0.1)
        return fig

    def build(self):
        import ipywidgets as widgets

        slider = widgets.IntSlider(min=1, max=len(self.order()), value=1, description="image",
                                   continuous_update=False)
        slider.add_class("hwlib-position")
        wrong_only = widgets.Checkbox(value=False, description="only captions that are not exactly right", indent=False,
                                      layout=widgets.Layout(width="auto"))
        picture = widgets.Image(format="png", layout=widgets.Layout(width="220px"))
        picture.add_class("hwlib-figure")
        text = widgets.HTML()
        text.add_class("hwlib-formula")

        def redraw(*_):
            i = self.order()[min(slider.value, len(self.order())) - 1]
            png = self.picture(i)
            picture.layout.display = "none" if png is None else ""
            if png is not None:
                picture.value = png
            url = "" if png is not None else f"<br>{html.escape(str(self.data[f'{self.split}_urls'][int(self.result['image_idxs'][i])]))}"
            text.value = self.describe(i) + url
            self.publish()

        def toggle(change):
            self.only_wrong = change["new"]
            slider.max = len(self.order())
            slider.value = 1
            redraw()

        slider.observe(redraw, names="value")
        wrong_only.observe(toggle, names="value")
        redraw()
        return widgets.VBox([widgets.HBox([slider, wrong_only]), widgets.HBox([picture, text])])


def caption_browser(data, split: str, result: dict) -> CaptionBrowser:
    """The caption browser (see the module docstring); display it as the last line of a cell."""
    return CaptionBrowser(data, split, result)

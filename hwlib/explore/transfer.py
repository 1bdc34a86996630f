"""The transfer pager (Q5): the ``visualize_model`` grid, page by page, for each trained model.

Page ``p`` of ``P`` shows the validation images ``p, p + P, p + 2P, ...``: every page is spread
over the whole validation set (whose classes are stored one after the other), and the pages
together show every image once. A selector switches between the models (fine-tuned, frozen, from
scratch), so the same images can be compared across them; the caption says how many of the page's
images each model gets right. Static (executed headless), it shows the first page of every model.
"""

from __future__ import annotations

from ..transfer import visualize_model
from ..transfer_setup import IMAGENET_MEAN, IMAGENET_STD
from ._common import Explorer, figure_png, picture_widget, show_static, student_call, verdict_html

__all__ = ["TransferPager", "transfer_pager"]


class TransferPager(Explorer):
    """See the module docstring. ``models`` maps names to trained models; the rest as ``visualize_model``."""

    css = "transfer"
    name = "transfer pager"

    def __init__(self, device, dataloaders, models: dict, class_names, *, per_page: int = 6, columns: int = 3,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD, static_models=None):
        if not models:
            raise ValueError("transfer_pager: models must map names to trained models")
        self.device, self.dataloaders, self.models = device, dataloaders, dict(models)
        self.class_names, self.columns, self.mean, self.std = class_names, columns, mean, std
        size = len(dataloaders["val"].dataset)
        self.per_page = max(1, min(int(per_page), size))
        self.pages = -(-size // self.per_page)
        self.size = size
        self.model = next(iter(self.models))
        self.page = 0
        self.static_models = list(self.models) if static_models is None else list(static_models)

    def indices(self, page: int | None = None) -> list[int]:
        """The validation images of ``page`` (default: the current one)."""
        page = self.page if page is None else page
        return list(range(page, self.size, self.pages))

    def _draw(self):
        return student_call(visualize_model, self.device, self.dataloaders, self.models[self.model], self.class_names,
                            mean=self.mean, std=self.std, columns=self.columns, indices=self.indices(),
                            title=f"{self.model}: validation page {self.page + 1} of {self.pages}")

    def figure(self):
        fig, message = self._draw()
        if message is not None:
            raise RuntimeError(message)
        return fig

    def _ipython_display_(self):
        """Live: the pager. Static: the first page of each model of ``static_models`` (default: all),
        one figure each -- what the ``visualize_model`` calls it replaces drew."""
        if self.live:
            return super()._ipython_display_()
        current = self.model
        for name in self.static_models:
            self.model = name
            fig, message = self._draw()
            if message is not None:
                print(message)
                continue
            show_static(fig, f"{self.name}: {name}, validation page 1 of {self.pages} (a static picture)")
        self.model = current

    def build(self):
        import ipywidgets as widgets

        pick = widgets.ToggleButtons(options=list(self.models), value=self.model, style={"button_width": "auto"})
        page = widgets.IntSlider(min=1, max=self.pages, value=self.page + 1, description="page",
                                 continuous_update=False)
        page.add_class("hwlib-position")
        picture = picture_widget()
        caption = widgets.HTML()
        caption.add_class("hwlib-formula")

        def redraw(*_):
            self.model, self.page = pick.value, page.value - 1
            fig, message = self._draw()
            if message is not None:
                caption.value = verdict_html([("bad", message)])
                self.publish()
                return
            right = sum(ax.title.get_color() == "green" for ax in fig.axes if ax.get_title())
            picture.value = figure_png(fig)
            caption.value = (f"{self.model}, page {self.page + 1} of {self.pages}: {right} of "
                             f"{len(self.indices())} images right")
            self.publish()

        pick.observe(redraw, names="value")
        page.observe(redraw, names="value")
        redraw()
        return widgets.VBox([pick, page, picture, caption])


def transfer_pager(device, dataloaders, models: dict, class_names, *, per_page: int = 6, columns: int = 3,
                   mean=IMAGENET_MEAN, std=IMAGENET_STD, static_models=None) -> TransferPager:
    """The transfer pager (see the module docstring); display it as the last line of a cell.

    ``static_models``: the models whose first page a static run draws (default: all of them).
    """
    return TransferPager(device, dataloaders, models, class_names, per_page=per_page, columns=columns,
                         mean=mean, std=std, static_models=static_models)

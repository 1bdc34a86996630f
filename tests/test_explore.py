"""The explorers (hwlib.explore): their numbers, their verdicts on stubs and wrong code, and their
static fallback -- a notebook executed headless (papermill/nbclient, nbgrader, the autograder's
runner) gets figures, never a widget that waits, and no frozen progress bar."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest

from hwlib import conv_formulas, layers, progress
from hwlib.explore import conv_explorer, pool_explorer
from hwlib.explore.conv import VIEWS
from hwlib.explore.pool import reference_pool

from .conftest import REPO

matplotlib.use("Agg")  # before pyplot draws anything

STUB_MESSAGE = "conv_forward is yours to write (Q1: test message)"


# --- live or static -------------------------------------------------------------------------------

@pytest.fixture
def watched(monkeypatch):
    """An environment like a JupyterLab kernel's: no grading flags, JPY_SESSION_NAME set (the test
    itself removes PYTEST_CURRENT_TEST, which pytest sets again before the test's call)."""
    for name in ("PYTEST_CURRENT_TEST", "NBGRADER_EXECUTION", "HWLIB_QUIET", "HWLIB_WIDGETS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "/tmp/x.ipynb")
    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    return monkeypatch


def test_live_only_in_a_watched_kernel(watched):
    watched.delenv("PYTEST_CURRENT_TEST", raising=False)  # pytest sets it again for the test's call
    assert progress.live_display()
    watched.delenv("JPY_SESSION_NAME")                 # papermill, nbconvert, nbclient
    assert not progress.live_display()
    watched.setenv("HWLIB_WIDGETS", "1")
    assert progress.live_display()
    for flag in ("NBGRADER_EXECUTION", "HWLIB_QUIET", "PYTEST_CURRENT_TEST"):
        watched.setenv(flag, "1")
        assert not progress.live_display(), f"{flag} must make every display static"
        watched.delenv(flag)
    watched.setattr(progress, "in_kernel", lambda: False)
    watched.setenv("HWLIB_WIDGETS", "0")
    watched.setenv("JPY_SESSION_NAME", "x")
    assert not progress.live_display()


def test_progress_bar_off_in_a_headless_kernel_on_in_a_watched_one(watched):
    watched.delenv("PYTEST_CURRENT_TEST", raising=False)
    assert not progress.progress(range(3)).disable
    watched.delenv("JPY_SESSION_NAME")
    assert progress.progress(range(3)).disable, "a headless notebook would keep a bar frozen at 0 %"
    watched.setattr(progress, "in_kernel", lambda: False)
    assert not progress.progress(range(3)).disable, "a terminal still gets its bar"


def _captions():
    from hwlib.explore import caption_browser

    data = {"val_images": np.linspace(0, 1, 3 * 8 * 8 * 3).reshape(3, 8, 8, 3), "val_urls": ["a", "b", "c"]}
    result = {"image_idxs": np.array([0, 2]), "candidates": [["a", "cat"], ["a", "dog"]],
              "references": [[["a", "cat"]], [["one", "dog"], ["a", "puppy"]]]}
    return caption_browser(data, "val", result)


def _sweep():
    from hwlib.explore import sweep_explorer

    return sweep_explorer({4: _tiny_solver().train(), 8: _tiny_solver().train()}, best=4)


# explorer, the class of the control to change, its new value, text that the new view shows
LIVE_CASES = {"conv": (lambda: conv_explorer(position=0), "IntSlider", 2, "Y[1, 2]"),
              "pool": (lambda: pool_explorer(position=0), "IntSlider", 2, "window 2 (rows 1-2, columns 2-3)"),
              "sweep": (_sweep, "ToggleButtons", 8, "hidden size M = 8"),
              "captions": (_captions, "IntSlider", 2, "val image 2 (2 of 2)")}


@pytest.mark.parametrize("name", list(LIVE_CASES))
def test_live_explorer_shows_its_widget_and_a_snapshot_that_follows_it(watched, name):
    """Live, an explorer shows the widget (its text a sentence, not a VBox repr) and a snapshot of its
    view (a picture, the picture with its text, the text; a widget view with no model, which
    JupyterLab hides): what a saved notebook shows once the widget is gone. Every change of the view
    updates the snapshot through its display id."""
    import base64

    from IPython import display as ipython_display

    from hwlib.explore._common import WIDGET_VIEW

    make, control_type, value, text = LIVE_CASES[name]
    shown, updated = [], []
    watched.setattr(ipython_display, "display", lambda obj, **kw: shown.append((obj, kw)))
    watched.setattr(ipython_display, "update_display", lambda obj, **kw: updated.append((obj, kw)))
    ex = make()
    watched.delenv("PYTEST_CURRENT_TEST", raising=False)
    ex._ipython_display_()
    assert len(shown) == 2, shown
    (widget, _), (snapshot, options) = shown
    assert widget[WIDGET_VIEW]["model_id"] == ex.widget().model_id
    assert set(widget) == {WIDGET_VIEW, "text/plain"} and widget["text/plain"].startswith(f"{ex.name}: interactive")
    assert snapshot[WIDGET_VIEW]["model_id"] == "" and options == {"raw": True, "display_id": ex.display_id}
    assert set(snapshot) == {WIDGET_VIEW, "text/html", "text/plain", "image/png"}
    picture = next(w for w in _walk(ex.widget()) if "hwlib-figure" in getattr(w, "_dom_classes", ()))
    assert base64.b64decode(snapshot["image/png"]) == bytes(picture.value)
    assert snapshot["text/html"].count('<img class="hwlib-figure" src="data:image/png;base64,') == 1
    assert f"hwlib-{ex.css}-explorer" in snapshot["text/html"] and text not in snapshot["text/plain"]
    control = next(w for w in _walk(ex.widget()) if type(w).__name__ == control_type)
    control.value = value
    assert updated, "the snapshot was not updated"
    latest, options = updated[-1]
    assert options == {"raw": True, "display_id": ex.display_id}
    assert text in latest["text/plain"], latest["text/plain"]
    assert latest["image/png"] != snapshot["image/png"]
    assert base64.b64decode(latest["image/png"]) == bytes(picture.value)
    plt.close("all")


def test_static_explorer_text_is_a_sentence(monkeypatch):
    from IPython import display as ipython_display

    shown = []
    monkeypatch.setattr(ipython_display, "display", lambda obj, **kw: shown.append(obj))
    pool_explorer()._ipython_display_()
    assert set(shown[0]) == {"image/png", "text/plain"}
    assert shown[0]["text/plain"].startswith("max-pool explorer: a static picture")


@pytest.mark.parametrize("case", ["done", "done, leave=True", "stopped"])
def test_live_progress_bar_leaves_no_widget_behind(watched, case):
    """Live, the bar is tqdm's widget; closed, its output becomes text (its last line with leave=True or
    when it stopped early, nothing otherwise): a saved notebook then holds no view of a closed widget,
    which JupyterLab shows as "Error displaying widget: model not found" when it is opened again."""
    from IPython import display as ipython_display

    updates, shown = [], []

    class Handle:
        def update(self, obj, **kw):
            updates.append((obj, kw))

    watched.setattr(ipython_display, "display", lambda obj, **kw: shown.append((obj, kw)) or Handle())
    watched.delenv("PYTEST_CURRENT_TEST", raising=False)
    bar = progress.progress(total=5, desc="epoch 1/1", leave=case.endswith("leave=True"))
    assert type(bar).__name__ == "NotebookBar" and shown == [(bar.container, {"display_id": True})]
    bar.update(2 if case == "stopped" else 5)
    bar.close()
    assert bar.container.comm is None, "the widget is closed"
    (bundle, options), = updates
    assert set(bundle) == {"text/plain"} and options == {"raw": True}
    text = bundle["text/plain"]
    if case == "done":
        assert text == ""
    else:
        start, count = ("epoch 1/1: 100%|", " 5/5 ") if case == "done, leave=True" else ("epoch 1/1:  40%|", " 2/5 ")
        assert text.startswith(start) and count in text, text


# --- convolution ----------------------------------------------------------------------------------

def _cells(explorer):
    for position in range(explorer.size()):
        explorer.position = position
        yield explorer.state()


@pytest.mark.parametrize("view", VIEWS)
def test_conv_explorer_values_are_the_formulas(view):
    ex = conv_explorer(view=view)
    A, K = ex.images["small array"], ex.kernels[ex.kernel]
    expected = {"filtering": conv_formulas.filt(A, K), "valid convolution": conv_formulas.valid(A, K),
                "full convolution": conv_formulas.full(A, K)}
    dY = ex.case().get("dY")
    expected["backward: dX"] = conv_formulas.full(dY, K) if dY is not None else None
    expected["backward: dK"] = conv_formulas.filt(A, dY) if dY is not None else None
    values = np.array([s["value"] for s in _cells(ex)]).reshape(expected[view].shape)
    np.testing.assert_allclose(values, expected[view])
    assert all(kind == "ok" for kind, _ in ex.state()["verdict"]), ex.state()["verdict"]
    # the formula's written sum is the value
    assert ex.state()["formula"].split(" = ")[-1].split()[0] == f"{ex.state()['value']:.4g}"


def test_conv_explorer_formula_of_a_blank_window_says_zero_once():
    ex = conv_explorer(images={"blank corner": np.pad(np.ones((2, 2)), ((0, 4), (0, 4)))}, position=3 * 4 + 3)
    formula = ex.state()["formula"]  # the window at rows 4-6, columns 4-6 holds only zeros
    assert formula == "Y[4, 4] = sum over p, q of A[4+p-1, 4+q-1] * K[p, q] = 0 (all 9 products are 0)", formula
    ex.position = 0  # the window with the ones: two non-zero products (K's middle column is 0)
    formula = ex.state()["formula"]
    assert formula.endswith("= 1*1 + 1*2 = 3 (7 zero products left out)"), formula
    for view in ("backward: dX", "backward: dK"):
        ex.view = view
        assert all(s["formula"].count(" = 0") <= 1 and "= 0 = 0" not in s["formula"] for s in _cells(ex)), view


def test_conv_explorer_window_moves_with_the_position():
    ex = conv_explorer(position=0)
    first = ex.state()
    ex.position = 1
    second = ex.state()
    assert first["cell"] == (0, 0) and second["cell"] == (0, 1)
    assert "columns 1-3" in first["where"] and "columns 2-4" in second["where"]


def test_conv_explorer_shows_a_stub_message_not_a_traceback(monkeypatch):
    def stub(x, w):
        raise NotImplementedError(STUB_MESSAGE)

    monkeypatch.setattr(layers, "conv_forward", stub)
    ex = conv_explorer(view="filtering")
    kind, text = ex.state()["verdict"][0]
    assert kind == "bad" and text == f"NotImplementedError: {STUB_MESSAGE}"
    assert ex.state()["value"] == conv_formulas.filt(ex.images["small array"], ex.kernels[ex.kernel]).flat[ex.position]
    plt.close(ex.figure())  # the reference picture is still drawn


def test_conv_explorer_shows_a_wrong_result_beside_the_reference(monkeypatch):
    right = layers.conv_forward
    monkeypatch.setattr(layers, "conv_forward", lambda x, w: right(x, w[:, :, ::-1, ::-1]))  # flips: wrong
    ex = conv_explorer(view="filtering", position=0)
    lines = ex.state()["verdict"]
    assert lines[0][0] == "bad" and "different" in lines[0][1]
    assert lines[1][0] == "bad" and "differs from the reference at" in lines[1][1]


def test_conv_explorer_backward_reports_a_wrong_gradient(monkeypatch):
    right = layers.conv_backward
    monkeypatch.setattr(layers, "conv_backward", lambda dout, cache: tuple(2 * g for g in right(dout, cache)))
    for view in ("backward: dX", "backward: dK"):
        ex = conv_explorer(view=view)
        assert any(kind == "bad" for kind, _ in ex.state()["verdict"]), view


def test_conv_explorer_kernel_larger_than_input_is_a_message():
    ex = conv_explorer(images={"tiny": np.ones((2, 2))}, kernels={"big": np.ones((3, 3))})
    assert ex.size() == 0 and "larger than the input" in ex.state()["formula"]
    plt.close(ex.figure())


def test_conv_explorer_widget_slider_redraws(monkeypatch):
    ex = conv_explorer(position=0)
    box = ex.widget()
    assert "hwlib-conv-explorer" in box._dom_classes
    slider = next(w for w in _walk(box) if "hwlib-position" in getattr(w, "_dom_classes", ()))
    formula = next(w for w in _walk(box) if "hwlib-formula" in getattr(w, "_dom_classes", ()))
    picture = next(w for w in _walk(box) if "hwlib-figure" in getattr(w, "_dom_classes", ()))
    before = (formula.value, picture.value)
    slider.value = 2
    assert formula.value != before[0] and picture.value != before[1]
    assert "Y[1, 2]" in formula.value


def _grid_numbers(fig):
    """``[(text, cell width in pixels)]`` of every number written in a grid cell of ``fig``, as saved."""
    from hwlib.explore._common import DPI

    fig.set_dpi(DPI)
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        images = ax.get_images()
        if not images:
            continue
        columns = images[0].get_array().shape[1]
        for text in ax.texts:
            found.append((text, ax.get_window_extent(renderer).width / columns, text.get_window_extent(renderer)))
    return found


@pytest.mark.parametrize("case", ["small", "digit-learned", "q6", "pool"])
def test_grid_numbers_are_large_and_fit_their_cells(case):
    """The numbers in the grids are GRID_FONT_PT (at least 11 px on screen: the picture is at most
    MAX_WIDTH_PX wide, so JupyterLab shows it unscaled) and each fits inside its cell."""
    from hwlib.explore._common import DPI, GRID_FONT_PT, MAX_WIDTH_PX

    rng = np.random.default_rng(0)
    digit = np.clip(rng.standard_normal((28, 28)), 0, 1).round(2)
    learned = {"w": (rng.standard_normal((7, 7)) * 0.06).round(2)}
    explorers = {"small": [conv_explorer(view=v) for v in VIEWS],
                 "digit-learned": [conv_explorer(images={"digit": digit}, kernels=learned, view=v) for v in VIEWS],
                 "q6": [conv_explorer(images={"X": rng.standard_normal((5, 7)).round(2)},
                                      kernels={"K": rng.standard_normal((2, 3)).round(2)}, view=v) for v in VIEWS],
                 "pool": [pool_explorer(pools={name: pool}) for name, pool in pool_explorer().pools.items()]}[case]
    assert GRID_FONT_PT * DPI / 72 >= 11
    for ex in explorers:
        for notes in (False, True):
            fig = ex.figure(notes=notes)
            assert fig.get_figwidth() * DPI <= MAX_WIDTH_PX + 0.5, (case, fig.get_figwidth() * DPI)
            numbers = _grid_numbers(fig)
            assert numbers, f"{case}: no numbers written"
            for text, cell, box in numbers:
                assert text.get_fontsize() == GRID_FONT_PT, (case, text.get_text(), text.get_fontsize())
                assert box.width <= cell - 2, \
                    f"{case}: {text.get_text()!r} ({box.width:.0f} px) overflows its {cell:.0f} px cell"
            plt.close(fig)


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


# --- max-pooling ----------------------------------------------------------------------------------

def test_pool_reference_ties_go_to_the_first_maximum():
    x = np.array([[1, 9], [9, 0]], dtype=float)
    out, winners = reference_pool(x, {"pool_height": 2, "pool_width": 2, "stride": 1})
    assert out.tolist() == [[9]] and winners == [(0, 1)]


def test_pool_explorer_accumulates_overlapping_windows():
    ex = pool_explorer(position=5)   # 2x2 stride 1 window (rows 2-3, columns 1-2): 9 tie 9
    state = ex.state()
    assert state["winner"] == (1, 1) and state["ties"] == [(2, 0)]
    assert "1 + 2 + 6 = 9 so far" in state["text"]
    assert all(kind == "ok" for kind, _ in state["verdict"])
    plt.close(ex.figure())


def test_pool_explorer_flags_a_backward_that_picks_the_last_maximum(monkeypatch):
    def last_max_backward(dout, cache):
        x, pool = cache[0], cache[1]
        dx = np.zeros_like(x)
        ph, pw, s = pool["pool_height"], pool["pool_width"], pool["stride"]
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                window = x[0, 0, i * s:i * s + ph, j * s:j * s + pw]
                flat = window.size - 1 - np.argmax(window.ravel()[::-1])
                a, b = np.unravel_index(flat, window.shape)
                dx[0, 0, i * s + a, j * s + b] += dout[0, 0, i, j]
        return dx

    monkeypatch.setattr(layers, "max_pool_forward", _ref_forward)
    monkeypatch.setattr(layers, "max_pool_backward", last_max_backward)
    lines = pool_explorer(position=5).state()["verdict"]
    assert lines[0][0] == "ok" and lines[1][0] == "bad" and "differs at" in lines[1][1]


def _ref_forward(x, pool):
    out, _ = reference_pool(x[0, 0], pool)
    return out[None, None], (x, pool)


def test_pool_explorer_stub_message(monkeypatch):
    def stub(x, pool):
        raise NotImplementedError("max_pool_forward is yours to write (Q1 test)")

    monkeypatch.setattr(layers, "max_pool_forward", stub)
    assert pool_explorer().state()["verdict"] == [("bad", "NotImplementedError: max_pool_forward is yours to write (Q1 test)")]


# --- curves, captions, transfer -------------------------------------------------------------------

def _tiny_solver(**options):
    from hwlib.classifiers import SoftmaxClassifier
    from hwlib.solver import Solver

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    model = SoftmaxClassifier(input_dim=5, hidden_dim=4, num_classes=3, weight_scale=0.1, rng=rng)
    data = {"X_train": X[:40], "y_train": y[:40], "X_val": X[40:], "y_val": y[40:]}
    return Solver(model, data, optim_config={"learning_rate": 0.1}, batch_size=10, num_epochs=3, verbose=False,
                  **options)


def test_solver_calls_on_epoch_every_epoch():
    seen = []
    _tiny_solver(on_epoch=lambda s: seen.append((s.epoch, len(s.val_acc_history)))).train()
    assert seen == [(1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError, match="on_epoch must be a callable"):
        _tiny_solver(on_epoch=3)


def test_train_live_static_draws_once_at_the_end(monkeypatch):
    from IPython import display as ipython_display

    from hwlib.explore.curves import LiveCurves, train_live

    shown = []
    monkeypatch.setattr(ipython_display, "display", lambda obj, **kw: shown.append(obj))
    solver = _tiny_solver()
    assert train_live(solver, title="tiny") is None, "a cell ending with train_live(...) would print a repr"
    assert solver.on_epoch is None and len(solver.val_acc_history) == 4
    assert len(shown) == 1 and set(shown[0]) == {"image/png", "text/plain"}
    assert shown[0]["text/plain"].startswith("learning curves of tiny: epoch 3, 12 iterations")
    live = LiveCurves(live=True)
    handles = []

    class Handle:
        def update(self, obj, **kw):
            handles.append(obj)

    monkeypatch.setattr(ipython_display, "display", lambda obj, **kw: Handle())
    _tiny_solver(on_epoch=live).train()
    assert [sorted(b) for b in handles] == [["image/png", "text/plain"]] * 3 and live.redraws == 3, \
        "live: one redraw per epoch"
    assert "epoch 3" in handles[-1]["text/plain"], "the saved output says what it shows, not <Image object>"


def test_solver_progress_bar_counts_short_epochs(monkeypatch):
    """A short epoch ends before tqdm's own refresh interval: the bar must still show its iterations
    (it read "epoch 15/15: 0% 0/60" when the Solver iterated the bar, whose count lags behind)."""
    import io

    from tqdm.std import tqdm

    from hwlib import solver as solver_module

    screen, bars = io.StringIO(), []

    def visible_bar(iterable=None, **kwargs):  # a terminal's bar, refreshed only when asked to
        kwargs.update(disable=False, file=screen, mininterval=3600, miniters=10**6, ascii=True)
        bars.append(tqdm(iterable, **kwargs))
        return bars[-1]

    monkeypatch.setattr(solver_module, "progress", visible_bar)
    seen = []
    _tiny_solver(on_epoch=lambda s: seen.append((bars[0].n, str(bars[0])))).train()
    assert [n for n, _ in seen] == [4, 8, 12], "the count after each 4-iteration epoch"
    assert seen[-1][1].startswith("epoch 3/3: 100%|"), seen[-1][1]
    shown = screen.getvalue()
    for epoch, count in ((1, 4), (2, 8), (3, 12)):
        assert f"epoch {epoch}/3" in shown and f" {count}/12 " in shown, f"epoch {epoch}: {shown!r}"


def test_loss_axes_have_plain_tick_labels():
    from hwlib.explore import sweep_explorer
    from hwlib.plots import plot_loss, plot_training

    losses = np.linspace(2.5, 1.9, 50)  # less than a decade: matplotlib would write 2x10^0 and so on
    solver = _tiny_solver().train()
    figures = {"plot_loss": (plot_loss(losses, log_loss=True), 0),
               "plot_training": (plot_training(solver, log_loss=True), 0),
               "sweep_explorer": (sweep_explorer({4: solver, 8: _tiny_solver().train()}).figure(), 2)}
    for name, (fig, index) in figures.items():
        fig.canvas.draw()
        ax = fig.axes[index]
        low, high = ax.get_ylim()
        labels = [t.get_text() for t in ax.yaxis.get_majorticklabels() + ax.yaxis.get_minorticklabels()
                  if t.get_text() and low <= t.get_position()[1] <= high]
        assert ax.get_yscale() == "log" and len(labels) >= 2, (name, labels)
        assert all(re.fullmatch(r"\d+(\.\d+)?", label) for label in labels), (name, labels)
        plt.close(fig)
    fig = plot_loss(losses, log_loss=True)
    fig.canvas.draw()
    shown = [t.get_text() for t in fig.axes[0].yaxis.get_minorticklabels() if t.get_text()]
    assert {"2", "2.2", "2.4"} <= set(shown), shown
    plt.close(fig)


def test_sweep_explorer_selects_a_setting():
    from hwlib.explore import sweep_explorer

    solvers = {m: _tiny_solver().train() for m in (4, 8)}
    ex = sweep_explorer(solvers)
    assert ex.selected == ex.best
    box = ex.widget()
    pick = box.children[0]
    pick.value = 8 if ex.best == 4 else 4
    assert ex.selected == pick.value and f"= {pick.value}" in box.children[2].value


def test_caption_browser_marks_exact_captions():
    from hwlib.explore import caption_browser

    data = {"val_images": np.zeros((3, 8, 8, 3)), "val_urls": ["a", "b", "c"]}
    result = {"image_idxs": np.array([0, 2]), "candidates": [["a", "cat"], ["a", "dog"]],
              "references": [[["a", "cat"]], [["one", "dog"], ["a", "puppy"]]]}
    ex = caption_browser(data, "val", result)
    assert ex.exact(0) and not ex.exact(1)
    ex.only_wrong = True
    assert ex.order() == [1]
    assert "#c62828" in ex.describe(1) and "a puppy" in ex.describe(1)
    box = ex.widget()
    assert "hwlib-captions-explorer" in box._dom_classes
    plt.close(ex.figure())


def test_transfer_pager_pages_cover_the_validation_set():
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from hwlib.explore import transfer_pager

    images, labels = torch.zeros(7, 1, 8, 8), torch.tensor([0, 0, 0, 1, 1, 1, 1])
    loaders = {"val": DataLoader(TensorDataset(images, labels), batch_size=4)}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2))
    pager = transfer_pager("cpu", loaders, {"net": model}, ["a", "b"], per_page=3, mean=[0.0], std=[1.0])
    pages = [pager.indices(p) for p in range(pager.pages)]
    assert sorted(i for page in pages for i in page) == list(range(7)) and pages[0] == [0, 3, 6]
    fig = pager.figure()
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    plt.close(fig)


# --- headless execution: figures, never a waiting widget ------------------------------------------

EXPLORER_CELLS = [
    "from hwlib.explore import conv_explorer, pool_explorer\nfrom hwlib.progress import progress",
    "conv_explorer()",
    "pool_explorer()",
    "for _ in progress(range(50), desc='work'):\n    pass",
]


def _execute(tmp_path: Path, extra_env: dict, runner: str = "nbclient") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in EXPLORER_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, out = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, src)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_CURRENT_TEST", "HWLIB_QUIET", "NBGRADER_EXECUTION", "HWLIB_WIDGETS", "JPY_SESSION_NAME")}
    env.update({"MPLBACKEND": "module://matplotlib_inline.backend_inline", **extra_env})
    if runner == "nbclient":
        code = ("import sys, nbformat; from nbclient import NotebookClient\n"
                "nb = nbformat.read(sys.argv[1], 4); NotebookClient(nb, timeout=120, kernel_name='python3').execute()\n"
                "nbformat.write(nb, sys.argv[2])")
        argv = [sys.executable, "-c", code, str(src), str(out)]
    else:  # the autograder's own runner (grading/autograde/sandbox_exec.py), outside the sandbox
        env.update({"JUPYTER_DATA_DIR": str(tmp_path / "jdata"), "HW4_SITE_PACKAGES": os.pathsep.join(sys.path[1:])})
        argv = [sys.executable, "-I", "-S", str(REPO / "grading" / "autograde" / "sandbox_exec.py"), str(src), str(out),
                "60", str(REPO)]
    subprocess.run(argv, env=env, check=True, timeout=300, cwd=REPO)
    return nbformat.read(out, as_version=4)


def _mimes(nb) -> list[set]:
    return [{m for o in cell.outputs for m in o.get("data", {})} | {o.output_type for o in cell.outputs}
            for cell in nb.cells]


@pytest.mark.slow
@pytest.mark.parametrize("env", [{}, {"NBGRADER_EXECUTION": "autograde", "HWLIB_QUIET": "1"}],
                         ids=["papermill-like", "nbgrader"])
def test_headless_execution_draws_figures_and_no_bar(tmp_path, env):
    mimes = _mimes(_execute(tmp_path, env))
    for index in (1, 2):
        assert "image/png" in mimes[index], f"cell {index}: expected a static figure, got {mimes[index]}"
        assert "application/vnd.jupyter.widget-view+json" not in mimes[index]
    assert "error" not in set().union(*mimes)
    assert mimes[3] == set(), f"no progress bar in a headless run; got {mimes[3]}"


@pytest.mark.slow
def test_autograder_runner_draws_figures(tmp_path):
    nb = _execute(tmp_path, {"NBGRADER_EXECUTION": "autograde", "HWLIB_QUIET": "1"}, runner="sandbox_exec")
    mimes = _mimes(nb)
    assert "image/png" in mimes[1] and "image/png" in mimes[2] and "error" not in set().union(*mimes), mimes


@pytest.mark.slow
def test_forced_widgets_do_not_block_a_headless_run(tmp_path):
    """Even with widgets forced on where no frontend answers, execution finishes (nothing waits)."""
    nb = _execute(tmp_path, {"HWLIB_WIDGETS": "1"})
    mimes = _mimes(nb)
    assert "application/vnd.jupyter.widget-view+json" in mimes[1] and "error" not in set().union(*mimes)
    for index in (1, 2):  # as saved: beside each widget, a picture of its view for whoever has no widget
        widget, snapshot = nb.cells[index].outputs
        assert widget.data["application/vnd.jupyter.widget-view+json"]["model_id"] != ""
        assert "interactive while the notebook's kernel runs it" in widget.data["text/plain"]
        assert snapshot.data["application/vnd.jupyter.widget-view+json"]["model_id"] == ""
        assert {"image/png", "text/html", "text/plain"} <= set(snapshot.data), set(snapshot.data)


# --- the course's JupyterLab settings -------------------------------------------------------------

def test_lab_command_uses_the_course_settings_and_opens_the_readme():
    import json

    from hwlib.lab import SETTINGS, lab_command

    overrides = json.loads((SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"] == {"fetchNews": "false", "checkForUpdates": False}
    assert overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["markdown"] == "Markdown Preview"
    command = lab_command(["--no-browser"])
    assert f"--LabApp.app_settings_dir={SETTINGS}" in command and "--LabApp.default_url=/lab/tree/README.md" in command
    assert command[-1] == "--no-browser" and SETTINGS == REPO / "jupyter" / "settings"
    # Saved explorers (hwlib.explore): the widgets' state goes into the notebook, so that a notebook saved
    # and opened again shows them, not "Error displaying widget: model not found".
    assert overrides["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True}
    share = Path(sys.prefix) / "share" / "jupyter"
    for plugin, settings in overrides.items():   # every override names a real plugin and setting
        package, _, name = plugin.partition(":")
        # JupyterLab's own plugins, then those of prebuilt extensions (ipywidgets' manager)
        path = next(p for p in (share / "lab" / "schemas" / package / f"{name}.json",
                                share / "labextensions" / package / "schemas" / package / f"{name}.json") if p.is_file())
        schema = json.loads(path.read_text())
        assert set(settings) <= set(schema["properties"]), (plugin, set(settings) - set(schema["properties"]))

"""The explorers (hwlib.explore): their numbers, their verdicts on stubs and wrong code, and their
static fallback -- a notebook executed headless (papermill/nbclient, nbgrader, the autograder's
runner) gets figures, never a widget that waits, and no frozen progress bar."""

from __future__ import annotations

import os
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
    monkeypatch.setattr(ipython_display, "display", lambda obj, **kw: shown.append(type(obj).__name__))
    solver = train_live(_tiny_solver(), title="tiny")
    assert shown == ["Image"] and solver.on_epoch is None and len(solver.val_acc_history) == 4
    live = LiveCurves(live=True)
    handles = []

    class Handle:
        def update(self, obj):
            handles.append(type(obj).__name__)

    monkeypatch.setattr(ipython_display, "display", lambda obj, **kw: Handle())
    _tiny_solver(on_epoch=live).train()
    assert handles == ["Image"] * 3 and live.redraws == 3, "live: one redraw per epoch"


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
    mimes = _mimes(_execute(tmp_path, {"HWLIB_WIDGETS": "1"}))
    assert "application/vnd.jupyter.widget-view+json" in mimes[1] and "error" not in set().union(*mimes)


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
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    for plugin, settings in overrides.items():   # every override names a real plugin and setting
        package, _, name = plugin.partition(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text())
        assert set(settings) <= set(schema["properties"]), (plugin, set(settings) - set(schema["properties"]))

"""hwlib.plots draws what it is given, rejects bad input, and leaves matplotlib's settings alone."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless; set before pyplot is imported anywhere in this process

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from hwlib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


class FakeSolver:
    """The attributes of a trained hwlib.solver.Solver that plot_training reads."""

    def __init__(self, with_val=True):
        self.model = object()
        self.num_train, self.batch_size = 1000, 100           # 10 iterations per epoch
        self.loss_history = list(np.linspace(2.3, 0.3, 30))   # 3 epochs
        self.check_iterations = [1, 10, 20, 30] if with_val else []
        self.train_acc_history = [0.1, 0.5, 0.7, 0.8] if with_val else []
        self.val_acc_history = [0.1, 0.45, 0.65, 0.75] if with_val else []


def test_plot_training_draws_loss_per_iteration_and_accuracy_per_epoch():
    fig = plots.plot_training(FakeSolver(), title="run")
    ax_loss, ax_acc = fig.axes
    raw = ax_loss.lines[0]
    np.testing.assert_allclose(raw.get_xdata(), np.arange(1, 31) / 10)
    np.testing.assert_allclose(raw.get_ydata(), np.linspace(2.3, 0.3, 30))
    smooth = ax_loss.lines[1].get_ydata()   # window 1 (a tenth of a 10-iteration epoch): the raw loss
    np.testing.assert_allclose(smooth, np.linspace(2.3, 0.3, 30))
    train, val = ax_acc.lines
    np.testing.assert_allclose(val.get_xdata(), [0.1, 1, 2, 3])
    np.testing.assert_allclose(val.get_ydata(), [0.1, 0.45, 0.65, 0.75])
    np.testing.assert_allclose(train.get_ydata(), [0.1, 0.5, 0.7, 0.8])
    assert fig._suptitle.get_text() == "run"


def test_plot_training_smooths_with_a_moving_average():
    fig = plots.plot_training(FakeSolver(), smooth=3)
    losses = np.linspace(2.3, 0.3, 30)
    expected = [losses[max(0, i - 2):i + 1].mean() for i in range(30)]
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), expected)


def test_plot_training_zooms_past_the_first_accuracy_and_draws_log_loss():
    solver = FakeSolver()
    solver.train_acc_history = [0.1, 0.97, 0.98, 0.99]
    solver.val_acc_history = [0.1, 0.96, 0.975, 0.98]
    fig = plots.plot_training(solver, log_loss=True)
    low, high = fig.axes[1].get_ylim()
    assert 0.9 < low < 0.96 and 1.0 <= high < 1.01, (low, high)
    assert fig.axes[0].get_yscale() == "log"
    low, _ = plots.plot_training(solver, zoom=False).axes[1].get_ylim()
    assert low < 0.1
    low, _ = plots.plot_training(FakeSolver()).axes[1].get_ylim()   # 0.1 then 0.45..0.8: no zoom
    assert low < 0.1


def test_plot_training_without_validation_and_before_training():
    fig = plots.plot_training(FakeSolver(with_val=False))
    assert not fig.axes[1].lines
    empty = FakeSolver()
    empty.loss_history = []
    with pytest.raises(ValueError, match=r"loss_history is empty; call solver.train\(\) first"):
        plots.plot_training(empty)


def test_show_images_grid_titles_and_scaling():
    rng = np.random.default_rng(0)
    digits = rng.uniform(0, 1, size=(5, 1, 28, 28))
    fig = plots.show_images(digits, titles=[f"label {i}" for i in range(5)], ncols=3, scale="all")
    assert len(fig.axes) == 6                                 # 2 rows x 3 columns, one left empty
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 5 and [ax.get_title() for ax in shown] == [f"label {i}" for i in range(5)]
    np.testing.assert_array_equal(shown[2].images[0].get_array(), digits[2, 0])
    assert shown[0].images[0].get_clim() == (digits.min(), digits.max())
    fig = plots.show_filters(rng.standard_normal((4, 1, 7, 7)), ncols=4)
    clims = [ax.images[0].get_clim() for ax in fig.axes]
    assert len(set(clims)) == 4, "each filter is scaled to its own range"


@pytest.mark.parametrize("call, match", [
    (lambda: plots.show_images(np.zeros((2, 3, 8, 8))), r"images must have shape \(N, H, W\) or \(N, 1, H, W\).*got shape \(2, 3, 8, 8\)"),
    (lambda: plots.show_images(np.zeros((2, 8, 8)), titles=["a"]), r"titles must have one entry per image \(2\); got 1"),
    (lambda: plots.show_images(np.zeros((2, 8, 8)), scale="some"), r"scale must be 'each' or 'all'"),
    (lambda: plots.show_filters(np.zeros((4, 7, 7))), r"W must have shape \(F, C, k, k\); got shape \(4, 7, 7\)"),
    (lambda: plots.plot_sweep([1, 2], [0.5], xlabel="x"), r"values and scores must be 1-D of the same length"),
])
def test_bad_input_raises_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_plot_sweep_marks_the_best_setting():
    fig = plots.plot_sweep([25, 50, 100], [0.9, 0.95, 0.93], xlabel="hidden size", best=50)
    line, star = fig.axes[0].lines
    np.testing.assert_array_equal(star.get_xdata(), [50])
    np.testing.assert_array_equal(star.get_ydata(), [0.95])


def test_plots_leave_rcparams_alone():
    before = dict(matplotlib.rcParams)
    plots.plot_training(FakeSolver())
    plots.show_filters(np.ones((2, 1, 3, 3)))
    plots.plot_sweep([1, 2], [0.1, 0.2], xlabel="x")
    assert dict(matplotlib.rcParams) == before

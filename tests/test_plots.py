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


def test_moving_average_is_shorter_at_the_start():
    values = np.array([4.0, 2.0, 6.0, 0.0, 8.0])
    np.testing.assert_allclose(plots.moving_average(values, 2), [4, 3, 4, 3, 4])
    np.testing.assert_allclose(plots.moving_average(values, 3), [4, 3, 4, 8 / 3, 14 / 3])
    np.testing.assert_allclose(plots.moving_average(values, 1), values)
    np.testing.assert_allclose(plots.moving_average(values, 99), np.cumsum(values) / np.arange(1, 6))
    with pytest.raises(ValueError, match="window must be a positive integer; got 0"):
        plots.moving_average(values, 0)


def test_plot_loss_per_iteration_with_target_and_log_scale():
    losses = np.geomspace(5.0, 0.05, 40)
    fig = plots.plot_loss(losses, log_loss=True, target=0.1, title="overfitting")
    ax = fig.axes[0]
    raw, target = ax.lines   # no moving average unless asked for
    np.testing.assert_allclose(raw.get_xdata(), np.arange(1, 41))
    np.testing.assert_allclose(raw.get_ydata(), losses)
    np.testing.assert_allclose(target.get_ydata(), [0.1, 0.1])
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "iteration" and ax.get_title() == "overfitting"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["minibatch loss", "0.1"]


def test_plot_loss_per_epoch_with_moving_average_on_given_axes():
    _, ax = plt.subplots()
    losses = np.linspace(3.0, 1.0, 30)
    fig = plots.plot_loss(losses, per_epoch=10, smooth=4, ax=ax)
    assert fig is ax.figure and ax.get_xlabel() == "epoch" and ax.get_yscale() == "linear"
    raw, smooth = ax.lines
    np.testing.assert_allclose(raw.get_xdata(), np.arange(1, 31) / 10)
    np.testing.assert_allclose(smooth.get_ydata(), plots.moving_average(losses, 4))
    assert smooth.get_label() == "moving average (4 it.)"
    with pytest.raises(ValueError, match=r"losses must be a non-empty 1-D sequence.*got shape \(0,\)"):
        plots.plot_loss([])


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


# --- transfer learning (Q5) ---------------------------------------------------------------------------

def _history(offset=0.0, epochs=3):
    return {"train_loss": list(np.linspace(1.0, 0.5, epochs) + offset), "val_loss": list(np.linspace(1.1, 0.6, epochs)),
            "train_acc": list(np.linspace(0.5, 0.9, epochs)), "val_acc": list(np.linspace(0.4, 0.8, epochs) + offset)}


def test_plot_history_draws_train_dashed_and_val_solid_per_run():
    fig = plots.plot_history({"finetune": _history(), "freeze": _history(0.05)}, title="runs")
    ax_loss, ax_acc = fig.axes
    assert [line.get_label() for line in ax_acc.lines] == ["finetune train", "finetune val", "freeze train", "freeze val"]
    assert [line.get_linestyle() for line in ax_loss.lines] == ["--", "-", "--", "-"]
    np.testing.assert_allclose(ax_acc.lines[3].get_ydata(), _history(0.05)["val_acc"])
    np.testing.assert_array_equal(ax_loss.lines[0].get_xdata(), [1, 2, 3])
    assert fig._suptitle.get_text() == "runs"
    single = plots.plot_history(_history())                       # one history, not a dict of them
    assert [line.get_label() for line in single.axes[1].lines] == ["train", "val"]


def test_plot_history_reads_the_keys_train_model_records():
    from hwlib.transfer import HISTORY_KEYS

    history = _history()
    assert set(history) == set(HISTORY_KEYS)
    plots.plot_history(history)
    del history["val_acc"]
    with pytest.raises(ValueError, match=r"history 'run' lacks \['val_acc'\]"):
        plots.plot_history({"run": history})


def test_show_predictions_unnormalises_and_colours_the_captions():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    pixels = np.random.default_rng(1).uniform(0, 1, size=(3, 3, 4, 5)).astype(np.float32)   # (N, C, H, W) in [0, 1]
    normalised = (pixels - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(std, (1, 3, 1, 1))
    fig = plots.show_predictions(normalised, [0, 1, 1], [0, 0, 1], ["ant", "bee"], mean=mean, std=std, columns=2,
                                 title="val")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 4 and len(shown) == 3                 # 2 x 2 grid, one left empty
    np.testing.assert_allclose(shown[1].images[0].get_array(), pixels[1].transpose(1, 2, 0), atol=1e-6)
    assert [ax.get_title() for ax in shown] == ["predicted: ant\ntrue: ant", "predicted: bee\ntrue: ant",
                                                "predicted: bee\ntrue: bee"]
    assert [ax.title.get_color() for ax in shown] == ["green", "red", "green"]
    grey = plots.show_predictions(np.full((1, 1, 4, 4), 5.0), [0], [0], ["7"], mean=[0.1], std=[0.3])
    np.testing.assert_allclose(grey.axes[0].images[0].get_array(), np.ones((4, 4)))   # clipped to [0, 1]
    with pytest.raises(ValueError, match="mean and std need 1 or 3 entries"):
        plots.show_predictions(normalised, [0, 1, 1], [0, 0, 1], ["ant", "bee"], mean=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"predicted and true need one entry per image \(3\); got 2 and 3"):
        plots.show_predictions(normalised, [0, 1], [0, 0, 1], ["ant", "bee"])


def test_plots_leave_rcparams_alone():
    before = dict(matplotlib.rcParams)
    plots.plot_training(FakeSolver())
    plots.show_filters(np.ones((2, 1, 3, 3)))
    plots.plot_sweep([1, 2], [0.1, 0.2], xlabel="x")
    plots.plot_history(_history())
    plots.show_predictions(np.zeros((1, 1, 3, 3)), [0], [0], ["zero"])
    assert dict(matplotlib.rcParams) == before

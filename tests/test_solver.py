"""The Solver: schedule, best-parameter restore, option checks, divergence, printing, the batch hook."""

from __future__ import annotations

import numpy as np
import pytest

from hwlib.layers import fc_backward, fc_forward, softmax_loss
from hwlib.solver import Solver, TrainingDiverged


# --- toy models -------------------------------------------------------------------------------------

class ConstantGradient:
    """loss = sum(w): the gradient is 1 everywhere, so SGD moves w by exactly -lr per step."""

    def __init__(self, size=3):
        self.params = {"w": np.zeros(size)}

    def loss(self, X, y=None):
        if y is None:
            return np.zeros((len(X), 2))
        return float(self.params["w"].sum()), {"w": np.ones_like(self.params["w"])}


class Threshold:
    """One parameter w that grows by lr per SGD step; it predicts class 1 for samples x < w.

    With X_val = [0.5, 1.5, 2.5, 3.5] and y_val = [1, 1, 0, 0] the validation accuracy is
    0.75 at w = 1, 1.0 at w = 2, 0.75 at w = 3 and 0.5 beyond: it peaks early.
    """

    def __init__(self):
        self.params = {"w": np.zeros(1)}
        self.loss_calls = 0
        self.samples_scored = 0

    def loss(self, X, y=None):
        X = np.asarray(X, dtype=float).reshape(-1)
        if y is None:
            self.samples_scored += len(X)
            return np.stack([np.zeros_like(X), self.params["w"][0] - X], axis=1)
        self.loss_calls += 1
        return -float(self.params["w"][0]), {"w": -np.ones(1)}


def threshold_data(num_train=4):
    X_val = np.array([0.5, 1.5, 2.5, 3.5])
    return {"X_train": np.zeros((num_train, 1)), "y_train": np.zeros(num_train, dtype=np.int64),
            "X_val": X_val[:, None], "y_val": np.array([1, 1, 0, 0])}


class LinearSoftmax:
    """A linear softmax classifier built from hwlib.layers."""

    def __init__(self, input_dim, num_classes, rng):
        self.params = {"W": 1e-2 * rng.standard_normal((input_dim, num_classes)), "b": np.zeros(num_classes)}

    def loss(self, X, y=None):
        scores, cache = fc_forward(X, self.params["W"], self.params["b"])
        if y is None:
            return scores
        loss, dscores = softmax_loss(scores, y)
        _, dW, db = fc_backward(dscores, cache)
        return loss, {"W": dW, "b": db}


def blobs(rng, n_per_class=100, num_classes=3):
    centers = np.array([[4.0, 0.0], [-4.0, 0.0], [0.0, 4.0]])[:num_classes]
    X = np.concatenate([c + rng.standard_normal((n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(num_classes), n_per_class)
    order = rng.permutation(len(y))
    return X[order], y[order]


# --- schedule ---------------------------------------------------------------------------------------

def test_lr_decay_applied_at_every_epoch_end():
    # 4 samples, batch 2: 2 iterations per epoch; lr 0.1 in epoch 1, 0.05 in epoch 2, 0.025 in epoch 3.
    model = ConstantGradient()
    solver = Solver(model, {"num_train": 4}, batch_sampler=lambda rng, n: (np.zeros((n, 1)), np.zeros(n)),
                    optim_config={"learning_rate": 0.1}, lr_decay=0.5, batch_size=2, num_epochs=3, verbose=False)
    solver.train()
    expected = -2 * (0.1 + 0.05 + 0.025)
    np.testing.assert_allclose(model.params["w"], np.full(3, expected), rtol=1e-12)
    assert solver.optim_configs["w"]["learning_rate"] == pytest.approx(0.1 * 0.5**3)
    assert solver.epoch == 3 and solver.iteration == 6


def test_lr_decay_reaches_every_parameter():
    class TwoParams(ConstantGradient):
        def __init__(self):
            self.params = {"a": np.zeros(2), "b": np.zeros((2, 2))}

        def loss(self, X, y=None):
            return 0.0, {k: np.ones_like(v) for k, v in self.params.items()}

    solver = Solver(TwoParams(), {"num_train": 10}, batch_sampler=lambda rng, n: (None, None),
                    update_rule="sgd_momentum", optim_config={"learning_rate": 0.2},
                    lr_decay=0.9, batch_size=5, num_epochs=2, verbose=False)
    solver.train()
    for name in ("a", "b"):
        assert solver.optim_configs[name]["learning_rate"] == pytest.approx(0.2 * 0.81)


def test_optim_configs_are_per_parameter_copies(rng):
    X, y = blobs(rng, 20)
    model = LinearSoftmax(2, 3, rng)
    user_config = {"learning_rate": 1e-2}
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y}, update_rule="adam",
                    optim_config=user_config, batch_size=10, num_epochs=1, verbose=False)
    solver.train()
    assert user_config == {"learning_rate": 1e-2}, "the caller's optim_config must not be modified"
    assert solver.optim_configs["W"] is not solver.optim_configs["b"]
    assert solver.optim_configs["W"]["m"].shape == (2, 3) and solver.optim_configs["b"]["m"].shape == (3,)
    assert solver.optim_configs["W"]["t"] == solver.iteration == 6


def test_accuracy_checked_after_first_iteration_every_epoch_and_last_iteration():
    # 8 samples, batch 2: 4 iterations per epoch; 1.5 epochs = 6 iterations; the last is no epoch end.
    solver = Solver(Threshold(), threshold_data(8), optim_config={"learning_rate": 0.25}, batch_size=2,
                    num_epochs=1.5, verbose=False)
    solver.train()
    assert solver.check_iterations == [1, 4, 6]
    assert len(solver.val_acc_history) == len(solver.train_acc_history) == 3
    # After 6 steps of 0.25, w = 1.5: predictions [1, 0, 0, 0] -> 0.75 ... measured on the final w.
    assert solver.val_acc_history[-1] == 0.75


def test_integer_epochs_check_count():
    solver = Solver(Threshold(), threshold_data(4), optim_config={"learning_rate": 0.1}, batch_size=2,
                    num_epochs=3, verbose=False)
    solver.train()
    assert solver.check_iterations == [1, 2, 4, 6]  # after iteration 1, then each epoch end (the last included)


def test_best_params_restored():
    # One iteration per epoch, lr 1: w = 1, 2, 3, 4, 5 at the checks; the validation accuracy peaks at w = 2.
    model = Threshold()
    solver = Solver(model, threshold_data(4), optim_config={"learning_rate": 1.0}, batch_size=4,
                    num_epochs=5, verbose=False)
    solver.train()
    assert solver.val_acc_history == [0.75, 1.0, 0.75, 0.5, 0.5]
    assert solver.best_val_acc == 1.0
    np.testing.assert_array_equal(model.params["w"], [2.0])
    model.params["w"][0] = 99.0
    assert solver.best_params["w"][0] == 2.0, "best_params must be a copy, not the model's array"


def test_best_params_keep_the_earliest_of_equal_accuracies():
    # lr 0.5: w = 0.5, 1, ..., 3 at the checks; accuracy 1.0 at both w = 2 and w = 2.5 (x < w is strict).
    model = Threshold()
    solver = Solver(model, threshold_data(4), optim_config={"learning_rate": 0.5}, batch_size=4,
                    num_epochs=6, verbose=False)
    solver.train()
    assert solver.val_acc_history == [0.5, 0.75, 0.75, 1.0, 1.0, 0.75]
    np.testing.assert_array_equal(model.params["w"], [2.0])


# --- options ----------------------------------------------------------------------------------------

def test_unknown_option_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown option\(s\) learning_rate; valid options: update_rule, optim_config"):
        Solver(Threshold(), threshold_data(), learning_rate=1e-3)


def test_unknown_update_rule_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown update_rule 'adagrad'; valid update rules: sgd, sgd_momentum, rmsprop, adam"):
        Solver(Threshold(), threshold_data(), update_rule="adagrad")


def test_unknown_optim_config_key_rejected_before_training():
    with pytest.raises(ValueError, match=r"optim_config: sgd: unknown config key\(s\) 'momentum'"):
        Solver(Threshold(), threshold_data(), update_rule="sgd", optim_config={"momentum": 0.9})


@pytest.mark.parametrize("kwargs, pattern", [
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"num_epochs": -1}, "num_epochs must be a positive number"),
    ({"print_every": 2.5}, "print_every must be a positive integer"),
    ({"lr_decay": 0}, r"lr_decay must be a number in \(0, 1\]"),
    ({"seed": 1, "rng": np.random.default_rng(1)}, "either seed or rng"),
])
def test_bad_option_values(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Solver(Threshold(), threshold_data(), **kwargs)


def test_bad_data_and_model():
    with pytest.raises(ValueError, match="data lacks X_val, y_val"):
        Solver(Threshold(), {"X_train": np.zeros((2, 1)), "y_train": np.zeros(2)})
    with pytest.raises(ValueError, match="one label per sample; got 4 samples and 3 labels"):
        Solver(Threshold(), {**threshold_data(), "y_train": np.zeros(3)})
    with pytest.raises(ValueError, match="model must have a dict `params`"):
        Solver(object(), threshold_data())
    with pytest.raises(ValueError, match=r"data\['num_train'\]"):
        Solver(Threshold(), {}, batch_sampler=lambda rng, n: (None, None))


def test_repr():
    text = repr(Solver(Threshold(), threshold_data(), update_rule="adam", batch_size=2))
    assert text.startswith("Solver(model=Threshold, update_rule='adam'") and "batch_size=2" in text


# --- divergence -------------------------------------------------------------------------------------

def test_nan_loss_stops_training_with_a_clear_message():
    class Diverging(Threshold):
        def loss(self, X, y=None):
            out = super().loss(X, y)
            if y is not None and self.loss_calls == 3:
                return float("nan"), out[1]
            return out

    model = Diverging()
    # 4 samples, batch 2: iteration 3 is the first of epoch 2.
    solver = Solver(model, threshold_data(4), optim_config={"learning_rate": 0.5}, lr_decay=0.5,
                    batch_size=2, num_epochs=5, verbose=False)
    with pytest.raises(TrainingDiverged, match=r"became nan at iteration 3 of 10 \(epoch 2, learning rate 0.25.*"
                                               r"smaller learning rate or a smaller weight scale") as info:
        solver.train()
    assert isinstance(info.value, RuntimeError)
    assert len(solver.loss_history) == 3 and np.isnan(solver.loss_history[-1])
    np.testing.assert_array_equal(model.params["w"], [1.0])  # two steps of 0.5; the NaN step was not applied


def test_inf_loss_also_stops():
    class Exploding(ConstantGradient):
        def loss(self, X, y=None):
            return float("inf"), {"w": np.ones(3)}

    with pytest.raises(TrainingDiverged, match="became inf at iteration 1"):
        Solver(Exploding(), {"num_train": 2}, batch_sampler=lambda rng, n: (None, None), verbose=False).train()


# --- printing and the progress bar --------------------------------------------------------------------

def test_print_every_respected(capsys):
    # 10 samples, batch 1: 10 iterations; print_every 3 prints iterations 1, 4, 7, 10.
    Solver(Threshold(), threshold_data(10), optim_config={"learning_rate": 0.01}, batch_size=1,
           num_epochs=1, print_every=3, verbose=True).train()
    lines = capsys.readouterr().out.splitlines()
    iteration_lines = [line for line in lines if line.startswith("(Iteration")]
    assert [line.split(")")[0] for line in iteration_lines] == [
        "(Iteration 1 / 10", "(Iteration 4 / 10", "(Iteration 7 / 10", "(Iteration 10 / 10"]
    assert [line.split(")")[0] for line in lines if line.startswith("(Epoch")] == ["(Epoch 0 / 1", "(Epoch 1 / 1"]


def test_not_verbose_prints_nothing(capsys):
    Solver(Threshold(), threshold_data(10), batch_size=1, num_epochs=1, verbose=False).train()
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_quiet_under_tests_and_shown_otherwise(capsys, monkeypatch):
    kwargs = dict(optim_config={"learning_rate": 0.1}, batch_size=1, num_epochs=2, verbose=False)
    Solver(Threshold(), threshold_data(5), **kwargs).train()
    assert capsys.readouterr().err == "", "the progress bar must be quiet under pytest"
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    monkeypatch.delenv("HWLIB_QUIET", raising=False)
    Solver(Threshold(), threshold_data(5), **kwargs).train()
    err = capsys.readouterr().err
    assert "epoch 2/2" in err and "val_acc" in err, f"expected an epoch-level progress bar, got {err!r}"
    Solver(Threshold(), threshold_data(5), show_progress=False, **kwargs).train()
    assert capsys.readouterr().err == ""


# --- randomness ---------------------------------------------------------------------------------------

def _train_blobs(seed=None, rng=None, data_rng_seed=0):
    data_rng = np.random.default_rng(data_rng_seed)
    X, y = blobs(data_rng, 30)
    model = LinearSoftmax(2, 3, np.random.default_rng(1))
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": X, "y_val": y}, optim_config={"learning_rate": 0.01},
                    batch_size=7, num_epochs=2, num_train_samples=20, verbose=False, seed=seed, rng=rng)
    return solver.train()


def test_seeded_reproducible_and_global_state_untouched():
    state = np.random.get_state()[1].copy()
    a, b = _train_blobs(seed=3), _train_blobs(rng=np.random.default_rng(3))
    c = _train_blobs(seed=4)
    assert a.loss_history == b.loss_history
    assert a.loss_history != c.loss_history
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_epoch_visits_every_sample_once():
    seen = []

    class Recorder(Threshold):
        def loss(self, X, y=None):
            if y is not None:
                seen.extend(np.asarray(X).reshape(-1).tolist())
            return super().loss(X, y)

    data = threshold_data(12)
    data["X_train"] = np.arange(12.0)[:, None]
    Solver(Recorder(), data, batch_size=4, num_epochs=2, verbose=False).train()
    assert sorted(seen[:12]) == list(range(12)) and sorted(seen[12:]) == list(range(12))
    assert seen[:12] != seen[12:], "each epoch draws a fresh permutation"


def test_check_accuracy_on_a_bounded_subsample():
    model = Threshold()
    solver = Solver(model, threshold_data(), verbose=False)
    model.params["w"][0] = 2.0
    X = np.tile([0.5, 1.5, 2.5, 3.5], 50)[:, None]
    y = np.tile([1, 1, 0, 0], 50)
    assert solver.check_accuracy(X, y, num_samples=None, batch_size=7) == 1.0
    model.samples_scored = 0
    model.params["w"][0] = 0.0  # predicts 0 everywhere: accuracy 0.5 overall, noisy on a subsample
    acc = solver.check_accuracy(X, y, num_samples=40)
    assert model.samples_scored == 40
    assert 0.2 < acc < 0.8 and acc * 40 == round(acc * 40)


# --- the captioning hook ------------------------------------------------------------------------------

def test_batch_sampler_hook_trains_without_validation(rng):
    """A least-squares model trained through the hook: no X_val, so no accuracies and no restore."""
    true_w = np.array([1.5, -2.0, 0.5])
    pool = rng.standard_normal((64, 3))
    calls = []

    def sampler(gen, batch_size):
        assert isinstance(gen, np.random.Generator)
        calls.append(batch_size)
        idx = gen.choice(len(pool), batch_size, replace=False)
        return pool[idx], pool[idx] @ true_w

    class LeastSquares:
        def __init__(self):
            self.params = {"w": np.zeros(3)}

        def loss(self, X, y):
            residual = X @ self.params["w"] - y
            return float(np.mean(residual**2)), {"w": 2 * X.T @ residual / len(y)}

    model = LeastSquares()
    solver = Solver(model, {"num_train": 64}, batch_sampler=sampler, update_rule="adam",
                    optim_config={"learning_rate": 0.05}, batch_size=16, num_epochs=50, verbose=False)
    solver.train()
    assert calls == [16] * (4 * 50), "one sampler call per iteration, 64 // 16 = 4 iterations per epoch"
    assert solver.loss_history[-1] < 1e-3 * solver.loss_history[0]
    np.testing.assert_allclose(model.params["w"], true_w, atol=1e-2)
    assert solver.val_acc_history == [] and solver.train_acc_history == [] and solver.best_params == {}
    assert solver.best_val_acc is None


# --- a real model -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, lr", [("sgd", 0.5), ("sgd_momentum", 0.1), ("rmsprop", 0.01), ("adam", 0.05)])
def test_linear_softmax_learns_separable_blobs(rule, lr, rng):
    X, y = blobs(rng, 100)
    Xv, yv = blobs(rng, 50)
    model = LinearSoftmax(2, 3, rng)
    solver = Solver(model, {"X_train": X, "y_train": y, "X_val": Xv, "y_val": yv}, update_rule=rule,
                    optim_config={"learning_rate": lr}, lr_decay=0.95, batch_size=30, num_epochs=5,
                    verbose=False, rng=rng)
    solver.train()
    assert solver.loss_history[-1] < 0.5 * solver.loss_history[0]
    assert solver.best_val_acc >= 0.97
    assert solver.check_accuracy(Xv, yv) == solver.best_val_acc  # the restored params are the best ones

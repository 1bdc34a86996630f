"""The Solver: minibatch training of a model with an update rule from :mod:`hwlib.optim`.

A model must provide:

- ``model.params``: dict mapping parameter names to NumPy arrays;
- ``model.loss(X, y=None)``: with ``y=None`` (test time) return class scores of shape (N, C);
  with labels, return ``(loss, grads)`` where loss is a scalar and grads a dict with the keys of
  ``params`` and arrays of the same shapes.

``data`` is a dict with ``X_train``, ``y_train``, ``X_val``, ``y_val`` (first axis: samples), for
example the dict of :func:`hwlib.data.load_mnist` (extra keys are ignored).

Example::

    solver = Solver(model, data, update_rule="sgd", optim_config={"learning_rate": 1e-3},
                    lr_decay=0.95, num_epochs=10, batch_size=100, print_every=100, seed=0)
    solver.train()
    # model.params now hold the parameters with the best validation accuracy;
    # solver.loss_history, solver.train_acc_history, solver.val_acc_history hold the curves.

One epoch is ``num_train // batch_size`` iterations (at least one); each epoch draws the batches
from a fresh permutation of the training set (no sample twice in an epoch). After every epoch the
learning rate of every parameter is multiplied by ``lr_decay``. Accuracies are measured after the
first iteration, at the end of every epoch, and after the last iteration (for a fractional
``num_epochs``) -- on at most ``num_train_samples`` training and ``num_val_samples`` validation
samples drawn with the Solver's generator -- and the parameters with the best validation accuracy
are restored when training ends.

Batch-sampling hook (used for image captioning, whose data are not an ``X``/``y`` pair): pass
``batch_sampler``, a callable ``(rng, batch_size) -> (X_batch, y_batch)``; ``model.loss(X_batch,
y_batch)`` is called with what it returns. The epoch length then comes from ``data["num_train"]``
(or ``len(data["X_train"])``), and without ``X_val`` in ``data`` no accuracy is measured (the
histories stay empty and the final parameters are kept).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping

import numpy as np

from . import optim
from .progress import progress
from .validation import positive_int

__all__ = ["Solver", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the iteration, epoch and learning rate."""


# Options of Solver.__init__ after (model, data), for the error message on an unknown one.
_OPTIONS = ("update_rule", "optim_config", "lr_decay", "batch_size", "num_epochs", "num_train_samples",
            "num_val_samples", "print_every", "verbose", "seed", "rng", "batch_sampler", "show_progress",
            "on_epoch")


class Solver:
    """Train ``model`` on ``data`` with minibatch gradient descent (see the module docstring).

    Inputs:
    - model: an object with ``params`` (dict name -> array) and ``loss(X, y=None)``
    - data: dict with X_train, y_train, X_val, y_val (with ``batch_sampler``: see the module docstring)

    Options (keyword only):
    - update_rule: name of a rule in :mod:`hwlib.optim`: "sgd", "sgd_momentum", "rmsprop", "adam"
    - optim_config: dict of hyperparameters for the update rule (e.g. ``{"learning_rate": 1e-3}``);
      every parameter gets its own copy (its own moving averages)
    - lr_decay: factor applied to every learning rate at the end of each epoch
    - batch_size: samples per minibatch
    - num_epochs: epochs to train (a positive number; 0.5 trains half an epoch)
    - num_train_samples: training samples used to measure the training accuracy (None: all)
    - num_val_samples: validation samples used to measure the validation accuracy (None: all)
    - print_every: with ``verbose``, print the loss every this many iterations
    - verbose: print the loss and the accuracies while training
    - seed / rng: the source of randomness (batches, accuracy subsamples): an integer seed
      (default 0) or a ``np.random.Generator``; never NumPy's global random state
    - batch_sampler: optional callable ``(rng, batch_size) -> (X_batch, y_batch)``
    - show_progress: show a progress bar over the iterations (always quiet under grading and tests)
    - on_epoch: optional callable ``(solver) -> None``, called at the end of every epoch (after its
      accuracy check) and after the last iteration; :func:`hwlib.explore.train_live` redraws the
      learning curves there

    Attributes after :meth:`train`: ``loss_history`` (one loss per iteration), ``train_acc_history``
    and ``val_acc_history`` (one entry per accuracy check), ``check_iterations`` (the iteration
    count at each check), ``best_val_acc`` and ``best_params`` (None and {} when no validation set),
    ``epoch`` (completed epochs), ``optim_configs`` (one config per parameter).
    """

    def __init__(self, model, data, *, update_rule: str = "sgd", optim_config: dict | None = None,
                 lr_decay: float = 1.0, batch_size: int = 500, num_epochs: float = 10,
                 num_train_samples: int | None = 1000, num_val_samples: int | None = None,
                 print_every: int = 100, verbose: bool = True, seed: int | None = None,
                 rng: np.random.Generator | None = None,
                 batch_sampler: Callable[[np.random.Generator, int], tuple] | None = None,
                 show_progress: bool = True, on_epoch: Callable[[Solver], None] | None = None, **unknown):
        if unknown:
            raise ValueError(f"Solver: unknown option(s) {', '.join(sorted(unknown))}; valid options: {', '.join(_OPTIONS)}")

        # --- the model ------------------------------------------------------------------------------
        if not isinstance(getattr(model, "params", None), dict) or not callable(getattr(model, "loss", None)):
            raise ValueError("Solver: model must have a dict `params` (name -> array) and a method `loss(X, y=None)`; "
                             f"got {type(model).__name__}")
        self.model = model

        # --- the data -------------------------------------------------------------------------------
        if not isinstance(data, Mapping):
            raise ValueError(f"Solver: data must be a dict with X_train, y_train, X_val, y_val; got {type(data).__name__}")
        if batch_sampler is not None and not callable(batch_sampler):
            raise ValueError(f"Solver: batch_sampler must be a callable (rng, batch_size) -> (X_batch, y_batch); got {batch_sampler!r}")
        self.batch_sampler = batch_sampler
        required = ("X_train", "y_train", "X_val", "y_val") if batch_sampler is None else ()
        present = {k for k in ("X_train", "y_train", "X_val", "y_val") if data.get(k) is not None}
        missing = [k for k in required if k not in present]
        if missing:
            raise ValueError(f"Solver: data lacks {', '.join(missing)} (it has {', '.join(map(str, data)) or 'no keys'})")
        for x_key, y_key in (("X_train", "y_train"), ("X_val", "y_val")):
            if x_key in present and y_key not in present:
                raise ValueError(f"Solver: data has {x_key} but no {y_key}")
            if x_key in present and len(data[x_key]) != len(data[y_key]):
                raise ValueError(f"Solver: {x_key} and {y_key} must have one label per sample; "
                                 f"got {len(data[x_key])} samples and {len(data[y_key])} labels")
        arrays = {k: np.asarray(data[k]) if k in present else None for k in ("X_train", "y_train", "X_val", "y_val")}
        self.X_train, self.y_train = arrays["X_train"], arrays["y_train"]
        self.X_val, self.y_val = arrays["X_val"], arrays["y_val"]
        if batch_sampler is None:
            num_train = len(self.X_train)
        elif "num_train" in data:
            num_train = data["num_train"]
        elif "X_train" in present:
            num_train = len(data["X_train"])
        else:
            raise ValueError("Solver: with a batch_sampler, data must give the epoch length as data['num_train'] "
                             "(or hold X_train)")
        self.num_train = positive_int("Solver", "the number of training samples", num_train)

        # --- the options ----------------------------------------------------------------------------
        if not isinstance(update_rule, str) or update_rule not in optim.UPDATE_RULES:
            raise ValueError(f"Solver: unknown update_rule {update_rule!r}; valid update rules: "
                             f"{', '.join(optim.UPDATE_RULES)}")
        self.update_rule = update_rule
        self._update = optim.UPDATE_RULES[update_rule]
        try:
            self.optim_config = optim.check_config(update_rule, copy.deepcopy(optim_config) if optim_config else {})
        except ValueError as exc:
            raise ValueError(f"Solver: optim_config: {exc}") from None
        if isinstance(lr_decay, bool) or not isinstance(lr_decay, (int, float, np.number)) or not 0 < lr_decay <= 1:
            raise ValueError(f"Solver: lr_decay must be a number in (0, 1]; got {lr_decay!r}")
        self.lr_decay = float(lr_decay)
        self.batch_size = positive_int("Solver", "batch_size", batch_size)
        if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, float, np.number)) \
                or not math.isfinite(num_epochs) or num_epochs <= 0:
            raise ValueError(f"Solver: num_epochs must be a positive number; got {num_epochs!r}")
        self.num_epochs = num_epochs
        self.num_train_samples = positive_int("Solver", "num_train_samples", num_train_samples, allow_none=True)
        self.num_val_samples = positive_int("Solver", "num_val_samples", num_val_samples, allow_none=True)
        self.print_every = positive_int("Solver", "print_every", print_every)
        self.verbose = bool(verbose)
        self.show_progress = bool(show_progress)
        if on_epoch is not None and not callable(on_epoch):
            raise ValueError(f"Solver: on_epoch must be a callable (solver) -> None; got {on_epoch!r}")
        self.on_epoch = on_epoch
        if rng is not None and seed is not None:
            raise ValueError("Solver: pass either seed or rng, not both")
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise ValueError(f"Solver: rng must be a numpy.random.Generator; got {type(rng).__name__}")
        self.seed = seed
        self.rng = rng if rng is not None else np.random.default_rng(0 if seed is None else seed)
        # Independent streams: measuring accuracy more or less often does not change the batches.
        self._batch_rng, self._eval_rng = self.rng.spawn(2)
        self._reset()

    def _reset(self) -> None:
        """Book-keeping that train() fills in."""
        self.epoch = 0                      # completed epochs
        self.iteration = 0                  # completed iterations
        self.best_val_acc: float | None = None
        self.best_params: dict[str, np.ndarray] = {}
        self.loss_history: list[float] = []
        self.train_acc_history: list[float] = []
        self.val_acc_history: list[float] = []
        self.check_iterations: list[int] = []
        # One deep copy of the config per parameter: each gets its own velocity/moments.
        self.optim_configs = {name: copy.deepcopy(self.optim_config) for name in self.model.params}
        self._order = np.empty(0, dtype=np.int64)  # the current epoch's permutation

    def __repr__(self) -> str:
        best = "n/a" if self.best_val_acc is None else f"{self.best_val_acc:.4f}"
        return (f"Solver(model={type(self.model).__name__}, update_rule={self.update_rule!r}, "
                f"optim_config={self.optim_config!r}, lr_decay={self.lr_decay:g}, batch_size={self.batch_size}, "
                f"num_epochs={self.num_epochs:g}, num_train={self.num_train}, "
                f"trained: {self.epoch} epochs / {self.iteration} iterations, best_val_acc={best})")

    # --- training -------------------------------------------------------------------------------------

    def _sample_batch(self, index_in_epoch: int):
        """The next minibatch: from the batch sampler, or slice ``index_in_epoch`` of this epoch's permutation."""
        if self.batch_sampler is not None:
            return self.batch_sampler(self._batch_rng, self.batch_size)
        if index_in_epoch == 0:
            self._order = self._batch_rng.permutation(len(self.X_train))
        idx = self._order[index_in_epoch * self.batch_size:(index_in_epoch + 1) * self.batch_size]
        return self.X_train[idx], self.y_train[idx]

    def _step(self, X_batch, y_batch) -> float:
        """One gradient step on a minibatch; return its loss (the update is skipped if it is not finite)."""
        loss, grads = self.model.loss(X_batch, y_batch)
        loss = float(loss)
        self.loss_history.append(loss)
        if not math.isfinite(loss):
            return loss
        missing = [name for name in self.model.params if name not in grads]
        if missing:
            raise ValueError(f"Solver: model.loss returned no gradient for parameter(s) {', '.join(missing)}")
        for name, w in self.model.params.items():
            next_w, self.optim_configs[name] = self._update(w, grads[name], self.optim_configs[name])
            self.model.params[name] = next_w
        return loss

    def _learning_rate(self) -> float:
        config = next(iter(self.optim_configs.values()), self.optim_config)
        return config["learning_rate"]

    def _diverged(self, loss: float, iteration: int, num_iterations: int, iterations_per_epoch: int):
        epoch = (iteration - 1) // iterations_per_epoch + 1
        return TrainingDiverged(
            f"the training loss became {loss} at iteration {iteration} of {num_iterations} "
            f"(epoch {epoch}, learning rate {self._learning_rate():.3g}, update rule {self.update_rule!r}). "
            "Training stopped: try a smaller learning rate or a smaller weight scale. "
            + ("The best parameters so far are in solver.best_params." if self.best_params else "")
        )

    def train(self) -> Solver:
        """Run the optimization for ``num_epochs`` epochs; return the Solver.

        Raises :class:`TrainingDiverged` if the loss becomes NaN or infinite.
        """
        iterations_per_epoch = max(self.num_train // self.batch_size, 1)
        num_iterations = max(1, round(self.num_epochs * iterations_per_epoch))
        num_epochs_total = math.ceil(num_iterations / iterations_per_epoch)
        has_val = self.X_val is not None
        # Counted by hand (update per iteration), not by iterating the bar: tqdm's iterator keeps its count
        # to itself between screen refreshes, so the epoch-end refresh of a short epoch showed "0/60".
        bar = progress(total=num_iterations, desc="epoch 1", unit="it",
                       **({} if self.show_progress else {"disable": True}))
        start_epoch = self.epoch
        try:
            for t in range(num_iterations):
                if t % iterations_per_epoch == 0:
                    bar.set_description(f"epoch {t // iterations_per_epoch + 1}/{num_epochs_total}")
                X_batch, y_batch = self._sample_batch(t % iterations_per_epoch)
                loss = self._step(X_batch, y_batch)
                self.iteration += 1
                bar.update(1)
                if not math.isfinite(loss):
                    raise self._diverged(loss, t + 1, num_iterations, iterations_per_epoch)
                if self.verbose and t % self.print_every == 0:
                    bar.write(f"(Iteration {t + 1} / {num_iterations}) loss: {loss:.6f}")

                epoch_end = (t + 1) % iterations_per_epoch == 0
                if epoch_end:
                    self.epoch += 1
                    for config in self.optim_configs.values():
                        config["learning_rate"] *= self.lr_decay
                # Measure after the first iteration, at every epoch end, and after the last iteration.
                if has_val and (t == 0 or epoch_end or t == num_iterations - 1):
                    self._record_accuracy(t + 1)
                    if self.verbose:
                        train = f"{self.train_acc_history[-1]:.4f}" if self.train_acc_history else "n/a"
                        bar.write(f"(Epoch {self.epoch - start_epoch} / {num_epochs_total}) "
                                  f"train acc: {train}; val_acc: {self.val_acc_history[-1]:.4f}")
                if epoch_end or t == num_iterations - 1:
                    epoch_losses = self.loss_history[-(t % iterations_per_epoch + 1):]
                    postfix = {"loss": f"{np.mean(epoch_losses):.4f}"}  # the epoch's mean loss
                    if self.val_acc_history:
                        postfix["val_acc"] = f"{self.val_acc_history[-1]:.3f}"
                    bar.set_postfix(postfix)
                    if self.on_epoch is not None:
                        self.on_epoch(self)
        finally:
            bar.close()  # also when the model raises or training diverges

        if self.best_params:  # keep the parameters that did best on the validation set
            self.model.params = {name: value.copy() for name, value in self.best_params.items()}
        return self

    def _record_accuracy(self, iteration: int) -> None:
        if self.X_train is not None:
            self.train_acc_history.append(self.check_accuracy(self.X_train, self.y_train, num_samples=self.num_train_samples))
        val_acc = self.check_accuracy(self.X_val, self.y_val, num_samples=self.num_val_samples)
        self.val_acc_history.append(val_acc)
        self.check_iterations.append(iteration)
        if self.best_val_acc is None or val_acc > self.best_val_acc:
            self.best_val_acc = val_acc
            self.best_params = {name: np.array(value, copy=True) for name, value in self.model.params.items()}

    # --- evaluation -----------------------------------------------------------------------------------

    def check_accuracy(self, X, y, num_samples: int | None = None, batch_size: int = 100) -> float:
        """Fraction of samples of ``X`` whose highest score is the label in ``y``.

        Inputs:
        - X: (N, d_1, ..., d_k) samples; y: (N,) integer labels
        - num_samples: if given and smaller than N, measure on that many samples drawn without
          replacement with the Solver's generator (faster, a little noisy)
        - batch_size: samples per forward pass (bounds the memory used)

        Returns the accuracy, a float in [0, 1].
        """
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"check_accuracy: X and y must have one label per sample; got {len(X)} samples and {len(y)} labels")
        num_samples = positive_int("Solver", "num_samples", num_samples, allow_none=True)
        batch_size = positive_int("Solver", "batch_size", batch_size)
        N = len(X)
        if N == 0:
            raise ValueError("check_accuracy: X is empty")
        if num_samples is not None and N > num_samples:
            idx = np.sort(self._eval_rng.choice(N, num_samples, replace=False))
            X, y = X[idx], y[idx]
            N = num_samples
        correct = 0
        for start in range(0, N, batch_size):
            scores = np.asarray(self.model.loss(X[start:start + batch_size]))
            n = len(y[start:start + batch_size])
            if scores.ndim != 2 or scores.shape[0] != n:
                raise ValueError(f"check_accuracy: model.loss(X) must return scores of shape ({n}, C); got shape {scores.shape}")
            correct += int(np.sum(np.argmax(scores, axis=1) == y[start:start + batch_size]))
        return correct / N

"""The public checks of Q5 (``hwlib.check``'s ``train_model``, ``finetune``, ``freeze``): they pass on
the reference, catch the classic mistakes (the reference recompiled with one change), and leave the
caller's random state alone. Runs on the CPU with tiny models (a ResNet-18 without weights).
"""

from __future__ import annotations

import inspect
import textwrap

import pytest
import torch

from hwlib import transfer
from hwlib.check import check
from hwlib.check.transfer import HEAD, judge_observations

_ORIGINAL_TRAIN_MODEL = transfer.train_model


# One torch thread in every test here: on 2 shared cores, more threads only wait for each other.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_public_checks_pass(capsys):
    from hwlib.check.__main__ import main
    assert main(["train_model", "finetune", "freeze"]) == 0
    assert capsys.readouterr().out.count(": PASS") == 3


def test_judge_runs_on_plain_values_without_the_observers():
    """The grader's half: the rules need the observations only (no model, no PyTorch run)."""
    obs = {"returned_is_model": True, "returned_type": "ResNet", "head_type": "Linear", "head_is_linear": True,
           "head_is_new": True, "head_shape": [512, 4], "trainable": HEAD, "changed": HEAD,
           "output_shape": [2, 4], "num_parameters": 62}
    assert "frozen and unchanged" in judge_observations("freeze", obs, 4)
    with pytest.raises(AssertionError, match="every parameter must be trainable; 60 of 62 are frozen"):
        judge_observations("finetune", obs, 4)
    with pytest.raises(ValueError, match="unknown function"):
        judge_observations("nope", obs, 4)


def _mutant(func, *replacements):
    """``func`` recompiled with each ``(old, new)`` replaced in its source (a deliberately buggy version)."""
    source = textwrap.dedent(inspect.getsource(func))
    for old, new in replacements:
        assert old in source, f"mutation target {old!r} not in {func.__name__}"
        source = source.replace(old, new)
    namespace = dict(vars(transfer))
    exec(compile(source, "<mutant>", "exec"), namespace)
    return namespace[func.__name__]


@pytest.mark.parametrize("replacements, why", [
    ([("best_state = copy.deepcopy(model.state_dict())", "best_state = model.state_dict()")], "must be the one of the best validation epoch|match none of the best epochs"),
    ([("epoch_acc > best_acc", "epoch_acc >= 0")], "must be the one of the best validation epoch|match none of the best epochs"),
    ([("torch.set_grad_enabled(phase == \"train\")", "torch.set_grad_enabled(True)"),
      ("if phase == \"train\":\n                        loss.backward()", "if True:\n                        loss.backward()")],
     "the val phase must not train"),
    ([("optimizer.step()\n", "optimizer.step()\n                        scheduler.step()\n")], "must have stepped 4 times"),
    ([("running_loss += loss.item() * inputs.size(0)", "running_loss += loss.item()")], "history's best epoch"),
])
def test_check_train_model_catches_mistakes(monkeypatch, replacements, why):
    monkeypatch.setattr(transfer, "train_model", _mutant(transfer.train_model, *replacements))
    with pytest.raises(AssertionError, match=why):
        check("train_model", verbose=False)


def test_check_train_model_accepts_the_scheduler_after_validation(monkeypatch, capsys):
    """Stepping the scheduler at the very end of the epoch is right too: the check must not fail it."""
    variant = _mutant(transfer.train_model, ("if phase == \"train\" and scheduler is not None:",
                                             "if phase == \"val\" and scheduler is not None:"))
    monkeypatch.setattr(transfer, "train_model", variant)
    check("train_model")
    assert "train_model: train loss" in capsys.readouterr().out


def test_check_train_model_catches_scheduler_before_optimizer(monkeypatch):
    def scheduler_first(*args, **kwargs):
        args[6].step()            # the pre-1.1 order: the scheduler steps before any optimizer step
        return _ORIGINAL_TRAIN_MODEL(*args, **kwargs)

    monkeypatch.setattr(transfer, "train_model", scheduler_first)
    with pytest.raises(AssertionError, match="scheduler.step.. ran before optimizer.step"):
        check("train_model", verbose=False)


@pytest.mark.parametrize("func, old, new, why", [
    ("freeze", "param.requires_grad = False", "pass", "only the head may be trainable"),
    ("freeze", "nn.Linear(num_ftrs, num_classes).to(old_head.weight.device)", "old_head", "NEW nn.Linear"),
    ("finetune", "param.requires_grad = True", "pass", "every parameter must be trainable"),
    ("finetune", "nn.Linear(num_ftrs, num_classes)", "nn.Linear(num_ftrs, 2)", r"Linear\(512, 3\)"),
])
def test_checks_of_finetune_and_freeze_catch_mistakes(monkeypatch, func, old, new, why):
    monkeypatch.setattr(transfer, func, _mutant(getattr(transfer, func), (old, new)))
    with pytest.raises(AssertionError, match=why):
        check(func, verbose=False)


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check("freeze", verbose=False)
    torch.testing.assert_close(torch.rand(3), expected)


def test_the_judge_keeps_its_rules_under_python_O():
    """The trusted side judges with explicit checks, not ``assert`` statements (which ``python -O``
    strips: every Q5 submission would then pass)."""
    import subprocess
    import sys

    code = ("from hwlib.check.transfer import judge_observations\n"
            "try:\n    judge_observations('freeze', {}, 3)\nexcept AssertionError as exc:\n    print('refused:', exc)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused: freeze must return the model it was given"), out

"""The public checks of Q5 (``hwlib.check``'s ``train_model``, ``visualize_model``, ``finetune``,
``freeze``): they pass on the reference and on other correct ways to write it, catch the classic
mistakes (the reference recompiled with one change), judge plain values alone, and leave the caller's
random state and figures alone. Runs on the CPU with tiny models.
"""

from __future__ import annotations

import inspect
import textwrap

import pytest
import torch

from hwlib import transfer
from hwlib.check import check, draw, run
from hwlib.check.transfer import judge_observations

_ORIGINAL_TRAIN_MODEL = transfer.train_model


# One torch thread in every test here: on 2 shared cores, more threads only wait for each other.
pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _mutant(func, *replacements):
    """``func`` recompiled with each ``(old, new)`` replaced in its source (a deliberately buggy version).

    Its globals are the live module's, so a ``train_model`` the check swaps in is the one it calls.
    """
    source = textwrap.dedent(inspect.getsource(func))
    for old, new in replacements:
        assert old in source, f"mutation target {old!r} not in {func.__name__}"
        source = source.replace(old, new)
    namespace = {}
    exec(compile(source, "<mutant>", "exec"), vars(transfer), namespace)
    return namespace[func.__name__]


def _fails(monkeypatch, func: str, replacements, why: str) -> None:
    monkeypatch.setattr(transfer, func, _mutant(getattr(transfer, func), *replacements))
    with pytest.raises(AssertionError, match=why):
        check(func, verbose=False)


def test_public_checks_pass(capsys):
    from hwlib.check.__main__ import main
    assert main(["train_model", "visualize_model", "finetune", "freeze"]) == 0
    assert capsys.readouterr().out.count(": PASS") == 4


@pytest.mark.parametrize("func", ["train_model", "visualize_model", "finetune", "freeze"])
def test_judge_runs_on_plain_values_without_the_observers(func):
    """The grader's half: the rules need the observations (plain values) and the case only."""
    inputs = draw(func, 5)
    obs = {key: value.tolist() for key, value in run(func, inputs).items()}
    assert judge_observations(func, obs, inputs)
    with pytest.raises(AssertionError):
        judge_observations(func, {}, inputs)
    broken = {"train_model": {"optimizer_steps": 1}, "visualize_model": {"left_training": False},
              "finetune": {"foreign": 2}, "freeze": {"optimized": obs.get("names", [])}}[func]
    with pytest.raises(AssertionError):
        judge_observations(func, {**obs, **broken}, inputs)
    with pytest.raises(ValueError, match="unknown function"):
        judge_observations("nope", obs, inputs)


# --- train_model ---------------------------------------------------------------------------------

@pytest.mark.parametrize("replacements, why", [
    ([("best_state = copy.deepcopy(model.state_dict())", "best_state = model.state_dict()")],
     "must be the one of the best validation epoch|match none of the best epochs"),
    ([("epoch_acc > best_acc", "epoch_acc >= 0")], "must be the one of the best validation epoch|match none of the best epochs"),
    ([("if phase == \"train\":\n                        loss.backward()", "if True:\n                        loss.backward()"),
      ("torch.set_grad_enabled(phase == \"train\")", "torch.set_grad_enabled(True)")], "the val phase must not train"),
    ([("torch.set_grad_enabled(phase == \"train\")", "torch.set_grad_enabled(True)")], "val phase must run without gradients"),
    ([("model.train(phase == \"train\")", "model.train()")], "val phase the model must be in eval mode"),
    ([("model.train(phase == \"train\")", "model.eval() if phase == \"val\" else None")], "must be in train mode"),
    ([("optimizer.step()\n", "optimizer.step()\n                        scheduler.step()\n")], "must have stepped 4 times"),
    ([("                scheduler.step()       # once per epoch", "                pass  # once per epoch")], "must have stepped 4 times"),
    ([("optimizer.zero_grad()\n", "\n")], "gradients of an earlier batch"),
    ([("optimizer.zero_grad()\n", "\n"), ("optimizer.step()\n", "optimizer.zero_grad()\n                        optimizer.step()\n")],
     "with no gradient at all"),
    ([("running_loss += loss.item() * inputs.size(0)", "running_loss += loss.item()")], "history's best epoch"),
])
def test_check_train_model_catches_mistakes(monkeypatch, replacements, why):
    _fails(monkeypatch, "train_model", replacements, why)


def test_check_train_model_accepts_other_correct_orders(monkeypatch, capsys):
    """Stepping the scheduler at the very end of the epoch, and zeroing the gradients after each step
    instead of before each backward pass, are right too: the check must not fail them."""
    variant = _mutant(transfer.train_model,
                      ("if phase == \"train\" and scheduler is not None:", "if phase == \"val\" and scheduler is not None:"),
                      ("optimizer.zero_grad()\n", "\n"),
                      ("optimizer.step()\n", "optimizer.step()\n                        optimizer.zero_grad()\n"))
    monkeypatch.setattr(transfer, "train_model", variant)
    check("train_model")
    assert "train_model: train loss" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step..` before")   # the bug under test
def test_check_train_model_catches_scheduler_before_optimizer(monkeypatch):
    def scheduler_first(*args, **kwargs):
        args[6].step()            # the pre-1.1 order: the scheduler steps before any optimizer step
        return _ORIGINAL_TRAIN_MODEL(*args, **kwargs)

    monkeypatch.setattr(transfer, "train_model", scheduler_first)
    with pytest.raises(AssertionError, match="scheduler.step.. ran before optimizer.step"):
        check("train_model", verbose=False)


# --- visualize_model -----------------------------------------------------------------------------

@pytest.mark.parametrize("replacements, why", [
    ([("    model.eval()\n", "\n")], "predict in eval mode"),
    ([("model.train(was_training)", "pass")], "leave the model in the mode it was found in"),
    ([("model.train(was_training)", "model.train()")], "leave the model in the mode it was found in"),
    ([("with torch.no_grad():", "if True:")], "predict without gradients"),
    ([("show_predictions(inputs.numpy(), preds, labels,", "show_predictions(inputs.numpy(), labels, preds,")],
     r"must start with 'predicted: .*\(that is its true label\)"),
    ([("mean=mean, std=std,", "")], "not a validation image"),
    ([("    return fig", "    return None")], "must return the figure"),
])
def test_check_visualize_model_catches_mistakes(monkeypatch, replacements, why):
    _fails(monkeypatch, "visualize_model", replacements, why)


def test_check_visualize_model_accepts_a_hand_drawn_grid(monkeypatch):
    """The seed's way, a subplot per image with ``imshow`` and a 'predicted: ...' title, passes too."""
    def by_hand(device, dataloaders, model, class_names, num_images=6, *, mean=(0.0,), std=(1.0,), **_):
        import matplotlib.pyplot as plt

        dataset = dataloaders["val"].dataset
        was_training = model.training
        model.eval()
        fig = plt.figure()
        with torch.no_grad():
            for k in range(num_images):
                image, _ = dataset[k]
                pred = int(model(image[None].to(device)).argmax(1))
                ax = plt.subplot(num_images // 2 + 1, 2, k + 1)
                ax.axis("off")
                ax.set_title(f"predicted: {class_names[pred]}")
                ax.imshow((image[0] * std[0] + mean[0]).numpy(), cmap="gray")
        model.train(mode=was_training)
        return fig

    monkeypatch.setattr(transfer, "visualize_model", by_hand)
    check("visualize_model", verbose=False)


def test_check_visualize_model_closes_its_figures():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    check("visualize_model", verbose=False)
    assert plt.get_fignums() == before


# --- finetune and freeze -------------------------------------------------------------------------

@pytest.mark.parametrize("func, replacements, why", [
    ("finetune", [("model = pretrained()", "from torchvision.models import resnet18\n    model = resnet18()")],
     "must start from the network pretrained"),
    ("finetune", [("model = pretrained()", "model = pretrained()\n    torch.nn.init.zeros_(model.features[0].weight)")],
     "pretrained weights must reach train_model unchanged"),
    ("finetune", [("nn.Linear(num_ftrs, num_classes)", "nn.Linear(num_ftrs, 2)")], r"must be Linear\(6, 3\)"),
    ("finetune", [("model.fc = nn.Linear(num_ftrs, num_classes)", "model.fc.out_features = num_classes")], "NEW nn.Linear"),
    ("finetune", [("    model.fc = nn.Linear(num_ftrs, num_classes)\n", ""),
                  ("    scheduler = torch", "    model.fc = nn.Linear(num_ftrs, num_classes)\n    scheduler = torch")],
     "hold the NEW head's parameters"),
    ("finetune", [("model = model.to(device)", "model = model.to(device)\n    model.features.requires_grad_(False)")],
     "every parameter must be trainable"),
    ("finetune", [("SGD(model.parameters()", "SGD(model.fc.parameters()")], "must get every parameter"),
    ("finetune", [("lr=lr, momentum=momentum", "lr=0.001, momentum=0.9")], "SGD must use lr=0.02"),
    ("finetune", [("torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)", "torch.optim.Adam(model.parameters(), lr=lr)")],
     "must be torch.optim.SGD"),
    ("finetune", [("nn.CrossEntropyLoss()", "nn.NLLLoss()")], "criterion must be nn.CrossEntropyLoss"),
    ("finetune", [("step_size=step_size, gamma=gamma", "step_size=7, gamma=0.1")], r"StepLR\(optimizer, step_size=2"),
    ("finetune", [("num_epochs=num_epochs, verbose", "verbose")], r"pass num_epochs \(3\)"),
    ("finetune", [("    model = train_model(", "    model = model if True else train_model(")], "by calling train_model once"),
    ("freeze", [("optimizer = torch.optim.SGD(model.fc.parameters()", "optimizer = torch.optim.SGD(model.parameters()")],
     "optimizer must get the new head's parameters only"),
    ("freeze", [("        param.requires_grad = False", "        pass")], "every pretrained parameter must be frozen"),
    ("freeze", [("    for param in model.parameters():\n        param.requires_grad = False\n", ""),
                ("    model = model.to(device)", "    model.requires_grad_(False)\n    model = model.to(device)")],
     "new head's parameters must be trainable"),
])
def test_checks_of_finetune_and_freeze_catch_mistakes(monkeypatch, func, replacements, why):
    _fails(monkeypatch, func, replacements, why)


def test_check_of_freeze_catches_a_network_that_is_not_the_pretrained_one(monkeypatch):
    """Ignoring ``pretrained`` for the default ImageNet ResNet-18: without its weights the student's code
    stops with the loader's error; with them, the check says the network is not ``pretrained()``'s."""
    from hwlib.data import DataError

    replacement = ("model = pretrained()", "from hwlib.transfer_setup import imagenet_resnet18 as load\n    model = load()")
    monkeypatch.setattr(transfer, "freeze", _mutant(transfer.freeze, replacement))
    with pytest.raises((AssertionError, DataError), match="fetch resnet18|must start from the network pretrained"):
        check("freeze", verbose=False)


def test_finetune_and_freeze_checks_do_not_need_train_model(monkeypatch):
    """A missing train_model (the release's stub) costs train_model's points only."""
    def stub(*args, **kwargs):
        raise NotImplementedError("train_model is yours to write")

    monkeypatch.setattr(transfer, "train_model", stub)
    check("finetune", verbose=False)
    check("freeze", verbose=False)
    assert transfer.train_model is stub, "the check must put the student's train_model back"


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name in ("freeze", "visualize_model"):
        check(name, verbose=False)
    torch.testing.assert_close(torch.rand(3), expected)


def test_the_judge_keeps_its_rules_under_python_O():
    """The trusted side judges with explicit checks, not ``assert`` statements (which ``python -O``
    strips: every Q5 submission would then pass)."""
    import subprocess
    import sys

    code = ("from hwlib.check import draw\nfrom hwlib.check.transfer import judge_observations\n"
            "try:\n    judge_observations('freeze', {}, draw('freeze', 0))\n"
            "except AssertionError as exc:\n    print('refused:', exc)\n")
    out = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused: freeze must train by calling train_model once"), out

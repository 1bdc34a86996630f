"""``finetune`` and ``freeze`` judged on torchvision's ResNet-18 too (issue 27 item 2): students write
them against its parameter names (``layer4.1.conv2.weight``) and children, which the checks' small
stand-in network has not. A freeze by name that leaves ``layer4.*`` trainable loses the freeze points;
every correct way to write either (named_parameters, children(), requires_grad_, parameter lists and
groups: grading/sample_code.py, the code the samples hand in) keeps them, in the public check and in the
hidden cases.
"""

from __future__ import annotations

import ast

import pytest

from course.paths import REPO
from grading import samples
from grading.autograde import hidden, protocol
from grading.sample_code import FINETUNE_VARIANTS, FREEZE_VARIANTS, TRANSFER_BUGS
from hwlib import transfer
from hwlib.check import check, draw, run
from hwlib.check.transfer import judge_observations

pytestmark = pytest.mark.usefixtures("torch_one_thread")

SOURCE = (REPO / "hwlib" / "transfer.py").read_text()


def _written(func: str, body: str):
    """``func`` of hwlib/transfer.py with its solution region replaced by ``body`` (as the samples write
    it), compiled in the live module, so that the train_model the check swaps in is the one it calls."""
    text = samples.unmark(samples.replace_region(SOURCE, func, body))
    node = next(n for n in ast.parse(text).body if isinstance(n, ast.FunctionDef) and n.name == func)
    namespace: dict = {}
    exec(compile(ast.get_source_segment(text, node), f"<{func} as written>", "exec"), vars(transfer), namespace)
    return namespace[func]


def _hidden_points(func: str) -> tuple[float, float, list]:
    """The hidden cases of ``func``'s cell, run in this process and judged as the grader judges them."""
    group = next(g for g in hidden.load().values() if g.targets == (func,))
    inputs_of = hidden.draw_inputs([group])
    outputs = {c.id: protocol.flatten(run(func, inputs_of[(group.grade_id, c.id)])) for c in group.cases}
    res = hidden.evaluate(group, inputs_of, outputs, {})
    return res.points, res.max_points, [c.message for c in res.cases if not c.passed]


def test_the_checks_see_resnet18s_names():
    obs = {key: value.tolist() for key, value in run("freeze", draw("freeze", 3)).items()}
    assert obs["names"] == ["features.0.weight", "features.1.weight", "features.1.bias", "fc.weight", "fc.bias"]
    names = obs["resnet18/names"]
    assert len(names) == 62 and names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer4.1.bn2.bias" in names and names[-2:] == ["fc.weight", "fc.bias"]
    assert obs["resnet18/head_shape"] == [512, 3] and obs["resnet18/trainable"] == ["fc.weight", "fc.bias"]
    assert obs["resnet18/not_loaded"] == [] and obs["resnet18/head_is_new"] is True


@pytest.mark.parametrize("bug, why", [
    ("freeze_layer4", r"on torchvision's ResNet-18 .*: freeze: every pretrained parameter must be frozen "
                      r"\(requires_grad = False\); still trainable: layer4\.0\.conv1\.weight, .* \(15 in all\)"),
    ("freeze_layer4_head_optimized", r"ResNet-18 .*still trainable: layer4\.0\.conv1\.weight"),
    ("finetune_stem_frozen", r"ResNet-18 .*finetune: every parameter must be trainable; frozen: conv1\.weight, "
                             r"bn1\.weight, bn1\.bias"),
])
def test_a_partial_freeze_by_name_loses_its_points(monkeypatch, bug, why):
    _, bodies = TRANSFER_BUGS[bug]
    (func, body), = bodies.items()
    monkeypatch.setattr(transfer, func, _written(func, body))
    with pytest.raises(AssertionError, match=why):
        check(func, verbose=False)
    points, max_points, messages = _hidden_points(func)
    assert points == 0 and max_points > 0, messages
    assert all("ResNet-18" in m for m in messages), messages


@pytest.mark.parametrize("func, variant", [("freeze", v) for v in FREEZE_VARIANTS]
                         + [("finetune", v) for v in FINETUNE_VARIANTS])
def test_every_correct_way_keeps_the_points(monkeypatch, capsys, func, variant):
    bodies = FREEZE_VARIANTS if func == "freeze" else FINETUNE_VARIANTS
    monkeypatch.setattr(transfer, func, _written(func, bodies[variant]))
    check(func)
    assert "the same on ResNet-18 (62 parameter tensors)" in capsys.readouterr().out
    points, max_points, messages = _hidden_points(func)
    assert points == max_points, messages


def test_at_least_four_correct_ways_of_each():
    assert len(FREEZE_VARIANTS) >= 4 and len(FINETUNE_VARIANTS) >= 4


def test_code_that_fails_on_resnet18_only_fails_there(monkeypatch):
    """Code written for the stand-in's attributes (``model.features``) raises on ResNet-18: the check says so."""
    body = FINETUNE_VARIANTS["named_parameters"].replace(
        "model.fc = nn.Linear", "model.features.requires_grad_(True)\nmodel.fc = nn.Linear")
    monkeypatch.setattr(transfer, "finetune", _written("finetune", body))
    with pytest.raises(AssertionError, match=r"finetune failed on torchvision's ResNet-18 .*AttributeError: "
                                             r"'ResNet' object has no attribute 'features'"):
        check("finetune", verbose=False)


def test_the_judge_needs_the_resnet18_observations():
    inputs = draw("freeze", 5)
    obs = {key: value.tolist() for key, value in run("freeze", inputs).items()}
    assert "ResNet-18" in judge_observations("freeze", obs, inputs)
    small = {k: v for k, v in obs.items() if not k.startswith("resnet18/")}
    with pytest.raises(AssertionError, match="on torchvision's ResNet-18 .*must train by calling train_model once"):
        judge_observations("freeze", small, inputs)
    with pytest.raises(AssertionError, match=r"ResNet-18 .*still trainable: layer4\.0\.conv1\.weight"):
        judge_observations("freeze", {**obs, "resnet18/trainable": obs["resnet18/names"][-17:]}, inputs)

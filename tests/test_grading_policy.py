"""grading/autograde/policy.py: the NumPy-only policy of Q1-Q4, read from the source and seen while the
hidden checks run, with its consequence on the task's cell (and on nothing else).

The submissions here are the reference ``hwlib`` with one function changed: the reference itself must
break no rule, each change below must break exactly the rules of the task whose code it touches.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from course.paths import COURSE_PACKAGE, REPO
from course.registry import RegistryError, load as load_registry
from grading.autograde import hidden, policy
from grading.autograde.compose import tools_dir
from grading.autograde.sandbox import Sandbox, isolation

from grading.sample_code import CONV_BY_HELPER, TORCH_CONV, TORCH_HELPER
from grading.samples import replace_region, unmark

# PyTorch is out of a NumPy-only group's reach only in a bubblewrap sandbox (full isolation); CI must have one.
FULL = isolation()["level"] == "full" or os.environ.get("CI") == "true"
needs_sandbox = pytest.mark.skipif(not FULL, reason=f"no full isolation here: {isolation()['reason']}")


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def rules(registry):
    return policy.load(registry)


def submission(folder: Path, changes: dict | None = None, extra: str = "", module: str = "layers.py") -> Path:
    """The reference hwlib in ``folder``/hwlib, with ``changes`` ({function: new solution region}) and
    ``extra`` (code appended) in ``module``."""
    shutil.copytree(REPO / "hwlib", folder / "hwlib", ignore=shutil.ignore_patterns("__pycache__"))
    text = (REPO / "hwlib" / module).read_text()
    for function, body in (changes or {}).items():
        text = replace_region(text, function, body)
    (folder / "hwlib" / module).write_text(unmark(text) + extra)
    return folder


def broken(folder, rules, registry) -> dict:
    """``{(question, task): consequence}`` of the violations found in the source of ``folder``."""
    return {(v.rule.question, v.rule.task): v.consequence for v in policy.check(folder, rules, registry=registry)}


def test_every_task_of_q1_to_q4_is_numpy_only(rules, registry):
    covered = {(r.question, r.task) for r in rules}
    assert covered == {(t.question, t.name) for t in registry.tasks if t.question in ("Q1", "Q2", "Q3", "Q4")}
    assert all("torch" in r.forbidden and "scipy" not in r.forbidden for r in rules)


def test_the_reference_breaks_nothing(tmp_path, rules, registry):
    assert broken(submission(tmp_path), rules, registry) == {}


CONV_BY = {
    "a framework imported in the function": (TORCH_CONV, ""),
    "a module-level alias read by the function": ({"conv_forward": """
        out, cache = _F.conv2d(_torch.from_numpy(x), _torch.from_numpy(w)).numpy(), (x, w)
    """}, "\nimport torch as _torch\nimport torch.nn.functional as _F\n"),
    "a helper that imports it": ({"conv_forward": "out, cache = _helper(x, w), (x, w)"},
                                 "\ndef _helper(x, w):\n    from jax import numpy as jnp\n    return jnp.asarray(x)\n"),
    "the task's name rebound to the framework": ({}, "\nfrom torch.nn.functional import conv2d as conv_forward\n"),
    "the kit's PyTorch reference": ({"conv_forward": """
        from .check import reference
        out = reference("conv", {"x": x, "w": w, "dout": np.zeros((1,))})["out"]
        cache = (x, w)
    """}, ""),
}


@pytest.mark.parametrize("how", CONV_BY)
def test_conv_through_a_framework_costs_the_conv_task_only(tmp_path, rules, registry, how):
    changes, extra = CONV_BY[how]
    assert broken(submission(tmp_path, changes, extra), rules, registry) == {("Q3", "conv"): "zero"}


def test_what_the_policy_allows(tmp_path, rules, registry):
    """SciPy, and a framework imported at module level that no task's code reads."""
    changes = {"conv_forward": """
        from scipy.signal import correlate
        out = np.stack([np.stack([sum(correlate(x[n, c], w[f, c], mode="valid") for c in range(x.shape[1]))
                                  for f in range(w.shape[0])]) for n in range(x.shape[0])]).astype(np.result_type(x, w))
        cache = (x, w)
    """}
    assert broken(submission(tmp_path, changes, "\nimport torch  # noqa: F401 (left over)\n"), rules, registry) == {}


def test_a_helper_module_of_the_students_own_is_read_too(tmp_path, rules, registry):
    """The convolution by PyTorch in hwlib/fastconv.py, imported inside conv_forward: the scan reads
    every module of the submission and follows the import into it."""
    folder = submission(tmp_path, CONV_BY_HELPER)
    (folder / "hwlib" / "fastconv.py").write_text(TORCH_HELPER)
    found = {v.rule.task: v for v in policy.check(folder, rules, registry=registry)}
    assert set(found) == {"conv"} and found["conv"].consequence == "zero"
    assert "uses torch: hwlib/fastconv.py:6 in conv2d" in found["conv"].message


def test_code_the_source_cannot_tell_is_flagged_for_review(tmp_path, rules, registry):
    changes = {"fc_forward": 'out = __import__("".join(["num", "py"])).dot(x.reshape(x.shape[0], -1), w) + b\ncache = (x, w, b)'}
    found = policy.check(submission(tmp_path, changes), rules, registry=registry)
    assert [(v.rule.task, v.consequence) for v in found] == [("fc", "flag")]
    assert "cannot tell from the source what __import__(...)" in found[0].message and "flagged for review" in found[0].message


def test_a_model_calling_a_torch_layer_is_not_itself_torch(tmp_path, rules, registry):
    """ConvNet.loss calls the student's conv_forward: only the conv task answers for its PyTorch."""
    changes, _ = CONV_BY["a framework imported in the function"]
    found = broken(submission(tmp_path, changes), rules, registry)
    assert ("Q3", "model") not in found and ("Q3", "conv") in found


def test_a_list_rule_and_a_flag_consequence(tmp_path, registry):
    course = tmp_path / "course"
    shutil.copytree(COURSE_PACKAGE, course, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    q3 = course / "questions" / "q3_cnn_mnist.toml"
    text = q3.read_text()
    head = text[: text.index("[policy]")]
    q3.write_text(head + '[policy]\nrule = ["scipy"]\nconsequence = "flag"\ntasks = ["conv"]\n')
    rules = policy.load(registry, folder=course)
    assert [(r.question, r.task, r.forbidden, r.consequence) for r in rules if r.question == "Q3"] == \
        [("Q3", "conv", ("scipy",), "flag")]
    changes = {"conv_forward": "from scipy.signal import correlate\nout, cache = correlate(x, w), (x, w)"}
    assert broken(submission(tmp_path / "s", changes), [r for r in rules if r.question == "Q3"], registry) == \
        {("Q3", "conv"): "flag"}


@pytest.mark.parametrize("table, complaint", [
    ('rule = "numpy-ish"\nconsequence = "zero"\n', 'rule must be "numpy-only" or a list of module names'),
    ('rule = "numpy-only"\nconsequence = "fail"\n', "consequence must be one of 'zero', 'flag'"),
    ('rule = "numpy-only"\nconsequence = "zero"\ntasks = ["convolution"]\n', "tasks ['convolution'] are not tasks of Q3"),
    ('rule = "numpy-only"\nconsequences = "zero"\n', "expected the keys rule, consequence"),
])
def test_a_wrong_policy_table_says_what_is_expected(tmp_path, registry, table, complaint):
    course = tmp_path / "course"
    shutil.copytree(COURSE_PACKAGE, course, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    q3 = course / "questions" / "q3_cnn_mnist.toml"
    text = q3.read_text()
    q3.write_text(text[: text.index("[policy]")] + "[policy]\n" + table)
    tomllib.loads(q3.read_text())
    with pytest.raises(RegistryError, match="q3_cnn_mnist.toml: \\[policy\\]: ") as info:
        policy.load(registry, folder=course)
    assert complaint in str(info.value)


# --- while the hidden checks run (in the sandbox) ------------------------------------------------------

OBFUSCATED = {"conv_forward": """
    import importlib
    tt = importlib.import_module("".join(["to", "rch"]))
    out = tt.nn.functional.conv2d(tt.from_numpy(np.array(x)), tt.from_numpy(np.array(w))).numpy()
    cache = (x, w)
""", "conv_backward": TORCH_CONV["conv_backward"]}


def graded(tmp_path, changes, gids, extra="", budget_scale=2.0):
    run = tmp_path / "run"
    work = run / "student"
    submission(work / "submission", changes, extra)
    os.chmod(tmp_path, 0o711)
    os.chmod(run, 0o711)
    box = Sandbox(work, slot=40 + os.getpid() % 50, tools=tools_dir(run))
    try:
        groups = [g for gid, g in hidden.load().items() if gid in gids]
        return hidden.run_checks(box, groups, budget_scale=budget_scale)
    finally:
        box.close()


@needs_sandbox
def test_an_import_the_source_hides_is_seen_while_the_checks_run(tmp_path):
    """importlib with a computed name: the source only says "review", but a NumPy-only group runs where
    PyTorch is not installed at all, so the import fails whatever its spelling: conv scores 0 with the
    reason in every case, and the sandbox's record turns the review into the rule's consequence. The
    model check runs the student's conv, so it loses its loss cases too; fc keeps its points."""
    results = graded(tmp_path, OBFUSCATED, ("q1-fc-test", "q3-conv", "q3-model"))
    conv, model, fc = results["q3-conv"], results["q3-model"], results["q1-fc-test"]
    assert conv.points == 0 and conv.max_points > 0 and [p["consequence"] for p in conv.policy] == ["zero"]
    assert all("torch cannot be imported here: this question is graded NumPy only" in c.message for c in conv.cases), \
        (conv.status, conv.message, [c.message for c in conv.cases])
    assert all(c.passed == c.id.startswith("init") for c in model.cases), [(c.id, c.message) for c in model.cases]
    assert fc.points == fc.max_points and fc.policy == []


@needs_sandbox
def test_a_torch_wrapper_gets_no_points_and_the_policy_says_why(tmp_path):
    results = graded(tmp_path, TORCH_CONV, ("q3-conv",))
    conv = results["q3-conv"]
    assert conv.points == 0 and all("graded NumPy only" in c.message for c in conv.cases)
    saved = {"groups": {"q3-conv": {"policy": conv.policy}}}
    assert policy.flags(saved) == ["policy: Q3 conv breaks NumPy only (no points for this task)"]



# --- time budgets: a neighbour's CPU hog costs no budget (hidden.Clock) ---------------------------------

SLOW_CONV = '''

_conv_forward = conv_forward


def conv_forward(x, w):
    """Right, and slow: 0.3 s of this process's CPU time per call (whatever else the machine runs)."""
    import time
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    return _conv_forward(x, w)
'''


def test_a_neighbours_cpu_hog_costs_no_budget(tmp_path):
    """A group's budget is charged net of the time its runner waited for a CPU: a correct but slow
    conv, given a budget of twice its time alone, keeps every point with five processes spinning
    beside it, though its wall-clock time then passes that budget (where a wall-clock budget fails it)."""
    if (os.cpu_count() or 1) > 4:
        pytest.skip("five spinning processes do not slow a group down on more than 4 cores")
    gid = "q3-conv"
    group = hidden.load()[gid]
    alone = graded(tmp_path / "alone", {}, (gid,), extra=SLOW_CONV)[gid]
    assert alone.points == alone.max_points and alone.wall_s > 0.5, (alone.message, alone.wall_s)
    scale = 2 * alone.wall_s / group.budget_s               # a budget of twice its time alone
    # Each spinner in a session of its own, as each sandbox is: the kernel's autogroups share the CPUs
    # between sessions, so spinners of one session would slow the group down much less.
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True) for _ in range(5)]
    try:
        hogged = graded(tmp_path / "hogged", {}, (gid,), extra=SLOW_CONV, budget_scale=scale)[gid]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    budget = group.budget_s * scale
    assert hogged.points == hogged.max_points, (hogged.status, hogged.message, hogged.wall_s, budget)
    if hogged.wall_s <= budget:   # a machine already loaded: the time alone was slow too; nothing shown
        pytest.skip(f"the hog did not slow the group past its budget here ({hogged.wall_s:.2f} s, budget {budget:.2f} s)")


def test_the_clock_charges_wall_time_less_the_wait_for_a_cpu(monkeypatch):
    """hidden.Clock on a scripted machine: 10 s pass, 7 of them waiting for a CPU: 3 s are charged; a
    runner that sleeps (no wait) is charged in full; where schedstat cannot be read, wall-clock time."""
    now = {"t": 100.0}
    waits = {"w": 50.0}
    monkeypatch.setattr(hidden.time, "monotonic", lambda: now["t"])

    class Running:
        def runner_pid(self):
            return 4242
    clock = hidden.Clock(Running())
    monkeypatch.setattr(clock, "_read", lambda: waits["w"])
    clock.restart()
    now["t"] += 10.0
    waits["w"] += 7.0
    assert (clock.wall(), clock.charged()) == (10.0, 3.0)
    clock.restart()                 # a new group: charged from here
    now["t"] += 5.0                 # sleeping: no wait for a CPU
    assert clock.charged() == 5.0
    monkeypatch.setattr(clock, "_read", lambda: None)
    assert clock.charged() == clock.wall() == 5.0

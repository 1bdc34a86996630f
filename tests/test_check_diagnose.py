"""The diagnosis of a wrong value (hwlib/check/diagnose.py): named where it is a known mistake, never wrong.

Every defect of :data:`DEFECTS` (the kit's sample bugs of grading/sample_code.py, loaded as the student's
module would be, and a few focused ones) runs through the public check and through the grader's judge
(``grading.autograde.hidden.evaluate``, on the hidden cases of its target where the course has them,
on cases of the public shapes otherwise). A defect of the family must be named, by the sentence
expected; one outside it (noise, a wrong constant, a mistake no transform of the answer describes) must
get no sentence at all, in any case. Values print plainly (no ``np.float64(...)``).
"""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest

from grading.autograde import hidden
from grading.release.strip import BEGIN, END
from grading.sample_code import BUGS
from grading.samples import replace_region
from hwlib import check, layers, rnn_layers
from hwlib.check import diagnose

REPO = Path(check.__file__).resolve().parents[2]
DIAGNOSIS = re.compile(r"\)\. (Your .*?)(?: \(case: |$)")


@pytest.fixture(autouse=True)
def one_thread():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def bug_functions(key: str) -> tuple[str, dict]:
    """The functions of BUGS[key] as the student's module defines them: the module with the bug's region
    bodies, loaded inside the hwlib package (its relative imports work); -> (module name, {name: function})."""
    filename, bodies = BUGS[key]
    text = (REPO / "hwlib" / filename).read_text()
    for function, body in bodies.items():
        text = replace_region(text, function, body)
    text = "".join(line for line in text.splitlines(keepends=True) if line.strip() not in (BEGIN, END))
    module = types.ModuleType(f"hwlib._bug_{key}")
    module.__package__ = "hwlib"
    exec(compile(text, f"<{key}: hwlib/{filename}>", "exec"), module.__dict__)
    return f"hwlib.{filename[:-3]}", {name: getattr(module, name) for name in bodies}


def _wrap(module: str, function: str, change):
    """A focused defect: the reference ``function`` with ``change`` applied to what it returns."""
    def make():
        original = getattr(layers if module == "hwlib.layers" else rnn_layers, function)
        return module, {function: lambda *args: change(original(*args), *args)}
    return make


def _noise(out, *args):
    dx, dw, db = out
    return dx, dw, db + (1e-3 * np.random.default_rng(1).standard_normal(db.shape)).astype(db.dtype)


# (defect, where it comes from, target, the diagnosis expected: a regex, or None for a defect outside the family)
DEFECTS = [
    # the kit's BUGS (grading/sample_code.py), value defects
    ("fc_db", "kit", "fc", r"Your db has an extra axis 0 \(one entry per sample\): summed over it"),
    ("conv_dw", "kit", "conv", r"Your dw is what sample 0 alone \(the first\) gives"),
    ("softmax_shift", "kit", "softmax", r"np\.exp overflows for scores this large"),
    ("temporal_fc_db", "kit", "temporal_fc", r"Your db is what time step \d+ alone \(the last\) gives"),
    ("caption_mask", "kit", "temporal_softmax", r"counts the masked \(<NULL>\) positions too"),
    ("conv_c_order", "kit", "conv", r"if the memory of x \(Fortran-ordered here\) were C-ordered"),
    # new sample bugs (VALUE_BUGS, appended to BUGS)
    ("fc_db_mean", "new", "fc", r"Your db is the expected one divided by N = \d+ \(did you average over the batch"),
    ("fc_dw_transposed", "new", "fc", r"Your dw of shape \(\d+, \d+\) is the transpose of the expected one"),
    ("fc_dx_fortran", "new", "fc", r"Your dx holds the expected values in another order.*C/Fortran reshape mix-up"),
    ("relu_mask_inverted", "new", "relu", r"the ReLU mask is inverted"),
    ("conv_dx_first_sample", "new", "conv", r"Your dx equals the expected one for sample 0 only"),
    ("conv_true_convolution", "new", "conv", r"Your out is the true convolution \(kernel flipped\)"),
    ("conv_dw_overwritten", "new", "conv",   # with a 1 x 1 output, the last position is the last sample's
     r"Your dw (holds only the contribution of the last output position|is what sample \d+ alone \(the last\) gives)"),
    ("pool_dx_whole_window", "new", "pool", r"to every entry of the window, not to its maximum alone"),
    ("softmax_dx_sign", "new", "softmax", r"Your dx is the expected one with its sign flipped \(times -1\)"),
    ("softmax_loss_summed", "new", "softmax", r"Your loss is the expected one times N = \d+"),
    ("rnn_off_by_one", "new", "rnn", r"Your out is off by one time step: your step t holds the expected step t-1"),
    ("rnn_h0_ignored", "new", "rnn", r"Your out is the expected one with h0 left out"),
    ("rnn_step_db_mean", "new", "rnn_step", r"Your db is the expected one divided by N = \d+"),
    # focused defects (the reference with its result changed)
    ("dw_flipped", _wrap("hwlib.layers", "conv_backward", lambda g, *a: (g[0], g[1][:, :, ::-1, ::-1].copy())),
     "conv", r"Your dw is the expected one with the kernel flipped"),
    ("embedding_twice", _wrap("hwlib.rnn_layers", "word_embedding_backward", lambda g, *a: 2 * g),
     "word_embedding", r"Your dW is twice the expected one"),
    ("relu_missing", _wrap("hwlib.layers", "relu_forward", lambda g, x: (np.array(x), g[1])),
     "relu", r"Your out is x unchanged: the ReLU's max\(x, 0\) is missing"),
    # outside the family: no sentence
    ("word_embedding_assigned", "new", "word_embedding", None),
    ("rnn_no_carry", "new", "rnn", None),
    ("softmax_no_log", "new", "softmax", None),
    ("db_noise", _wrap("hwlib.layers", "fc_backward", _noise), "fc", None),
    ("db_times_0.37", _wrap("hwlib.layers", "fc_backward", lambda g, *a: (g[0], g[1], g[2] * 0.37)), "fc", None),
    ("dw_plus_one", _wrap("hwlib.layers", "conv_backward", lambda g, *a: (g[0], g[1] + 1)), "conv", None),
]


def _patch(monkeypatch, origin, key):
    module, functions = bug_functions(key) if isinstance(origin, str) else origin()
    target = layers if module == "hwlib.layers" else rnn_layers
    for name, function in functions.items():
        monkeypatch.setattr(target, name, function)


def diagnosis(message: str) -> str:
    found = DIAGNOSIS.search(message)
    return found.group(1) if found else ""


def public_message(name: str) -> str:
    try:
        check.check(name, verbose=False)
    except AssertionError as exc:
        return str(exc)
    return ""


def hidden_messages(name: str) -> list[str]:
    """The failed cases' messages of the grader's judge: the course's hidden cases of ``name``, else
    cases of the public shapes (seeds 11 and 12, both dtypes)."""
    groups = [hidden.Group(g.grade_id, g.budget_s, tuple(c for c in g.cases if c.target == name), g.oracle)
              for g in hidden.load().values()]
    groups = [g for g in groups if g.cases]
    if not groups:
        cases = tuple(hidden.Case(f"{name}-{i}-{dtype}", 1.0, name, dtype, 11 + i, dict(draw))
                      for i, draw in enumerate(check.TARGETS[name].cases[:2]) for dtype in ("float64", "float32"))
        groups = [hidden.Group(f"diagnose-{name}", 30.0, cases)]
    messages = []
    for group in groups:
        inputs_of = hidden.draw_inputs([group])
        outputs, errors = {}, {}
        for case in group.cases:
            try:
                outputs[case.id] = check.run(case.target, inputs_of[(group.grade_id, case.id)])
            except Exception as exc:  # noqa: BLE001 - as the sandbox records it
                errors[case.id] = {"type": type(exc).__name__, "message": str(exc), "where": ""}
        result = hidden.evaluate(group, inputs_of, outputs, errors)
        messages += [c.message for c in result.cases if not c.passed]
    return messages


@pytest.mark.parametrize("defect, origin, name, expected", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_a_defect_is_named_or_left_alone(monkeypatch, defect, origin, name, expected):
    _patch(monkeypatch, origin, defect)
    public = public_message(name)
    assert public, f"{defect}: the public check of {name} passed"
    assert "np.float" not in public
    said = diagnosis(public)
    if expected is None:
        assert said == "", f"{defect}: a diagnosis for a defect outside the family: {public}"
    else:
        assert re.search(expected, said), f"{defect}: {public}"
    failed = hidden_messages(name)
    assert failed, f"{defect}: every hidden case passed"
    named = [m for m in failed if diagnosis(m)]
    for message in named:       # never a wrong sentence, in any case
        assert expected is not None and re.search(expected, diagnosis(message)), f"{defect}: {message}"
    if expected is not None:
        assert named, f"{defect}: no hidden case names it: {failed}"


CONTROLS = ("db_noise", "db_times_0.37", "dw_plus_one")    # made-up changes, not mistakes a student makes


def test_three_quarters_of_the_value_defects_are_named():
    """Every row is a value defect; the controls aside, at least 3 in 4 are named (the rest are mistakes
    no transform of the answer describes: the test above holds that they get no sentence)."""
    defects = [d for d in DEFECTS if d[0] not in CONTROLS]
    named = [d for d in defects if d[3] is not None]
    assert len(DEFECTS) >= 15 and len(named) >= 0.75 * len(defects)


# --- the matching itself ---------------------------------------------------------------------------------

def explain(key, actual, expected, name="fc", inputs=None, **kw):
    return diagnose.explain(name, key, actual, expected, inputs or {}, threshold=1e-8, floor_scale=1e-6, **kw)


def test_factors_name_the_batch_size_and_guess_no_cause_when_readings_coincide():
    e = np.random.default_rng(0).standard_normal(6)
    x = np.zeros((4, 3))
    assert "divided by N = 4 (did you average" in explain("db", e / 4, e, inputs={"x": x})
    assert explain("db", -e, e, inputs={"x": x}).startswith("Your db is the expected one with its sign flipped")
    two = explain("db", e * 2, e, inputs={"x": np.zeros((2, 3))})      # N = 2: a factor 2, no cause guessed
    assert "times 2 (here N = 2)" in two and "?" not in two
    three = explain("db", e / 3, e, name="temporal_fc", inputs={"x": np.zeros((3, 3, 2))})   # N = T = 3
    assert "divided by 3 (here N = T = 3)" in three and "?" not in three
    assert explain("db", e * 0.37, e, inputs={"x": x}) == ""
    assert explain("db", e + 1e-3, e, inputs={"x": x}) == ""


def test_a_candidate_the_check_cannot_tell_apart_is_never_named():
    """N = 1: 'sample 0 only' is the reference itself; a symmetric matrix is its own transpose."""
    e = np.random.default_rng(1).standard_normal((1, 5))
    assert explain("dx", e * 1.5, e, inputs={"x": np.zeros((1, 5))}) == ""
    s = np.random.default_rng(2).standard_normal((3, 3))
    s = s + s.T
    wrong = s.copy()
    wrong[0, 0] += 1
    assert "transpose" not in explain("dw", wrong, s)


def test_zero_everywhere_and_shapes():
    e = np.random.default_rng(3).standard_normal((4, 6))
    assert explain("dw", np.zeros_like(e), e) == "Your dw is zero everywhere"
    assert "transpose of the expected one" in explain("dw", e.T.copy(), e)
    assert "reshape it to (4, 6)" in explain("dw", e.reshape(6, 4), e)
    assert explain("dw", np.ones((5, 5)), e) == ""


def test_values_print_plainly():
    from hwlib.gradient_check import assert_close
    with pytest.raises(AssertionError) as info:
        assert_close(np.array([2.2297490853822413]), np.array([2.5]), name="x")
    assert "yours=2.2297, expected=2.5 " in str(info.value)
    with pytest.raises(AssertionError) as info:
        assert_close(np.array([1.0000001]), np.array([1.0]), name="x", threshold=1e-9)
    assert "yours=1.0000001, expected=1.0 " in str(info.value)      # as many digits as tell them apart
    with pytest.raises(AssertionError) as info:
        assert_close(np.array([1.5], dtype=np.float32), np.array([1.25], dtype=np.float32), name="x")
    assert "yours=1.5, expected=1.25 " in str(info.value)


def test_a_model_gradient_is_diagnosed_in_the_public_check(monkeypatch):
    from hwlib.classifiers import SoftmaxClassifier
    original = SoftmaxClassifier.loss

    def loss(self, X, y=None):
        out = original(self, X, y)
        if y is None:
            return out
        return out[0], {**out[1], "b2": out[1]["b2"] * len(X)}

    monkeypatch.setattr(SoftmaxClassifier, "loss", loss)
    with pytest.raises(AssertionError, match=r"grads\['b2'\].*Your grads\['b2'\] is the expected one times N = 6"):
        check.check("SoftmaxClassifier.loss", verbose=False)


def test_a_diagnosis_never_breaks_the_judge():
    """Whatever the outputs are (objects, NaN, wrong types), the judge's message stays and nothing raises."""
    assert explain("db", np.array(["a"]), np.ones(1)) == ""
    assert explain("db", np.array([np.nan, 1.0]), np.ones(2)) == ""
    assert explain("db", None, np.ones(2)) == ""
    failure = diagnose.Mismatch("fc db: bad", "db", object(), np.ones(2), 1e-8, 1e-6)
    assert str(failure.explained("fc", {"x": np.ones((2, 2))}, reference=lambda i: 1 / 0)) == "fc db: bad"

"""Dtype changes are taught, and deducted only where the course asks for it (course.toml's
``strict_dtypes``, per profile): a correct layer that allocates with ``np.zeros`` without ``dtype=``
(cs231n's way) turns float32 inputs into float64 outputs. In the seed profile it keeps its points, the
public check prints a note with what it costs, and the hidden case's result carries that note for the
feedback; with the setting on, the case fails as before. Values of a float64 output are judged at the
threshold of the float32 reference, and the other rules (inputs unchanged, memory layouts) hold either way.
"""

from __future__ import annotations

import re
import shutil
import types
from dataclasses import asdict

import numpy as np
import pytest

from course.paths import COURSE_PACKAGE, REPO
from course.registry import RegistryError, load
from grading import samples
from grading.autograde import gradebook, hidden, protocol
from grading.sample_code import BUGS
from hwlib import check, classifiers, layers

pytestmark = pytest.mark.usefixtures("torch_one_thread")

FLOAT32_POOL = ("pool", "ConvNet.loss")   # the targets the float64 max-pooling sample changes in float32


def _sample_module(key: str) -> types.ModuleType:
    """The student module of sample bug ``key`` (grading/sample_code.py: the very code the sample hands
    in), imported as a module of its own beside the kit's."""
    name, bodies = BUGS[key]
    text = (REPO / "hwlib" / name).read_text()
    for function, body in bodies.items():
        text = samples.replace_region(text, function, body)
    module = types.ModuleType(f"hwlib._sample_{key}")
    module.__package__ = "hwlib"
    exec(compile(samples.unmark(text), f"<sample {key}>", "exec"), module.__dict__)
    return module


def _use_float64_pool(monkeypatch):
    """The sample ``bug-pool-float64``'s max-pooling (np.zeros without dtype) in the layers and in the
    ConvNet (which binds the layers on import); returns the sample's module."""
    sample = _sample_module("pool_float64")
    for module in (layers, classifiers):
        monkeypatch.setattr(module, "max_pool_forward", sample.max_pool_forward)
        monkeypatch.setattr(module, "max_pool_backward", sample.max_pool_backward)
    x = np.ones((1, 1, 2, 2), np.float32)
    assert sample.max_pool_forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})[0].dtype == np.float64
    return sample


@pytest.fixture
def float64_pool(monkeypatch):
    return _use_float64_pool(monkeypatch)


# --- the course's setting -------------------------------------------------------------------------------

def test_the_seed_profile_teaches_and_the_extended_one_deducts():
    seed, extended = load(profile="seed"), load(profile="extended")
    assert (seed.strict_dtypes, extended.strict_dtypes) == (False, True)
    assert {g.strict_dtypes for g in hidden.load(seed).values()} == {False}
    assert {g.strict_dtypes for g in hidden.load(extended).values()} == {True}


@pytest.fixture
def description(tmp_path):
    folder = tmp_path / "course"
    folder.mkdir()
    shutil.copy2(COURSE_PACKAGE / "course.toml", folder / "course.toml")
    shutil.copytree(COURSE_PACKAGE / "questions", folder / "questions")
    return folder


@pytest.mark.parametrize("old, new, message", [
    ("strict_dtypes = false", 'strict_dtypes = "no"', "[profiles.seed] strict_dtypes must be true or false; got 'no'"),
    ("strict_dtypes = false", "strict_dtype = false",
     "[profiles.seed] sets 'strict_dtype', which is not a profile setting (expected one of description, strict_dtypes)"),
])
def test_a_wrong_setting_names_the_profile(description, old, new, message):
    path = description / "course.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(RegistryError, match=re.escape(message)):
        load(description)


def test_the_setting_is_off_where_a_profile_leaves_it_out(description):
    path = description / "course.toml"
    path.write_text(path.read_text().replace("strict_dtypes = true", "", 1))
    assert load(description, profile="extended").strict_dtypes is False


# --- the public check -------------------------------------------------------------------------------------

def test_the_public_check_notes_a_dtype_change_with_its_cost(float64_pool, capsys):
    check.check("pool")
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1, out                     # once, not once per float32 case
    note = notes[0]
    assert note.startswith("note: pool out has dtype float64 for float32 inputs. This check does not fail on it")
    for words in ("judged at float32's threshold", "twice the memory", "about 2x slower", "~60 ms against ~30 ms",
                  "np.zeros(shape, dtype=x.dtype)", "without dtype= allocate float64"):
        assert words in note, words
    with pytest.raises(AssertionError, match=r"pool out has dtype float64; expected float32, the dtype of the "
                                             r"inputs .*allocate with the input's dtype"):
        check.check("pool", verbose=False, strict_dtypes=True)
    check.check("ConvNet.loss")
    assert "note: ConvNet.loss scores, grads/" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="ConvNet.loss scores has dtype float64; expected float32, the model's"):
        check.check("ConvNet.loss", verbose=False, strict_dtypes=True)


def test_the_command_line_notes_or_fails(float64_pool, capsys):
    from hwlib.check.__main__ import main

    assert main(["pool"]) == 0
    out = capsys.readouterr().out
    assert "\nnote: pool out has dtype float64" in out and out.splitlines()[-1] == "1/1 checks pass"
    assert main(["pool", "--strict-dtypes"]) == 1
    assert "pool: FAIL: AssertionError: pool out has dtype float64; expected float32" in capsys.readouterr().out


def test_a_kept_dtype_gives_no_note(capsys):
    check.check("pool")
    assert "note:" not in capsys.readouterr().out


def test_the_constructor_dtype_is_the_same_rule():
    inputs = check.draw("ConvNet.init", 3, "float32", weight_scale=1e-2)
    outputs = check.run("ConvNet.init", inputs)
    expected = check.reference("ConvNet.init", inputs)
    wider = {**outputs, "params/b2": outputs["params/b2"].astype(np.float64)}   # b2 = np.zeros(hidden_dim)
    check.judge("ConvNet.init", wider, expected, inputs)
    (note,) = check.notes("ConvNet.init", wider, expected)
    assert note.startswith("note: ConvNet.init params/b2 has dtype float64 for a float32 model.")
    with pytest.raises(AssertionError, match="ConvNet.init params/b2 has dtype float64; expected float32, the model's dtype"):
        check.judge("ConvNet.init", wider, expected, inputs, strict_dtypes=True)


# --- values at the reference's threshold; the other rules hold ---------------------------------------------

def test_a_float64_result_of_float32_inputs_is_judged_at_float32s_threshold(monkeypatch):
    """A correct float32 computation done in float64 differs from the float32 reference by the
    reference's own round-off (far above float64's 1e-8, far below float32's 1e-3)."""
    forward = layers.conv_forward

    def in_float64(x, w):
        return forward(x.astype(np.float64), w.astype(np.float64))

    monkeypatch.setattr(layers, "conv_forward", in_float64)
    inputs = check.draw("conv", 11, "float32", N=2, C=3, H=9, W=8, F=4, HH=3, WW=3)
    outputs, expected = check.run("conv", inputs), check.reference("conv", inputs)
    assert outputs["out"].dtype == outputs["dx"].dtype == np.float64 and expected["out"].dtype == np.float32
    worst = check.judge("conv", outputs, expected, inputs)
    assert 1e-8 < max(worst.values()) < 1e-3, worst
    with pytest.raises(AssertionError, match=r"conv dw: worst relative error .* > threshold 1e-03"):
        check.judge("conv", {**outputs, "dw": outputs["dw"] * 1.01}, expected, inputs)


def test_inputs_and_layouts_stay_graded_without_strict_dtypes(float64_pool, monkeypatch):
    sample = float64_pool

    def scales_x(x, pool_param):
        out, cache = sample.max_pool_forward(x, pool_param)
        x *= 2
        return out, cache

    monkeypatch.setattr(layers, "max_pool_forward", scales_x)
    inputs = check.draw("pool", 4, "float32")
    with pytest.raises(AssertionError, match="max_pool_forward changed its input x in place"):
        check.judge("pool", check.run("pool", inputs), check.reference("pool", inputs), inputs)

    def c_order_only(x, pool_param):       # reads x's memory as if it were row-major
        return sample.max_pool_forward(np.frombuffer(x.tobytes(order="A"), x.dtype).reshape(x.shape), pool_param)

    monkeypatch.setattr(layers, "max_pool_forward", c_order_only)
    inputs = check.draw("pool", 4, "float64", layout="fortran")
    with pytest.raises(AssertionError, match="pool out: worst relative error"):
        check.judge("pool", check.run("pool", inputs), check.reference("pool", inputs), inputs)


# --- the hidden cases, both ways ---------------------------------------------------------------------------

def _grade(profile: str, monkeypatch) -> dict:
    """The max-pooling cells (q3-pool, q3-model) as the grader judges the sample's code in ``profile``:
    its outputs through the protocol's flattening, judged by hidden.evaluate against the references of
    the kit's own layers (computed, as in the grader, where the sample's code is not)."""
    groups = [g for gid, g in hidden.load(load(profile=profile)).items() if gid in ("q3-pool", "q3-model")]
    inputs_of = hidden.draw_inputs(groups)
    with monkeypatch.context() as patched:
        _use_float64_pool(patched)
        outputs = {g.grade_id: {c.id: protocol.flatten(check.run(c.target, inputs_of[(g.grade_id, c.id)]))
                                for c in g.cases} for g in groups}
    return {g.grade_id: hidden.evaluate(g, inputs_of, outputs[g.grade_id], {}) for g in groups}


def _changed_cases(results: dict, profile: str) -> set:
    groups = hidden.load(load(profile=profile))
    return {c.id for gid in results for c in groups[gid].cases if c.target in FLOAT32_POOL and c.dtype == "float32"}


def test_the_seed_keeps_the_points_and_says_why(monkeypatch):
    results = _grade("seed", monkeypatch)
    assert all(res.points == res.max_points for res in results.values()), \
        [(c.id, c.message) for res in results.values() for c in res.cases if not c.passed]
    noted = {c.id for res in results.values() for c in res.cases if c.note}
    assert noted == _changed_cases(results, "seed")
    note = next(c.note for res in results.values() for c in res.cases if c.note)
    assert "has dtype float64 for float32 inputs" in note or "for a float32 model" in note
    assert "It costs no points in this course's grading" in note and "about 2x slower" in note
    # The note is saved with the result (results/<student>.json) and read back.
    saved = gradebook.group_result(asdict(results["q3-pool"]))
    assert [c.note for c in saved.cases] == [c.note for c in results["q3-pool"].cases]


def test_the_extended_profile_deducts_exactly_the_float32_cases(monkeypatch):
    results = _grade("extended", monkeypatch)
    failed = {c.id: c.message for res in results.values() for c in res.cases if not c.passed}
    assert set(failed) == _changed_cases(results, "extended")
    assert all(re.search(r"has dtype float64; expected float32", m) for m in failed.values()), failed
    assert not any(c.note for res in results.values() for c in res.cases)


@pytest.mark.parametrize("profile, strict", [("seed", False), ("extended", True)])
def test_the_sample_expects_what_its_profile_says(monkeypatch, profile, strict):
    """``bug-pool-float64`` (grading/samples.py) loses its float32 pooling cases only where they are deducted."""
    monkeypatch.setenv("HW4_COURSE_PROFILE", profile)
    lost = samples._dtype_loses(lambda c: c.target in FLOAT32_POOL and c.dtype == "float32")
    if strict:
        assert lost and all(lost.values())
        assert set(lost) <= {"q3-pool", "q3-model"}
    else:
        assert lost == {}

"""The speed note of the public checks (hwlib/check/speed.py): what Q3's graded run would take.

The extrapolation from small batches is checked on calls of known cost (sleeps: a fixed part and a part
per sample); the note on the naive loop layers of bench/naive.py (the sample ``variant-loops``) says
hours and advises vectorizing, in well under 5 seconds; on the reference it projects about the stored
run. Only the public checks print it: the grader's judge never times anything.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from hwlib import check, layers
from hwlib.check import speed

REPO = Path(check.__file__).resolve().parents[2]


def naive_layers():
    """bench/naive.py loaded alone (importing the bench package would pin this process's thread counts)."""
    spec = importlib.util.spec_from_file_location("naive_layers_for_speed", REPO / "bench" / "naive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sleeper(fixed: float, per_sample: float, calls: list):
    def make(n):
        def call():
            calls.append(n)
            time.sleep(fixed + per_sample * n)
        return call
    return make


@pytest.mark.parametrize("fixed, per_sample", [(0.0, 0.004), (0.02, 0.0005), (0.0, 2e-5), (0.15, 0.0002)])
def test_a_batch_of_100_is_extrapolated_linearly_from_small_ones(fixed, per_sample):
    calls = []
    start = time.perf_counter()
    estimate = speed.per_batch(sleeper(fixed, per_sample, calls))
    assert time.perf_counter() - start < 3.5
    assert estimate == pytest.approx(fixed + 100 * per_sample, rel=0.35)
    assert calls[:2] == [1, 1] and max(calls) <= 100


def test_a_call_slower_than_the_budget_is_timed_once():
    calls = []
    assert speed.per_batch(sleeper(0.0, 0.3, calls), budget_s=0.2) == pytest.approx(30.0, rel=0.2)
    assert calls == [1]


def test_the_projection_is_the_stored_run_for_the_reference_figures():
    for kind in ("conv", "pool", "ConvNet"):
        assert speed.projection(kind, speed.REFERENCE[kind], 1.0) == pytest.approx(speed.reference_run())
        doubled = {k: 2 * v for k, v in speed.REFERENCE[kind].items()}     # a machine half as fast
        assert speed.projection(kind, doubled, 2.0) == pytest.approx(2 * speed.reference_run())
    slower = {**speed.REFERENCE["conv"], "backward": speed.REFERENCE["conv"]["backward"] + 1.0}
    assert speed.projection("conv", slower, 1.0) == pytest.approx(speed.reference_run() + speed.STEPS)
    assert [speed.duration(s) for s in (42, 420, 18000, 400000)] == ["42 s", "7 min", "5.0 h", "4.6 days"]


def test_the_naive_loops_are_told_to_vectorize_in_well_under_5_seconds(monkeypatch):
    naive = naive_layers()
    for name in ("conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward"):
        monkeypatch.setattr(layers, name, getattr(naive, name))
    for name, hours in (("conv", 1.0), ("pool", 0.05)):
        start = time.perf_counter()
        text = speed.note(name)
        assert time.perf_counter() - start < 5, name
        run = speed.projection(*_figures(name), 1.0)
        assert "Vectorize the loops" in text and "Q3's graded run" in text, text
        assert run > hours * 3600, text


def _figures(name):
    kind = speed.NOTED[name][1]
    return kind, speed.measure(name)


def test_the_reference_projects_about_its_stored_run(monkeypatch):
    """The kit's own layers against their stored figures, scaled by the probe: within a factor 2. Timed as
    the figures were taken (CPU time, one BLAS thread), so that other jobs on the machine add nothing."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    monkeypatch.setattr(speed, "CLOCK", time.process_time)
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        scale = speed.probe(repeats=10) / speed.PROBE_S
        for name in ("conv", "pool", "ConvNet.loss"):
            kind, parts = _figures(name)
            ratio = speed.projection(kind, parts, scale) / speed.reference_run(scale)
            assert 0.5 < ratio < 2, (name, parts, scale)


def test_the_public_checks_print_it_and_the_graders_judge_never_times(monkeypatch, capsys):
    check.check("pool")
    out = capsys.readouterr().out
    assert "speed: your max-pool forward+backward takes" in out and "Q3's graded run" in out
    check.check("pool", verbose=False)
    assert capsys.readouterr().out == ""

    def no_timing(*args, **kwargs):
        raise AssertionError("timed outside a verbose public check")
    monkeypatch.setattr(speed, "note", no_timing)
    inputs = check.draw("conv", 3, "float32")
    check.judge("conv", check.run("conv", inputs), check.reference("conv", inputs), inputs)
    check.check("conv", verbose=False)


def test_a_layer_that_raises_on_the_graded_shapes_gets_no_note(monkeypatch):
    def broken(x, w):
        if x.shape[0] >= 1 and x.shape[2] == 28:
            raise ValueError("no")
        raise AssertionError
    monkeypatch.setattr(layers, "conv_forward", broken)
    assert speed.note("conv") == ""
    assert speed.note("fc") == ""


def test_the_note_names_the_graded_shapes_and_both_times(monkeypatch):
    monkeypatch.setattr(speed, "measure", lambda name, budget_s=1.0: {"forward": 0.9, "backward": 1.0})
    monkeypatch.setattr(speed, "probe", lambda repeats=5: speed.PROBE_S)
    monkeypatch.setattr(speed, "busy", lambda: False)
    text = speed.note("conv")
    assert text.startswith("speed: your conv forward+backward takes 1.9 s per batch of 100")
    run = speed.projection("conv", {"forward": 0.9, "backward": 1.0}, 1.0)
    assert 2.5 * 3600 < run < 3.5 * 3600           # 5,500 steps of 1.9 s and 660 forward passes of 0.9 s
    assert f"would take about {speed.duration(run)}" in text
    assert "Vectorize the loops over the batch and the output positions" in text
    ref = speed.REFERENCE["conv"]["forward"] + speed.REFERENCE["conv"]["backward"]
    assert f"the reference takes {ref * 1000:.2g} ms ({speed.duration(speed.reference_run())} for the run)" in text

"""course/timings.py: the students' table of times says which data a time was measured on."""

from __future__ import annotations

from course import timings


def _row(seconds, data):
    return {"seconds": seconds, "cpus": 2, "load_before": 0.5, "load_after": 0.6, "data": data, "date": "2026-12-07"}


def test_a_full_time_on_a_stand_in_is_not_given_as_the_runs_time():
    data = {"02_softmax_mnist": {"quick": _row(7.0, "embedded"), "full": _row(249.0, "full")},
            "04_image_captioning": {"full": _row(40.7, "embedded")},
            "05_transfer_learning": {"full": _row(13.8, "embedded")}}
    rows = {line.split("|")[1].strip(): line for line in timings.table(data).splitlines()[2:]}
    assert "| 7 s (2 cores, load 0.5, embedded data) | 4 min (2 cores, load 0.5, full data) |" in rows["`02_softmax_mnist.ipynb`"]
    assert "not measured with the COCO captions you fetch (the built-in stand-in: 41 s)" in rows["`04_image_captioning.ipynb`"]
    assert "ResNet-18 weights you fetch (the built-in stand-in: 14 s)" in rows["`05_transfer_learning.ipynb`"]
    assert rows["`01_layers.ipynb`"].count("not measured") == 2

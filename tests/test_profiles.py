"""The assignment's scope as data: the seed profile (the default) is the seed homework's tasks exactly;
the extended profile (the cs231n-style scope) builds, leaks nothing, and grades a complete submission
to full code points. Each build runs in its own process with $HW4_COURSE_PROFILE set, as an instructor
builds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from course.paths import HWLIB, REPO
from course.registry import PROFILE_ENV, load, profile_cells
from grading.release.leaks import scan, secrets
from grading.release.strip import strip_source, student_modules

SEED = load(profile="seed")
EXTENDED = load(profile="extended")


def test_the_seed_profile_is_the_seed_homework():
    """The default, task by task (the seed's Q1 (a)-(b), Q2 (a)-(b), Q3 (a)-(b), Q4 (a)-(b), Q5 (a)-(d)),
    its report items graded by hand, Q1's convolution proof optional, Q6 extra credit."""
    assert load().profile == "seed"
    functions = {t.question: sorted(f for task in SEED.tasks_of(t.question) for f in task.functions) for t in SEED.tasks}
    assert functions == {
        "Q1": ["fc_backward", "fc_forward", "relu_backward", "relu_forward"],
        "Q2": ["SoftmaxClassifier.__init__", "SoftmaxClassifier.loss", "softmax_loss"],
        "Q3": ["ConvNet.__init__", "ConvNet.loss", "conv_backward", "conv_forward", "max_pool_backward",
               "max_pool_forward"],
        "Q4": ["CaptioningRNN.loss", "temporal_fc_backward", "temporal_fc_forward"],
        "Q5": ["finetune", "freeze", "train_model", "visualize_model"],
    }
    reports = {c.grade_id for c in SEED.cells.values() if c.part == "report" and c.graded == "manual" and c.points > 0}
    assert reports == {"q2-report", "q3-report", "q4-report", "q5-report"}
    assert SEED.cells["q1-conv-derivation"].points == 0 and "q1-pool-derivation" not in SEED.cells
    assert SEED.max_total == 100 and all(c.nbgrader_points == 0 for c in SEED.cells_of("Q6"))
    assert {"rnn_step_forward", "temporal_softmax_loss", "CaptioningRNN.sample", "adam"} <= set(SEED.given)


def test_the_extended_profile_adds_the_cs231n_tasks():
    extra = {f for t in EXTENDED.tasks for f in t.functions} - {f for t in SEED.tasks for f in t.functions}
    assert extra == {"rnn_step_forward", "rnn_step_backward", "rnn_forward", "rnn_backward", "word_embedding_forward",
                     "word_embedding_backward", "temporal_softmax_loss", "CaptioningRNN.sample", "sgd_momentum",
                     "rmsprop", "adam"}
    assert EXTENDED.given == () and EXTENDED.max_total == 100


def test_notebooks_say_the_profiles_points():
    """A graded question's prompt states the points its answer cell has in the profile being shown."""
    import re

    import nbformat
    for registry in (SEED, EXTENDED):
        for path in registry.notebook_paths:
            nb = profile_cells(nbformat.read(path, as_version=4), registry)
            for i, cell in enumerate(nb.cells[:-1]):
                match = re.match(r"\*\*Question [\d.]+\*\* \((?:up to )?(\d+) points", cell.source)
                answer = nb.cells[i + 1].metadata.get("nbgrader", {})
                if match and answer.get("grade"):
                    listed = registry.cells[answer["grade_id"]].points
                    assert float(match.group(1)) == listed, (registry.profile, path.name, answer["grade_id"])


def _build(profile: str, out) -> subprocess.CompletedProcess:
    code = ("import sys; from pathlib import Path; from grading.release.build import build_release; "
            "build_release(course=Path(sys.argv[1]), out=Path(sys.argv[2]))")
    env = {**os.environ, PROFILE_ENV: profile, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, str(out / "course"), str(out / "release")], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_extended_release_builds_without_leaks_and_grades_a_complete_submission(tmp_path):
    res = _build("extended", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    folder = tmp_path / "release" / "hw4"
    rnn = (folder / "hwlib" / "rnn_layers.py").read_text()
    assert "rnn_step_forward is yours to write (Q4: 3 points" in rnn
    assert "adam is yours to write (Q2: 4 points" in (folder / "hwlib" / "optim.py").read_text()
    leaks = scan(tmp_path / "release", secret_list=secrets(registry=EXTENDED))
    assert not leaks, [(leak.path, leak.secret.kind, leak.secret.text[:60]) for leak in leaks[:10]]
    # The seed's secrets include nothing the extended release may ship, and back: no seed leak either.
    assert not scan(tmp_path / "release", secret_list=secrets(registry=SEED))

    # The reference, submitted: every autograded cell of the extended profile earns its points.
    submission = tmp_path / "submissions" / "complete" / "hw4"
    shutil.copytree(folder, submission)
    for path in student_modules(HWLIB):
        given = [f for t in EXTENDED.tasks for f in t.functions]
        (submission / path.relative_to(REPO)).write_text(strip_source(path.read_text(), str(path), {}, given))
    code = ("import sys, json; from pathlib import Path; from grading.autograde.job import Settings, autograde; "
            "r = autograde(Path(sys.argv[1]), Settings(course=Path(sys.argv[2]), workers=1, execute=False, "
            "nbgrader_feedback=False), log=lambda *a: None); "
            "print(json.dumps({g: (v.points if hasattr(v, 'points') else v['points']) for g, v in r[0].groups.items()}))")
    env = {**os.environ, PROFILE_ENV: "extended", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "submissions"), str(tmp_path / "course")],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    import json
    got = json.loads(res.stdout.strip().splitlines()[-1])
    expected = {gid: c.points for gid, c in EXTENDED.cells.items() if c.graded == "auto"}
    assert got == expected, {g: (got.get(g), p) for g, p in expected.items() if got.get(g) != p}


@pytest.mark.slow
def test_seed_release_ships_the_unassigned_code(tmp_path):
    res = _build("seed", tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    folder = tmp_path / "release" / "hw4"
    rnn = (folder / "hwlib" / "rnn_layers.py").read_text()
    assert "rnn_step_forward is yours" not in rnn and "temporal_fc_forward is yours to write (Q4: 6 points" in rnn
    assert "NotImplementedError" not in (folder / "hwlib" / "optim.py").read_text()

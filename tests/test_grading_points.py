"""The question registry (course/questions/*.toml) against the seed's weights, the notebooks' nbgrader
metadata, the solution regions of hwlib and the hidden checks."""

from __future__ import annotations

import pytest

from course.execute import source_notebooks
from course.registry import graded_cells, load, profiles
from grading.autograde import hidden

POINTS = load()
NOTEBOOKS = {nb.stem: nb for nb in source_notebooks()}
GROUPS = hidden.load()


def test_question_weights_are_the_seeds():
    weights = {name: q.points for name, q in POINTS.questions.items()}
    assert weights == {"Q1": 20, "Q2": 20, "Q3": 20, "Q4": 20, "Q5": 20, "Q6": 6}
    assert POINTS.questions["Q1"].parts == {"fc": 15, "relu": 5}
    assert [n for n, q in POINTS.questions.items() if q.extra_credit] == ["Q6"]
    assert POINTS.max_total == 100


PROFILES = {name: load(profile=name) for name in profiles()[0]}
ALL_GROUPS = [hidden.load(registry) for registry in PROFILES.values()]   # the hidden checks of every profile


@pytest.mark.parametrize("stem", sorted(NOTEBOOKS))
def test_notebook_metadata_matches_points_file(stem):
    """Every graded cell of the notebook is in the registry of some profile, its nbgrader points those
    of the first profile listing it (the default first); every cell of every profile is in a notebook."""
    found = graded_cells(NOTEBOOKS[stem])
    order = sorted(PROFILES, key=lambda name: name != profiles()[1])
    listed = {}
    for name in order:
        for gid, c in PROFILES[name].cells.items():
            if c.notebook == stem:
                listed.setdefault(gid, (c.nbgrader_points, c.graded))
    problems = [f"{gid}: notebook says {found[gid]}, the registry says {listed.get(gid, 'nothing')}"
                for gid in found if found[gid] != listed.get(gid)]
    problems += [f"{gid}: in the registry {listed[gid]} but not a graded cell of {stem}.ipynb"
                 for gid in listed if gid not in found]
    assert not problems, f"{stem}.ipynb and course/questions/*.toml disagree:\n  " + "\n  ".join(problems)


def test_points_file_names_existing_notebooks_only():
    """A cell's notebook exists (or is one the kit still lacks: then none of its cells are listed yet)."""
    for cell in POINTS.cells.values():
        assert cell.notebook[:2].isdigit(), f"{cell.grade_id}: notebook {cell.notebook!r} is not an NN_name stem"


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("question", sorted(POINTS.questions))
def test_question_cells_add_up(question, profile):
    registry = PROFILES[profile]
    q = registry.questions[question]
    cells = registry.cells_of(question)
    assert sum(c.points for c in cells) == q.points, \
        f"{profile}/{question}: cells {[(c.grade_id, c.points) for c in cells]} add up to {sum(c.points for c in cells)}, not {q.points}"
    for part, points in q.parts.items():
        assert sum(c.points for c in cells if c.part == part) == points, f"{profile}/{question} part {part}"


def test_every_autograded_cell_has_hidden_checks_worth_its_points():
    auto = {gid: c for gid, c in POINTS.cells.items() if c.graded == "auto" and c.notebook in NOTEBOOKS}
    missing = sorted(set(auto) - set(GROUPS))
    assert not missing, f"autograded cells without hidden checks in course/questions/*.toml: {missing}"
    for gid, group in GROUPS.items():
        assert gid in POINTS.cells and POINTS.cells[gid].graded == "auto", f"hidden group {gid} is no autograded cell"
        assert group.points == POINTS.cells[gid].points, \
            f"{gid}: hidden cases add up to {group.points}, the cell is worth {POINTS.cells[gid].points}"


def test_hidden_cases_differ_from_the_public_ones():
    from hwlib.check import TARGETS
    for gid, group in ((gid, g) for groups in ALL_GROUPS for gid, g in groups.items()):
        for case in group.cases:
            public = TARGETS[case.target].cases
            assert case.draw not in public, f"{gid}/{case.id}: the draw is one of the public checks'"
            assert case.seed != 0, f"{gid}/{case.id}: seed 0 is the public checks' seed"


def _outputs_in_process(group, inputs_of) -> dict:
    """What the sandbox runner writes for ``group`` (no sandbox, no oracle), read back as the grader does."""
    from hwlib import check
    from grading.autograde import protocol
    return {case.id: protocol.flatten(check.run(case.target, inputs_of[(group.grade_id, case.id)]))
            for case in group.cases}


@pytest.mark.parametrize("gid", sorted(GROUPS))
def test_reference_passes_its_hidden_cases(gid):
    """The kit's own hwlib, run in-process through the check table, gets every point (the cases are
    sound: no tie, no ill-conditioned input, thresholds the reference meets)."""
    group = GROUPS[gid]
    inputs_of = hidden.draw_inputs([group])
    res = hidden.evaluate(group, inputs_of, _outputs_in_process(group, inputs_of), {})
    failed = [(c.id, c.message) for c in res.cases if not c.passed]
    assert not failed, failed
    assert res.points == group.points


def test_a_wrong_output_loses_exactly_its_case():
    """evaluate() is not a rubber stamp: one corrupted output fails that case and no other."""
    gid = next(g for g, grp in GROUPS.items() if grp.targets == ("fc",))
    group = GROUPS[gid]
    inputs_of = hidden.draw_inputs([group])
    outputs = _outputs_in_process(group, inputs_of)
    first = group.cases[0]
    outputs[first.id]["db"] = outputs[first.id]["db"] * 1.01
    res = hidden.evaluate(group, inputs_of, outputs, {"nonexistent": {"type": "X", "message": ""}})
    assert [c.id for c in res.cases if not c.passed] == [first.id]
    assert "db" in res.cases[0].message and "relative error" in res.cases[0].message
    assert res.points == group.points - first.points


def test_an_input_changed_in_place_loses_exactly_its_case():
    """The record of what the student's calls left of their inputs is judged here, against the inputs
    drawn here: one changed input fails its case, and so does a record gone missing."""
    gid = next(g for g, grp in GROUPS.items() if grp.targets == ("fc",))
    group = GROUPS[gid]
    inputs_of = hidden.draw_inputs([group])
    outputs = _outputs_in_process(group, inputs_of)
    first, second = group.cases[:2]
    outputs[first.id]["_inputs/fc_backward/dout"][0, 1] = 0.0
    del outputs[second.id]["_inputs/fc_forward/w"]
    res = hidden.evaluate(group, inputs_of, outputs, {})
    assert [c.id for c in res.cases if not c.passed] == [first.id, second.id]
    assert "fc_backward changed its input dout in place at (0, 1)" in res.cases[0].message
    assert "the record of w after fc_forward is missing" in res.cases[1].message


def test_every_layer_is_also_graded_on_other_memory_layouts():
    """Each layer target has hidden cases with Fortran-ordered or strided inputs, and (where it has
    more than one case) a case with ordinary C-ordered inputs too."""
    from hwlib.check import TARGETS
    layers = {t.name for t in TARGETS.values() if t.watch and not t.seeded}
    cases = [c for groups in ALL_GROUPS for g in groups.values() for c in g.cases if c.target in layers]
    for name in layers:
        own = [c.draw.get("layout", "C") for c in cases if c.target == name]
        assert set(own) - {"C"}, f"{name}: no hidden case with another memory layout"
        assert len(own) == 1 or "C" in own, f"{name}: no hidden case with C-ordered inputs"

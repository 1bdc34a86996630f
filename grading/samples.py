"""Sample submissions, generated from the reference and the release (never hand-maintained copies).

Each :class:`Sample` is a student folder (the release, with answers and code filled in from the
reference, then changed on purpose) and what grading it must give: the hidden cases it must fail
(``loses``: grade_id -> "all" or case ids); every other autograded point must be awarded. A bug
names the question it belongs to, so the expectation follows the hidden cases that exist: a sample
for a question whose checks are not written yet simply keeps its points.

``python -m grading samples DIR [--zip]`` writes them (folders ``DIR/<student>/hw4/`` or zips
``DIR/<student>_hw4.zip``); tests/test_grading_autograde.py grades them and asserts every score.
"""

from __future__ import annotations

import ast
import json
import shutil
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course.paths import RELEASE, REPO
from course.registry import load as load_registry

from .nbgrader.course_root import ASSIGNMENT
from .release.strip import BEGIN, END, solution_regions, student_modules
from .sample_code import (BUGS, CONV_BY_HELPER, CONV_BY_REFERENCE, FINETUNE_VARIANTS, FORGED, FORMULA_CONV,
                          FREEZE_VARIANTS, HELPER_MODULE, HOG, HOSTILE_CHEAT, HOSTILE_TARGETS, LOOP_BODIES,
                          TORCH_CONV, TORCH_HELPER, forged_checks, hostile_prelude, trusted_side_attack)

__all__ = ["Sample", "samples", "write_samples", "expected_points", "HOSTILE_TARGETS"]


@dataclass
class Sample:
    student: str
    description: str
    files: dict                                  # path relative to the assignment folder -> bytes
    loses: dict = field(default_factory=dict)    # grade_id -> "all" | tuple of case ids
    answered: bool = True                        # derivations filled in (graded by hand later)
    missing_notebooks: tuple = ()                # notebooks not in the submission (or unreadable)
    hostile: bool = False                        # its code attacks the grader: run only with full isolation
    needs_full: bool = False                     # its expected score holds only where the sandbox hides PyTorch
    needs: tuple = ()                            # functions it gets wrong: it exists where one is assigned


def expected_points(sample: Sample, groups: dict) -> dict[str, float]:
    """Points each autograded cell must get: full marks except the cases the sample must fail."""
    expected = {}
    for gid, group in groups.items():
        lost = sample.loses.get(gid, ())
        expected[gid] = 0.0 if lost == "all" else sum(c.points for c in group.cases if c.id not in lost)
    return expected


# --- building blocks ---------------------------------------------------------------------------

def _read_tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def unmark(source: str) -> str:
    """The reference with its solution markers removed (what a student's finished file looks like)."""
    return "".join(line for line in source.splitlines(keepends=True) if line.strip() not in (BEGIN, END))


def replace_region(source: str, function: str, body: str, index: int = 0) -> str:
    """Replace the ``index``-th solution region inside ``function`` (``name`` or ``Class.method``) by ``body``."""
    tree = ast.parse(source)
    target = None
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and "." in function and node.name == function.split(".")[0]:
            target = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == function.split(".")[1]), None)
        elif isinstance(node, ast.FunctionDef) and node.name == function and "." not in function:
            target = target or node
    if target is None:
        raise ValueError(f"no function {function} in the reference")
    regions = [r for r in solution_regions(source) if target.lineno <= r.begin <= target.end_lineno]
    region = regions[index]
    lines = source.splitlines(keepends=True)
    new = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", region.indent)
    return "".join(lines[: region.begin]) + new + "".join(lines[region.end - 1:])


def _answered_notebooks(files: dict) -> dict:
    """Release notebooks with the derivation cells answered from the source notebooks."""
    out = dict(files)
    for source in load_registry().notebook_paths:
        name = source.name
        if name not in files:
            continue
        answers = {}
        for cell in nbformat.read(source, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                answers[meta["grade_id"]] = "\n".join(line for line in cell.source.splitlines()
                                                      if line.strip() not in (BEGIN, END))
        nb = nbformat.reads(files[name].decode(), as_version=4)
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in answers and cell.metadata["nbgrader"].get("solution"):
                cell.source = answers[gid]
        out[name] = nbformat.writes(nb).encode()
    return out


def _edit_notebook(files: dict, name: str, edit) -> dict:
    out = dict(files)
    nb = nbformat.reads(files[name].decode(), as_version=4)
    edit(nb)
    out[name] = nbformat.writes(nb).encode()
    return out


def _module(name: str) -> str:
    return (REPO / "hwlib" / name).read_text()


# --- the samples -------------------------------------------------------------------------------

def samples(release: Path = RELEASE / ASSIGNMENT) -> list[Sample]:
    if not release.is_dir():
        raise FileNotFoundError(f"{release} is missing: run `make release` first")
    blank = _read_tree(release)
    answered = _answered_notebooks(blank)
    layers = unmark(_module("layers.py"))
    reference_modules = {f"hwlib/{path.relative_to(REPO / 'hwlib').as_posix()}": unmark(path.read_text()).encode()
                         for path in student_modules(REPO / "hwlib")}
    perfect = {**answered, **reference_modules}

    def with_layers(text: str, base: dict = perfect) -> dict:
        return {**base, "hwlib/layers.py": text.encode()}

    def module_with(name: str, bodies: dict) -> str:
        text = _module(name)
        for func, body in bodies.items():
            text = replace_region(text, func, body)
        return unmark(text)

    def bug(key: str, base: dict = perfect) -> dict:
        """The perfect submission with bug ``key`` of :data:`BUGS`."""
        name, bodies = BUGS[key]
        return {**base, f"hwlib/{name}": module_with(name, bodies).encode()}

    def layers_with(bodies: dict) -> str:
        return module_with("layers.py", bodies)

    def attack(kind: str) -> dict:
        return with_layers(_insert_after_imports(layers, trusted_side_attack(kind, REPO)))

    def bug_bodies(name: str, bodies: dict) -> dict:
        return {**perfect, f"hwlib/{name}": module_with(name, bodies).encode()}

    out = [
        Sample("perfect", "the reference solution, derivations answered", perfect),
        Sample("release", "the untouched release (nothing done)", blank, loses={g: "all" for g in _auto_cells()},
               answered=False),
        Sample("bug-fc-db", "fc_backward: db not summed over the batch (db = dout)", bug("fc_db"),
               loses={"q1-fc-test": "all"}),
        Sample("bug-conv-dw", "conv_backward: dw from the first sample only (not summed over the batch)",
               bug("conv_dw"), loses=_cases_with_target("conv", "ConvNet.loss")),
        Sample("bug-softmax-shift", "softmax_loss without the max shift: overflows on 1e4-scale scores",
               bug("softmax_shift"), loses=_question_cases("softmax", large_scale_only=True)),
        Sample("bug-temporal-fc-db", "temporal_fc_backward: db not summed over time (last step only)",
               bug("temporal_fc_db"),
               loses=_cases_with_target("temporal_fc", "CaptioningRNN.loss")),
        Sample("bug-caption-mask", "temporal_softmax_loss ignores the mask (the <NULL> padding counts)",
               bug("caption_mask"), needs=("temporal_softmax_loss",),
               loses=_cases_with_target("temporal_softmax", "CaptioningRNN.loss")),
        Sample("bug-freeze", "freeze optimises every parameter (SGD over model.parameters(), not the new "
                             "head's only)", bug("freeze_all_params"), loses=_cases_with_target("freeze")),
        Sample("bug-train-model-grads", "train_model never zeroes the gradients (they pile up batch after batch)",
               bug("train_model_grads"), loses=_cases_with_target("train_model")),
        Sample("hang", "relu_forward loops forever", bug("hang"), loses={"q1-relu-test": "all"}),
        Sample("crash", "fc_backward kills its process (os._exit)", bug("crash"), loses={"q1-fc-test": "all"}),
        Sample("deleted-tests", "test cells deleted from the notebook (code correct)",
               _edit_notebook(perfect, "01_layers.ipynb", lambda nb: nb.cells.__setitem__(slice(None), [
                   c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("-test")]))),
        Sample("edited-tests", "fc test cell edited to pass, and a bug in fc_backward (db not summed)",
               _edit_notebook(bug("fc_db"), "01_layers.ipynb",
                              _edit_test_cell("q1-fc-test", 'print("fc: public checks pass")')),
               loses={"q1-fc-test": "all"}),
        Sample("forged-checks", "Q5 not done, and the given module hwlib/check/transfer_observe.py edited so that "
                                "its observers report a perfect freeze and finetune",
               {**perfect, "hwlib/transfer.py": blank["hwlib/transfer.py"], FORGED: forged_checks()},
               loses=_cases_with_target("freeze", "finetune", "train_model", "visualize_model")),
        Sample("invalid-json", "01_layers.ipynb is not valid JSON (code correct)",
               {**perfect, "01_layers.ipynb": perfect["01_layers.ipynb"][: len(perfect["01_layers.ipynb"]) // 2]},
               missing_notebooks=("01_layers",)),
        Sample("missing-files", "hwlib/layers.py and 06_conv_backward_proof.ipynb not submitted",
               {k: v for k, v in perfect.items() if k not in ("hwlib/layers.py", "06_conv_backward_proof.ipynb")},
               loses={g: "all" for g in _groups_using_layers()}, missing_notebooks=("06_conv_backward_proof",)),
        Sample("hostile", "tries to read the hidden checks and the reference, write outside its folder, "
                          "open sockets, signal init, take 64 GB, become root (its code is otherwise correct)",
               with_layers(_insert_after_imports(layers, hostile_prelude(REPO)) + HOSTILE_CHEAT), hostile=True),
        Sample("bug-relu-inplace", "relu_forward clamps the caller's x in place (x[x < 0] = 0; return x, x)",
               bug("relu_inplace"), loses={"q1-relu-test": "all"}),
        Sample("bug-conv-dout", "conv_backward returns the right dx and dw, then zeroes the caller's dout",
               bug("conv_dout"), loses=_cases_where(lambda c: c.target == "conv")),
        Sample("bug-conv-c-order", "conv_forward by as_strided with strides computed from the shape: right "
                                   "for C-ordered inputs only", bug("conv_c_order"),
               loses=_cases_where(lambda c: c.target == "conv" and c.draw.get("layout", "C") != "C")),
        Sample("bug-pool-float64", "max_pool_forward returns float64 for float32 inputs (np.zeros without dtype): "
                                   "right values; a note where the profile's strict_dtypes is off (the seed's), "
                                   "the float32 cases lost where it is on",
               bug("pool_float64"), loses=_dtype_loses(lambda c: c.target in ("pool", "ConvNet.loss")
                                                       and c.dtype == "float32")),
        Sample("variant-loops", "the naive loops of bench/naive.py for fc, ReLU, softmax and convolution "
                                "(ReLU's and softmax's float64 results cast back to the input's dtype)",
               with_layers(layers_with(LOOP_BODIES))),
        Sample("variant-formula-conv", "convolution by the Q6 formulas of the given hwlib/conv_formulas.py",
               with_layers(layers_with(FORMULA_CONV))),
        Sample("policy-torch-conv", "conv_forward and conv_backward by torch.nn.functional: right values, "
                                    "but Q3 is NumPy only (not installed where Q3 runs)",
               with_layers(layers_with(TORCH_CONV)), loses=_cases_with_target("conv", "ConvNet.loss"), needs_full=True),
        Sample("policy-torch-helper", "the convolution by torch.nn.functional in a helper module of its own "
                                      "(hwlib/fastconv.py) that layers.py imports",
               {**with_layers(layers_with(CONV_BY_HELPER)), HELPER_MODULE: TORCH_HELPER.encode()},
               loses=_cases_with_target("conv", "ConvNet.loss"), hostile=True),
        Sample("policy-reference", "the convolution by the kit's own references: the grader's oracle module, "
                                   "else the public checks' PyTorch reference", with_layers(layers_with(CONV_BY_REFERENCE)),
               loses=_cases_with_target("conv", "ConvNet.loss"), hostile=True),
        Sample("hostile-symlink", "replaces its result files by links to a host file, and plants links where the "
                                  "grader once wrote its notebooks", attack("symlink"), loses=_layers_processes(),
               hostile=True),
        Sample("hostile-fifo", "replaces its result files by named pipes (an open() of one never returns)",
               attack("fifo"), loses=_layers_processes(), hostile=True),
        Sample("hostile-bomb", "replaces its result files by decompression bombs (300 MiB of zeros in 300 kB)",
               attack("bomb"), loses=_layers_processes(), hostile=True),
        Sample("hostile-hog", "relu_forward starts 60 processes that spin forever, and spins itself",
               bug_bodies("layers.py", HOG), loses={"q1-relu-test": "all"}, hostile=True),
        # Notebook cells nbgrader's autograde failed on (KeyError, MissingEntry: every notebook of the
        # submission lost to formgrader): restored before nbgrader runs, the metadata edits flagged
        # (grading/autograde/metadata.py). Full marks: nothing of it may change a score.
        Sample("meta-points", "nbgrader points edited in 01_layers.ipynb: the fc test cell's 10 set to 500, the "
                              "ungraded fc question cell made a graded 100-point cell (code correct)",
               _edit_notebook(perfect, "01_layers.ipynb", _edit_metadata({
                   "q1-fc-test": {"points": 500}, "q1-fc-question": {"grade": True, "points": 100}}))),
        Sample("meta-graded-cell", "a 500-point graded cell of its own added to 01_layers.ipynb (grade id "
                                   "'bonus'; code correct)",
               _edit_notebook(perfect, "01_layers.ipynb", _add_graded_cell("bonus", 500, after="q1-fc-test"))),
        Sample("meta-duplicate-id", "the fc test cell copied in 01_layers.ipynb, the copy edited to pass (a "
                                    "second cell with grade id q1-fc-test; code correct)",
               _edit_notebook(perfect, "01_layers.ipynb", _copy_cell("q1-fc-test", 'print("fc: public checks pass")'))),
        Sample("deleted-answer", "the ReLU derivation cell deleted from 01_layers.ipynb (code correct); nbgrader "
                                 "failed to add it back after the locked question cell before it",
               _edit_notebook(perfect, "01_layers.ipynb", lambda nb: nb.cells.__setitem__(slice(None), [
                   c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "q1-relu-derivation"]))),
        # Q5 by ResNet-18's parameter names (the checks run freeze and finetune on it as well as on a small
        # stand-in network; grading/sample_code.py holds the variants).
        Sample("bug-freeze-layer4", "freeze by parameter name leaves ResNet-18's layer4.* trainable (and optimised): "
                                    "right on a network without a layer4, a partial freeze on ResNet-18",
               bug("freeze_layer4"), loses=_cases_with_target("freeze")),
        Sample("variant-transfer-names", "freeze by named_parameters (the head's parameters picked by name for the "
                                         "optimiser), finetune by children()",
               bug_bodies("transfer.py", {"freeze": FREEZE_VARIANTS["named_parameters"],
                                          "finetune": FINETUNE_VARIANTS["children"]})),
    ]
    # A bug in code the course's profile gives (the seed's temporal_softmax_loss) is no student's bug.
    given = set(load_registry().given)
    return [sample for sample in out if not (sample.needs and set(sample.needs) <= given)]


def _policy_loses(question: str, task: str) -> dict:
    """What breaking the code policy of ``task`` costs, as the course sets it: its cell ("zero"), or
    nothing ("flag": the points stay, the feedback flags it)."""
    from .autograde.policy import load
    rule = next(r for r in load() if r.question == question and r.task == task)
    return {rule.cell: "all"} if rule.consequence == "zero" else {}


def _edit_test_cell(grade_id: str, source: str):
    def edit(nb):
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                cell.source = source
    return edit


def _edit_metadata(changes: dict):
    """Set keys of the nbgrader metadata of cells: ``{grade_id: {key: value}}``."""
    def edit(nb):
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in changes:
                cell.metadata["nbgrader"].update(changes[gid])
    return edit


def _add_graded_cell(grade_id: str, points: float, after: str):
    """A graded code cell of the student's own (a grade id the assignment does not define), after ``after``."""
    def edit(nb):
        index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
        cell = nbformat.v4.new_code_cell('print("bonus question: done")', id=f"{grade_id}-cell")
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": False, "points": points,
                                     "schema_version": 3, "solution": False}
        nb.cells.insert(index + 1, cell)
    return edit


def _copy_cell(grade_id: str, source: str):
    """A copy of the cell ``grade_id`` (nbgrader metadata and all, a cell id of its own) with ``source``,
    after it, as a copy and paste in JupyterLab makes it."""
    def edit(nb):
        index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
        cell = nbformat.from_dict(json.loads(json.dumps(nb.cells[index])))
        cell["id"], cell.source = f"{nb.cells[index].get('id', 'cell')}-copy", source
        nb.cells.insert(index + 1, cell)
    return edit


def _insert_after_imports(source: str, code: str) -> str:
    marker = "__all__ = ["
    index = source.index(marker)
    return source[:index] + code + "\n\n" + source[index:]


def _groups():
    from .autograde.hidden import load
    return load()


def _auto_cells() -> list[str]:
    return list(_groups())


def _question_cases(target: str, large_scale_only: bool = False) -> dict:
    """The hidden cases of ``target`` (those with scores of scale >= 1e3 when asked)."""
    lost = {}
    for gid, group in _groups().items():
        cases = tuple(c.id for c in group.cases if c.target == target
                      and (not large_scale_only or c.draw.get("scale", 1.0) >= 1e3))
        if cases:
            lost[gid] = cases
    return lost


def _layers_processes() -> dict:
    """Every group of a sandboxed process that imports the student's layers.py (hidden.batches: a
    batch whose groups need it, or whose oracle installs into it): what an attack run on import of
    layers.py, lasting for its process, costs."""
    from .autograde import policy
    from .autograde.hidden import batches
    needs = set(_groups_using_layers())
    lost = {}
    for families, _, members in batches(list(_groups().values()), policy.load(load_registry())):
        if families or any(g.grade_id in needs for g in members):
            lost.update({g.grade_id: "all" for g in members})
    return lost


def _groups_using_layers() -> list[str]:
    """Groups whose code needs the student's hwlib/layers.py: its layers, the classifiers (which import
    softmax_loss and the convolution layers from it) and the captioning model (which imports fc from
    it), unless the group's oracle replaces fc by a PyTorch version."""
    from hwlib.check import TARGETS

    def needs_layers(group, target):
        module = TARGETS[target].module
        return module in ("hwlib.layers", "hwlib.classifiers") or (module == "hwlib.captioning" and "fc" not in group.oracle)

    return [gid for gid, g in _groups().items() if any(needs_layers(g, t) for t in g.targets)]


def _cases_with_target(*targets: str) -> dict:
    """The cases (of any group) that run one of ``targets``."""
    return _cases_where(lambda c: c.target in targets)


def _dtype_loses(condition) -> dict:
    """The cases of ``condition`` where the course's profile deducts a dtype change (``strict_dtypes``
    in course/course.toml), none where it does not (the case is judged on its values, with a note)."""
    return _cases_where(condition) if load_registry().strict_dtypes else {}


def _cases_where(condition) -> dict:
    """The cases (of any group) for which ``condition(case)`` holds, by grade_id."""
    out = {}
    for gid, g in _groups().items():
        cases = tuple(c.id for c in g.cases if condition(c))
        if cases:
            out[gid] = cases
    return out


def write_samples(dest: Path, as_zip: bool = False, release: Path = RELEASE / ASSIGNMENT,
                  only=None, hostile: bool = True) -> list[Sample]:
    """Write the samples (``only``: those students; ``hostile=False``: none whose code attacks the
    grader or whose score needs the full sandbox, for a machine without full isolation) to ``dest``;
    return them."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    every = samples(release)
    made = [s for s in every if (only is None or s.student in only) and (hostile or not (s.hostile or s.needs_full))]
    for left_out in {s.student for s in every} - {s.student for s in made}:   # from an earlier run: gone
        shutil.rmtree(dest / left_out, ignore_errors=True)
        (dest / f"{left_out}_{ASSIGNMENT}.zip").unlink(missing_ok=True)
    for sample in made:
        if as_zip:
            with zipfile.ZipFile(dest / f"{sample.student}_{ASSIGNMENT}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
                for rel, data in sorted(sample.files.items()):
                    zf.writestr(f"{ASSIGNMENT}/{rel}", data)
        else:
            root = dest / sample.student / ASSIGNMENT
            for rel, data in sample.files.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
    (dest / "samples.json").write_text(json.dumps(
        {s.student: {"description": s.description, "loses": s.loses} for s in made}, indent=1))
    return made

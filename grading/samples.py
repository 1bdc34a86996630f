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
import textwrap
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from course.paths import RELEASE, REPO
from course.registry import load as load_registry

from .nbgrader.course_root import ASSIGNMENT
from .release.strip import BEGIN, END, solution_regions, student_modules

__all__ = ["Sample", "samples", "write_samples", "expected_points", "HOSTILE_TARGETS"]


@dataclass
class Sample:
    student: str
    description: str
    files: dict                                  # path relative to the assignment folder -> bytes
    loses: dict = field(default_factory=dict)    # grade_id -> "all" | tuple of case ids
    answered: bool = True                        # derivations filled in (graded by hand later)
    missing_notebooks: tuple = ()                # notebooks not in the submission (or unreadable)
    hostile: bool = False


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


# --- variants that must get full marks ---------------------------------------------------------

NAIVE = REPO / "bench" / "naive.py"   # the naive loop layers, kept once (bench times them)
# What each solution region does with the naive layer defined in front of it. bench/naive.py's ReLU and
# softmax loops compute in float64 whatever the input (np.zeros allocates float64): the sample casts their
# results back to the input's dtype, as the checks require (float32 in gives float32 out).
NAIVE_CALLS = {
    "fc_forward": "out, _ = naive_fc_forward(x, w, b)",
    "fc_backward": "dx, dw, db = naive_fc_backward(dout, cache)",
    "relu_forward": "out, _ = naive_relu_forward(x)\nout = out.astype(x.dtype)",
    "relu_backward": "dx = naive_relu_backward(dout, cache).astype(dout.dtype)",
    "softmax_loss": "loss, dx = naive_softmax_loss(x, y)\ndx = dx.astype(x.dtype)",
    "conv_forward": "out, cache = naive_conv_forward(x, w)",
    "conv_backward": "dx, dw = naive_conv_backward(dout, cache)",
}


def naive_body(function: str, call: str | None = None) -> str:
    """A solution region holding bench/naive.py's loop version of ``function`` and the call of it.

    The source is read as text (importing ``bench`` would pin the thread counts of this process)
    and defined in place as ``naive_<function>``: a submission has no ``bench/`` to import from.
    """
    source = NAIVE.read_text()
    node = next((n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if node is None:
        raise ValueError(f"{NAIVE.relative_to(REPO)} has no function {function}")
    definition = ast.get_source_segment(source, node).replace(f"def {function}(", f"def naive_{function}(", 1)
    return definition + "\n" + (call or NAIVE_CALLS[function]) + "\n"


def _changed(body: str, old: str, new: str) -> str:
    """``body`` with ``old`` replaced by ``new``; raises if ``old`` is not there (the bug would silently vanish)."""
    if old not in body:
        raise ValueError(f"cannot plant a bug: {old!r} is not in\n{body}")
    return body.replace(old, new)


LOOP_BODIES = {function: naive_body(function) for function in NAIVE_CALLS}

# The convolution by the Q6 formulas of the given module hwlib/conv_formulas.py (a student may call them).
FORMULA_CONV = {
    "conv_forward": """
        from .conv_formulas import conv_by_definition
        out, cache = conv_by_definition(x, w), (x, w)
    """,
    "conv_backward": """
        from .conv_formulas import dk_by_formula, dx_by_formula
        x, w = cache
        dx, dw = dx_by_formula(dout, w), dk_by_formula(x, dout)
    """,
}

# Bugs, each the body of one solution region (our own code: the samples do not depend on how the
# reference is written, only on the function signatures and the given code around the regions).
BUGS = {
    "fc_db": ("layers.py", {"fc_backward": LOOP_BODIES["fc_backward"] + "db = dout  # BUG: not summed over the batch\n"}),
    "conv_dw": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"], "conv_backward": _changed(
        LOOP_BODIES["conv_backward"], "dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]",
        "dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW] if n == 0 else 0  # BUG: first sample only")}),
    "softmax_shift": ("layers.py", {"softmax_loss": """
        N = x.shape[0]
        probs = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)  # BUG: no max shift (overflows)
        loss = float(-np.log(probs[np.arange(N), y]).mean())
        dx = probs.copy()
        dx[np.arange(N), y] -= 1
        dx /= N
    """}),
    "hang": ("layers.py", {"relu_forward": """
        while True:  # BUG: never returns
            pass
    """}),
    "crash": ("layers.py", {"fc_backward": """
        import os
        os._exit(3)  # BUG: kills its own process
    """}),
    "temporal_fc_db": ("rnn_layers.py", {"temporal_fc_backward": """
        dx = dout @ w.T
        dw = x.reshape(N * T, D).T @ dout.reshape(N * T, M)
        db = dout[:, -1].sum(axis=0)  # BUG: the last time step only, not summed over time
    """}),
    "caption_mask": ("rnn_layers.py", {"temporal_softmax_loss": """
        shifted = x - x.max(axis=2, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        picked = np.take_along_axis(log_probs, y[..., None], axis=2)[..., 0]
        loss = float(-picked.sum() / N)  # BUG: the mask is ignored: <NULL> targets count
        dx = np.exp(log_probs)
        np.put_along_axis(dx, y[..., None], np.take_along_axis(dx, y[..., None], axis=2) - 1, axis=2)
        dx /= N
    """}),
    "freeze_backbone": ("transfer.py", {"freeze": """
        num_ftrs = old_head.in_features  # BUG: the backbone is never frozen
        _set_head(model, head, nn.Linear(num_ftrs, num_classes).to(old_head.weight.device))
    """}),
    # Right values, but the caller's arrays are destroyed, or only C-ordered inputs work, or the dtype
    # is lost: the checks look beyond the returned values (hwlib/check/watch.py).
    "relu_inplace": ("layers.py", {"relu_forward": """
        x[x < 0] = 0  # BUG: clamps the caller's array in place
        return x, x
    """}),
    "conv_dout": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"],
                                "conv_backward": LOOP_BODIES["conv_backward"] + "dout[...] = 0  # BUG: zeroes the caller's dout\n"}),
    "conv_c_order": ("layers.py", {"conv_forward": """
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        s = x.itemsize  # BUG: strides computed from the shape (right for a C-ordered x only; x.strides is right)
        windows = np.lib.stride_tricks.as_strided(x, shape=(N, C, H - HH + 1, W - WW + 1, HH, WW),
                                                  strides=(C * H * W * s, H * W * s, W * s, s, W * s, s))
        out = np.einsum("nchwij,fcij->nfhw", windows, w)
        cache = (x, w)
    """, "conv_backward": LOOP_BODIES["conv_backward"]}),
    "pool_float64": ("layers.py", {
        "max_pool_forward": _changed(
            naive_body("max_pool_forward", "out, cache = naive_max_pool_forward(x, pool_param)"),
            "out = np.empty((N, C, Ho, Wo), dtype=x.dtype)", "out = np.zeros((N, C, Ho, Wo))  # BUG: float64 always"),
        "max_pool_backward": naive_body("max_pool_backward", "dx = naive_max_pool_backward(dout, cache)")}),
}

HOSTILE_TARGETS = ("course/questions/q1_layers.toml", "grading/autograde/hidden.py", "hwlib/layers.py",
                   "build/course/gradebook.db")


def _hostile_prelude(repo: Path) -> str:
    """Code run on import of the hostile layers.py: it tries to get out; if anything works, it cheats.

    Every attempt is harmless where it succeeds by mistake (a signal 0 to init only tests permission).
    """
    reads = [str(repo / t) for t in HOSTILE_TARGETS] + ["../../perfect/submission/hwlib/layers.py", "/etc/shadow"]
    writes = [str(repo / "HOSTILE_WAS_HERE"), str(repo / "build" / "course" / "HOSTILE_WAS_HERE"),
              "../../HOSTILE_WAS_HERE", "../../perfect/submission/hwlib/layers.py"]
    return textwrap.dedent(f'''
        # --- a hostile submission: each attempt below must fail in the grading sandbox -----------
        import os as _os, signal as _signal, socket as _socket
        _BREACHED = []

        def _attempt(what, action, breach=True):
            try:
                action()
                if breach:
                    _BREACHED.append(what)
                print("HOSTILE: succeeded:", what)
            except BaseException as exc:  # noqa: BLE001
                print("HOSTILE: blocked:", what, type(exc).__name__)

        for _path in {reads!r}:
            _attempt("read " + _path, lambda p=_path: print(open(p, "rb").read(200)))
        for _path in {writes!r}:
            _attempt("write " + _path, lambda p=_path: open(p, "w").write("pwned"))
        _attempt("write /tmp (private to the sandbox)", lambda: open("/tmp/HOSTILE_WAS_HERE", "w").write("x"), breach=False)
        _attempt("connect 1.1.1.1:53", lambda: _socket.create_connection(("1.1.1.1", 53), timeout=2))
        _attempt("connect 10.0.0.1:80", lambda: _socket.create_connection(("10.0.0.1", 80), timeout=2))
        _attempt("signal init (permission probe)", lambda: _os.kill(1, 0))
        _attempt("allocate 64 GB", lambda: bytearray(64 << 30))
        _attempt("become root", lambda: _os.setuid(0))
        # -------------------------------------------------------------------------------------------
    ''')


HOSTILE_CHEAT = """

if _BREACHED:  # something got out: the hostile code now tries to cheat, which would show in its score
    def fc_forward(x, w, b):
        return None, None
"""


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
               bug("caption_mask"),
               loses=_cases_with_target("temporal_softmax", "CaptioningRNN.loss")),
        Sample("bug-freeze", "freeze leaves the backbone trainable", bug("freeze_backbone"),
               loses=_cases_with_target("freeze")),
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
               {**perfect, "hwlib/transfer.py": blank["hwlib/transfer.py"], FORGED: _forged_checks()},
               loses=_cases_with_target("freeze", "finetune", "train_model")),
        Sample("invalid-json", "01_layers.ipynb is not valid JSON (code correct)",
               {**perfect, "01_layers.ipynb": perfect["01_layers.ipynb"][: len(perfect["01_layers.ipynb"]) // 2]},
               missing_notebooks=("01_layers",)),
        Sample("missing-files", "hwlib/layers.py and 06_conv_backward_proof.ipynb not submitted",
               {k: v for k, v in perfect.items() if k not in ("hwlib/layers.py", "06_conv_backward_proof.ipynb")},
               loses={g: "all" for g in _groups_using_layers()}, missing_notebooks=("06_conv_backward_proof",)),
        Sample("hostile", "tries to read the hidden checks and the reference, write outside its folder, "
                          "open sockets, signal init, take 64 GB, become root (its code is otherwise correct)",
               with_layers(_insert_after_imports(layers, _hostile_prelude(REPO)) + HOSTILE_CHEAT), hostile=True),
        Sample("bug-relu-inplace", "relu_forward clamps the caller's x in place (x[x < 0] = 0; return x, x)",
               bug("relu_inplace"), loses={"q1-relu-test": "all"}),
        Sample("bug-conv-dout", "conv_backward returns the right dx and dw, then zeroes the caller's dout",
               bug("conv_dout"), loses=_cases_where(lambda c: c.target == "conv")),
        Sample("bug-conv-c-order", "conv_forward by as_strided with strides computed from the shape: right "
                                   "for C-ordered inputs only", bug("conv_c_order"),
               loses=_cases_where(lambda c: c.target == "conv" and c.draw.get("layout", "C") != "C")),
        Sample("bug-pool-float64", "max_pool_forward returns float64 for float32 inputs (np.zeros without dtype)",
               bug("pool_float64"), loses=_cases_where(lambda c: c.target in ("pool", "ConvNet.loss")
                                                       and c.dtype == "float32")),
        Sample("variant-loops", "the naive loops of bench/naive.py for fc, ReLU, softmax and convolution "
                                "(ReLU's and softmax's float64 results cast back to the input's dtype)",
               with_layers(layers_with(LOOP_BODIES))),
        Sample("variant-formula-conv", "convolution by the Q6 formulas of the given hwlib/conv_formulas.py",
               with_layers(layers_with(FORMULA_CONV))),
    ]
    return out


def _edit_test_cell(grade_id: str, source: str):
    def edit(nb):
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
                cell.source = source
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


def _groups_using_layers() -> list[str]:
    """Groups whose code needs the student's hwlib/layers.py: its layers, the classifiers (which import
    softmax_loss and the convolution layers from it) and the captioning model (which imports fc from
    it), unless the group's oracle replaces fc by a PyTorch version."""
    from hwlib.check import TARGETS

    def needs_layers(group, target):
        module = TARGETS[target].module
        return module in ("hwlib.layers", "hwlib.classifiers") or (module == "hwlib.captioning" and "fc" not in group.oracle)

    return [gid for gid, g in _groups().items() if any(needs_layers(g, t) for t in g.targets)]


FORGED = "hwlib/check/transfer_observe.py"   # the given module the forged-checks sample edits


def _forged_checks() -> bytes:
    """The kit's hwlib/check/transfer_observe.py with observers that report a perfect freeze / finetune
    without building anything. The sandbox runs the observers, so the grader must reset the given
    modules (those without solution regions) to the kit's version before it runs anything."""
    forged = '''

def observe_head(func, num_classes, seed):  # FORGED: reports what a correct implementation shows
    head = ["fc.weight", "fc.bias"]
    names = head if func == "freeze" else [f"layer{i}.weight" for i in range(60)] + head
    return {"returned_is_model": True, "returned_type": "ResNet", "head_type": "Linear", "head_is_linear": True,
            "head_is_new": True, "head_shape": [512, num_classes], "trainable": names, "changed": names,
            "output_shape": [2, num_classes], "num_parameters": 62}
'''
    return ((REPO / FORGED).read_text() + forged).encode()


def _cases_with_target(*targets: str) -> dict:
    """The cases (of any group) that run one of ``targets``."""
    return _cases_where(lambda c: c.target in targets)


def _cases_where(condition) -> dict:
    """The cases (of any group) for which ``condition(case)`` holds, by grade_id."""
    out = {}
    for gid, g in _groups().items():
        cases = tuple(c.id for c in g.cases if condition(c))
        if cases:
            out[gid] = cases
    return out


def write_samples(dest: Path, as_zip: bool = False, release: Path = RELEASE / ASSIGNMENT) -> list[Sample]:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    made = samples(release)
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

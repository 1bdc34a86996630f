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

LOOP_BODIES = {
    "fc_forward": """
        N = x.shape[0]
        x_rows = x.reshape(N, -1)
        out = np.zeros((N, w.shape[1]))
        for i in range(N):
            for j in range(w.shape[1]):
                out[i, j] = sum(x_rows[i, k] * w[k, j] for k in range(x_rows.shape[1])) + b[j]
    """,
    "fc_backward": """
        N = x.shape[0]
        x_rows = x.reshape(N, -1)
        dx_rows = np.zeros(x_rows.shape)
        dw = np.zeros(w.shape)
        db = np.zeros(b.shape)
        for i in range(N):
            dx_rows[i] = w @ dout[i]
            dw += np.outer(x_rows[i], dout[i])
            db += dout[i]
        dx = dx_rows.reshape(x.shape)
    """,
    "relu_forward": """
        out = np.zeros(x.shape)
        for index in np.ndindex(x.shape):
            out[index] = x[index] if x[index] > 0 else 0.0
    """,
    "relu_backward": """
        dx = np.zeros(x.shape)
        for index in np.ndindex(x.shape):
            dx[index] = dout[index] if x[index] >= 0 else 0.0
    """,
    "softmax_loss": """
        N = x.shape[0]
        loss, dx = 0.0, np.zeros(x.shape)
        for i in range(N):
            row = x[i] - np.max(x[i])
            log_norm = np.log(np.sum(np.exp(row)))
            loss -= (row[y[i]] - log_norm) / N
            dx[i] = np.exp(row - log_norm) / N
            dx[i, y[i]] -= 1.0 / N
    """,
    "conv_forward": """
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        out = np.zeros((N, F, H - HH + 1, W - WW + 1), dtype=np.result_type(x, w))
        for n in range(N):
            for f in range(F):
                for i in range(H - HH + 1):
                    for j in range(W - WW + 1):
                        out[n, f, i, j] = np.sum(x[n, :, i:i + HH, j:j + WW] * w[f])
        cache = (x, w)
    """,
    "conv_backward": """
        x, w = cache
        N, C, H, W = x.shape
        F, _, HH, WW = w.shape
        dx, dw = np.zeros(x.shape, dtype=x.dtype), np.zeros(w.shape, dtype=w.dtype)
        for n in range(N):
            for f in range(F):
                for i in range(H - HH + 1):
                    for j in range(W - WW + 1):
                        dx[n, :, i:i + HH, j:j + WW] += dout[n, f, i, j] * w[f]
                        dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]
    """,
}

SCIPY_CONV = {
    "conv_forward": """
        from scipy.signal import correlate
        N, C, H, W = x.shape
        F = w.shape[0]
        # Filtering is correlation: sum over channels of each channel's valid correlation.
        out = np.stack([np.stack([correlate(x[n], w[f], mode="valid")[0] for f in range(F)]) for n in range(N)])
        cache = (x, w)
    """,
    "conv_backward": """
        from scipy.signal import convolve, correlate
        x, w = cache
        N, C = x.shape[:2]
        F = w.shape[0]
        # dX[n, c] = sum_f dY[n, f] *full K[f, c];  dK[f, c] = sum_n X[n, c] *filt dY[n, f]
        dx = np.stack([np.stack([sum(convolve(dout[n, f], w[f, c], mode="full") for f in range(F))
                                 for c in range(C)]) for n in range(N)])
        dw = np.stack([np.stack([sum(correlate(x[n, c], dout[n, f], mode="valid") for n in range(N))
                                 for c in range(C)]) for f in range(F)])
    """,
}

# Bugs, each the body of one solution region (our own code: the samples do not depend on how the
# reference is written, only on the function signatures and the given code around the regions).
BUGS = {
    "fc_db": ("layers.py", {"fc_backward": LOOP_BODIES["fc_backward"].replace(
        "        dx = dx_rows.reshape(x.shape)", "        dx = dx_rows.reshape(x.shape)\n        db = dout  # BUG: not summed over the batch")}),
    "conv_dw": ("layers.py", {"conv_forward": LOOP_BODIES["conv_forward"], "conv_backward": LOOP_BODIES["conv_backward"].replace(
        "dw[f] += dout[n, f, i, j] * x[n, :, i:i + HH, j:j + WW]",
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
}

HOSTILE_TARGETS = ("grading/hidden_cases.toml", "grading/hidden.py", "hwlib/layers.py", "build/course/gradebook.db")


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
               bug("conv_dw"), loses={**_question_cases("conv"), **_model_cases("hwlib.classifiers.ConvNet", "loss")}),
        Sample("bug-softmax-shift", "softmax_loss without the max shift: overflows on 1e4-scale scores",
               bug("softmax_shift"), loses=_question_cases("softmax", large_scale_only=True)),
        Sample("bug-temporal-fc-db", "temporal_fc_backward: db not summed over time (last step only)",
               bug("temporal_fc_db"),
               loses={**_cases_with_target("layer:temporal_fc"), **_model_cases("hwlib.captioning.CaptioningRNN", "loss")}),
        Sample("bug-caption-mask", "temporal_softmax_loss ignores the mask (the <NULL> padding counts)",
               bug("caption_mask"),
               loses={**_cases_with_target("layer:temporal_softmax"), **_model_cases("hwlib.captioning.CaptioningRNN", "loss")}),
        Sample("bug-freeze", "freeze leaves the backbone trainable", bug("freeze_backbone"),
               loses=_cases_with_target("transfer:freeze")),
        Sample("hang", "relu_forward loops forever", bug("hang"), loses={"q1-relu-test": "all"}),
        Sample("crash", "fc_backward kills its process (os._exit)", bug("crash"), loses={"q1-fc-test": "all"}),
        Sample("deleted-tests", "test cells deleted from the notebook (code correct)",
               _edit_notebook(perfect, "01_layers.ipynb", lambda nb: nb.cells.__setitem__(slice(None), [
                   c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade_id", "").endswith("-test")]))),
        Sample("edited-tests", "fc test cell edited to pass, and a bug in fc_backward (db not summed)",
               _edit_notebook(bug("fc_db"), "01_layers.ipynb",
                              _edit_test_cell("q1-fc-test", 'print("fc: public checks pass")')),
               loses={"q1-fc-test": "all"}),
        Sample("forged-checks", "Q5 not done, and the given module hwlib/checks_transfer.py edited so that its "
                                "observers report a perfect freeze and finetune", {**perfect, "hwlib/transfer.py": blank["hwlib/transfer.py"],
                                                                "hwlib/checks_transfer.py": _forged_checks()},
               loses=_cases_with_target("transfer:freeze", "transfer:finetune", "transfer:train_model")),
        Sample("invalid-json", "01_layers.ipynb is not valid JSON (code correct)",
               {**perfect, "01_layers.ipynb": perfect["01_layers.ipynb"][: len(perfect["01_layers.ipynb"]) // 2]},
               missing_notebooks=("01_layers",)),
        Sample("missing-files", "hwlib/layers.py and 06_conv_backward_proof.ipynb not submitted",
               {k: v for k, v in perfect.items() if k not in ("hwlib/layers.py", "06_conv_backward_proof.ipynb")},
               loses={g: "all" for g in _groups_using_layers()}, missing_notebooks=("06_conv_backward_proof",)),
        Sample("hostile", "tries to read the hidden checks and the reference, write outside its folder, "
                          "open sockets, signal init, take 64 GB, become root (its code is otherwise correct)",
               with_layers(_insert_after_imports(layers, _hostile_prelude(REPO)) + HOSTILE_CHEAT), hostile=True),
        Sample("variant-loops", "naive loops (fc, ReLU and softmax give float64 results for float32 inputs)",
               with_layers(layers_with(LOOP_BODIES))),
        Sample("variant-scipy-conv", "convolution through scipy.signal (correlate / convolve)",
               with_layers(layers_with(SCIPY_CONV))),
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


def _question_cases(spec: str, large_scale_only: bool = False) -> dict:
    """The hidden cases of layer ``spec`` (those with scores of scale >= 1e3 when asked)."""
    lost = {}
    for gid, group in _groups().items():
        if group.target != f"layer:{spec}":
            continue
        cases = tuple(c.id for c in group.cases if not large_scale_only or c.shape.get("scale", 1.0) >= 1e3)
        lost[gid] = cases
    return lost


LAYER_SPECS = ("fc", "relu", "conv", "pool", "softmax")   # the hwlib.check specs of hwlib.layers


def _groups_using_layers() -> list[str]:
    """Groups whose code needs the student's hwlib/layers.py: its layers, the classifiers (which import
    softmax_loss and the convolution layers from it) and the captioning model (which imports fc from
    it), unless the group's oracle replaces fc by a PyTorch version."""
    return [gid for gid, g in _groups().items()
            if (g.target.startswith("layer:") and g.target.partition(":")[2] in LAYER_SPECS)
            or g.options.get("class", "").startswith("hwlib.classifiers.")
            or (g.options.get("class", "").startswith("hwlib.captioning.") and "fc" not in g.oracle)]


def _forged_checks() -> bytes:
    """The kit's hwlib/checks_transfer.py with observers that report a perfect freeze / finetune
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
    return ((REPO / "hwlib" / "checks_transfer.py").read_text() + forged).encode()


def _cases_with_target(*targets: str) -> dict:
    """The cases (of any group) that run one of ``targets``."""
    out = {}
    for gid, g in _groups().items():
        cases = tuple(c.id for c in g.cases if (c.target or g.target) in targets)
        if cases:
            out[gid] = cases
    return out


def _model_cases(cls: str, check: str) -> dict:
    """The cases of a model's groups that run ``check`` ("init" or "loss")."""
    return {gid: tuple(c.id for c in g.cases if c.check == check)
            for gid, g in _groups().items() if g.options.get("class") == cls}


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

"""Hidden checks, trusted side: draw inputs, run the sandboxed runner, compare, award points.

The cases are data (the ``[hidden.<grade_id>]`` tables of ``course/questions/*.toml``). For one submission :func:`run_checks` writes every
group's inputs to the sandbox folder, starts ``sandbox_runner.py`` in the sandbox and watches it
group by group: a group that runs past its budget is killed and scores 0, a crash scores 0 for the
group it happened in, and the runner restarts for the groups left. The outputs come back as arrays
(``np.load(allow_pickle=False)``) and are compared here, with the reference computed here, by
:func:`hwlib.check.compare`: nothing the student's code does can reach this process.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwlib import check as hwcheck

try:  # the recurrent layers' specs register themselves into hwlib.check.SPECS
    import hwlib.checks_rnn  # noqa: F401
except ImportError:
    pass

from course.registry import load as load_registry

from .sandbox import Sandbox, site_packages

__all__ = ["Case", "Group", "CaseResult", "GroupResult", "load", "run_checks", "evaluate"]

MAX_OUTPUT_BYTES = 200 << 20
STARTUP_S = 60.0          # time the runner may take to start (Python, NumPy) before its first group


@dataclass(frozen=True)
class Case:
    id: str
    points: float
    dtype: str = "float64"
    seed: int = 0
    shape: dict = field(default_factory=dict)
    init: dict = field(default_factory=dict)      # model targets: constructor arguments
    check: str = "run"                            # model targets: "init" (the constructor), "loss", "sample"
    target: str = ""                              # overrides the group's target (a cell checking two layers)


@dataclass(frozen=True)
class Group:
    grade_id: str
    target: str
    budget_s: float
    cases: tuple
    oracle: tuple = ()
    options: dict = field(default_factory=dict)

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cases)


@dataclass
class CaseResult:
    id: str
    points: float
    max_points: float
    passed: bool
    describe: str                     # dtype and input shapes
    message: str = ""                 # why it failed (the student's error, or the comparison)
    worst: dict = field(default_factory=dict)   # output -> worst relative error (when it passed)


@dataclass
class GroupResult:
    grade_id: str
    points: float
    max_points: float
    status: str                       # "ok", "timeout", "crash", "error"
    message: str = ""
    cases: list = field(default_factory=list)
    wall_s: float = 0.0


def load() -> dict[str, Group]:
    """The hidden-check groups of every autograded cell, from the course registry, by grade_id."""
    groups = {}
    for gid, g in load_registry().hidden.items():
        cases = tuple(Case(c["id"], c["points"], c.get("dtype", "float64"), c.get("seed", 0), dict(c.get("shape", {})),
                           dict(c.get("init", {})), c.get("check", "run"), c.get("target", "")) for c in g["cases"])
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{g['question']}: hidden checks of {gid} repeat a case id")
        groups[gid] = Group(gid, g["target"], float(g.get("budget_s", 60)), cases, tuple(g.get("oracle", ())),
                            dict(g.get("options", {})))
    return groups


# --- targets: inputs and references (trusted) -------------------------------------------------

def _shape_kwargs(shape: dict) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in shape.items()}


def target_of(group: Group, case: Case) -> str:
    return case.target or group.target


def make_inputs(group: Group, case: Case) -> dict:
    """The case's inputs, drawn from its seed (the same for every submission)."""
    kind, _, spec = target_of(group, case).partition(":")
    rng = np.random.default_rng(case.seed)
    if kind == "layer":
        return hwcheck.make_inputs(spec, rng, np.dtype(case.dtype), **_shape_kwargs(case.shape))
    if kind == "model":
        return _model_inputs(group, case, rng)
    if kind == "transfer":
        return dict(case.shape)   # num_classes / num_epochs: plain values, the sandbox builds the rest
    raise ValueError(f"unknown target kind {kind!r} in group {group.grade_id}")


def reference(group: Group, case: Case, inputs: dict) -> dict:
    kind, _, spec = target_of(group, case).partition(":")
    if kind == "layer":
        return hwcheck.torch_reference(spec, inputs)
    if kind == "model":
        return _model_reference(group, case, inputs)
    if kind == "transfer":
        return {}                 # judged by rules (judge_transfer), not against reference values
    raise ValueError(f"unknown target kind {kind!r}")


def _model_class(group: Group):
    import importlib
    module, _, name = group.options["class"].rpartition(".")
    return getattr(importlib.import_module(module), name)


SPECIAL_TOKENS = ("<NULL>", "<START>", "<END>")   # ids 0, 1, 2 of a generated vocabulary


def _init_json(case: Case) -> dict:
    """Constructor arguments as JSON values: ``vocab_size`` becomes a ``word_to_idx`` vocabulary."""
    kwargs = dict(case.init)
    if "vocab_size" in kwargs:
        size = kwargs.pop("vocab_size")
        kwargs = {"word_to_idx": {**{t: i for i, t in enumerate(SPECIAL_TOKENS)},
                                  **{f"word{i}": i for i in range(len(SPECIAL_TOKENS), size)}}, **kwargs}
    return {**kwargs, "dtype": case.dtype}


def _init_kwargs(case: Case) -> dict:
    """Constructor arguments as Python values (lists -> tuples, the dtype name -> a dtype)."""
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in _init_json(case).items()}
    kwargs["dtype"] = np.dtype(case.dtype)
    return kwargs


def _reference_model(group: Group, case: Case):
    return _model_class(group)(**_init_kwargs(case), rng=np.random.default_rng(case.seed))


def _captions(rng, N: int, T: int, vocab: int) -> np.ndarray:
    """N captions of T + 1 tokens: <START>, words, <END> at lengths from 1 to T, then <NULL>."""
    captions = np.zeros((N, T + 1), dtype=np.int64)
    lengths = rng.integers(1, T + 1, size=N)
    lengths[0] = T          # one caption fills every step, another ends early: the mask matters
    lengths[-1] = min(lengths[-1], max(1, T // 2))
    for i, length in enumerate(lengths):
        captions[i, 0] = 1
        captions[i, 1:length] = rng.integers(3, vocab, size=length - 1)
        captions[i, length] = 2
    return captions


def _model_inputs(group: Group, case: Case, rng) -> dict:
    """An "init" case has no inputs. Otherwise: random parameters (shapes from the reference model,
    scale ``param_scale``), then the data: images X and labels y (classifiers), or features and
    captions (captioning; ``sample`` cases only features and ``max_length``)."""
    if case.check == "init":
        return {}
    dtype = np.dtype(case.dtype)
    model = _reference_model(group, case)
    scale = float(group.options.get("param_scale", 0.5))
    inputs = {k: (scale * rng.standard_normal(v.shape)).astype(dtype) for k, v in sorted(model.params.items())}
    if group.options.get("data") == "captioning":
        N, T = case.shape["N"], case.shape["T"]
        inputs["features"] = rng.standard_normal((N, model.input_dim)).astype(dtype)
        if case.check == "sample":
            inputs["max_length"] = int(T)
        else:
            inputs["captions"] = _captions(rng, N, T, len(model.word_to_idx))
        return inputs
    inputs["X"] = rng.standard_normal(tuple(case.shape["X"])).astype(dtype)
    inputs["y"] = rng.integers(0, model.num_classes, size=case.shape["X"][0])
    return inputs


DATA_KEYS = ("X", "y", "features", "captions", "max_length")


def _model_reference(group: Group, case: Case, inputs: dict) -> dict:
    model = _reference_model(group, case)
    if case.check == "init":
        return {f"params/{k}": v for k, v in model.params.items()}
    for key in model.params:
        model.params[key] = inputs[key].copy()
    if case.check == "sample":
        return {"captions": np.asarray(model.sample(inputs["features"], inputs["max_length"]))}
    if "captions" in inputs:
        loss, grads = model.loss(inputs["features"], inputs["captions"])
        out = {}
    else:
        out = {"scores": np.asarray(model.loss(inputs["X"]))}
        loss, grads = model.loss(inputs["X"], inputs["y"])
    out["loss"] = np.asarray(loss, dtype=np.dtype(case.dtype))
    out.update({f"grads/{k}": np.asarray(v) for k, v in grads.items()})
    return out


def _compare_init(name: str, case: Case, outputs: dict, expected: dict) -> dict:
    """The constructor's parameters: same names, shapes and dtype as the reference, biases 0, weights
    drawn with standard deviation ``weight_scale`` (within 25 %, for arrays of 100 entries or more)."""
    got = {k[len("params/"):]: v for k, v in outputs.items() if k.startswith("params/")}
    want = {k[len("params/"):]: v for k, v in expected.items()}
    if sorted(got) != sorted(want):
        raise AssertionError(f"{name}: params has keys {sorted(got)}, expected {sorted(want)}")
    scale = float(case.init.get("weight_scale", 1e-3))
    summary = {}
    for key, ref in want.items():
        value = got[key]
        if value.shape != ref.shape:
            raise AssertionError(f"{name}: params[{key!r}] has shape {value.shape}, expected {ref.shape}")
        if value.dtype != ref.dtype:
            raise AssertionError(f"{name}: params[{key!r}] has dtype {value.dtype}, expected {ref.dtype}")
        if not np.all(np.isfinite(value)):
            raise AssertionError(f"{name}: params[{key!r}] holds NaN or inf")
        if key.startswith("b"):
            if np.any(value != 0):
                raise AssertionError(f"{name}: params[{key!r}] must start at 0 (biases); max |b| = {np.abs(value).max():.3g}")
        elif value.size >= 100:
            std = float(np.std(value, dtype=np.float64))
            if not 0.75 * scale <= std <= 1.25 * scale:
                raise AssertionError(f"{name}: params[{key!r}] has standard deviation {std:.3g}; expected about "
                                     f"weight_scale = {scale:g} (weights drawn from N(0, weight_scale^2))")
            summary[key] = abs(std / scale - 1)
    return summary


def judge_transfer(spec: str, case: Case, inputs: dict, got: dict) -> dict:
    """Q5: the public checks' rules (``hwlib.checks_transfer.judge``, the kit's trusted copy) applied to
    what the sandbox observed (arrays turned back into plain values)."""
    from hwlib import checks_transfer

    obs = {key: np.asarray(value).tolist() for key, value in got.items()}
    obs["num_epochs"] = inputs.get("num_epochs")     # what was asked, not what the sandbox says was asked
    checks_transfer.judge(spec, obs, inputs.get("num_classes"))
    return {}


def describe(inputs: dict) -> str:
    arrays = [(k, v) for k, v in inputs.items() if isinstance(v, np.ndarray) and k != "dout"]
    dtypes = sorted({str(v.dtype) for _, v in arrays if v.dtype.kind == "f"})
    shapes = " ".join(f"{k}{tuple(v.shape)}" for k, v in arrays)
    others = " ".join(f"{k}={v}" for k, v in inputs.items() if not isinstance(v, np.ndarray) and not k.startswith("_"))
    return " ".join(x for x in ("/".join(dtypes), shapes, others) if x)


# --- the job for the sandbox ------------------------------------------------------------------

def _job_options(group: Group) -> dict:
    """What the sandbox side needs to call the student's code (never a reference or a threshold)."""
    return {"class": group.options["class"]} if group.target.startswith("model:") else {}


def build_job(groups: list[Group]) -> tuple[dict, dict, dict]:
    """(job description, arrays for inputs.npz, inputs by (grade_id, case id))."""
    job, arrays, inputs_of = {"groups": {}}, {}, {}
    for group in groups:
        entry = {"target": group.target, "oracle": list(group.oracle), "options": _job_options(group), "cases": []}
        model = group.target.startswith("model:")
        for case in group.cases:
            inputs = make_inputs(group, case)
            inputs_of[(group.grade_id, case.id)] = inputs
            refs = {}
            for name, value in inputs.items():
                if isinstance(value, np.ndarray):
                    key = f"{group.grade_id}/{case.id}/{name}"
                    arrays[key] = value
                    refs[name] = {"array": key}
                else:
                    refs[name] = {"json": value}
            entry["cases"].append({"id": case.id, "inputs": refs, "check": case.check, "seed": case.seed,
                                   "target": target_of(group, case), "init": _init_json(case) if model else {}})
        job["groups"][group.grade_id] = entry
    return job, arrays, inputs_of


# --- evaluation (trusted) ---------------------------------------------------------------------

_REFERENCE_CACHE: dict = {}


def _reference_cached(group: Group, case: Case, inputs: dict) -> dict:
    key = (group.grade_id, case.id, group.target, case.seed, case.dtype, repr(case.shape), repr(case.init))
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = reference(group, case, inputs)
    return _REFERENCE_CACHE[key]


def _unflatten(outputs: dict, case_id: str) -> dict:
    prefix = case_id + "/"
    return {k[len(prefix):]: v for k, v in outputs.items() if k.startswith(prefix)}


def evaluate(group: Group, inputs_of: dict, outputs: dict, errors: dict, status: str = "ok",
             message: str = "") -> GroupResult:
    """Score a group from the sandbox's outputs; ``status`` other than "ok" fails every case."""
    cases = []
    for case in group.cases:
        name = target_of(group, case).partition(":")[2]
        inputs = inputs_of[(group.grade_id, case.id)]
        desc = describe(inputs) or f"{case.dtype} " + " ".join(f"{k}={v}" for k, v in case.init.items())
        if status != "ok":
            cases.append(CaseResult(case.id, 0, case.points, False, desc, message))
            continue
        err = errors.get(case.id) or errors.get("*")
        if err:
            where = f" ({err['where']})" if err.get("where") else ""
            cases.append(CaseResult(case.id, 0, case.points, False, desc, f"{err['type']}: {err['message']}{where}"))
            continue
        expected = _reference_cached(group, case, inputs)
        try:
            got = _unflatten(outputs, case.id)
            if target_of(group, case).startswith("transfer:"):
                worst = judge_transfer(name, case, inputs, got)
            elif case.check == "init":
                worst = _compare_init(name, case, got, expected)
            else:
                for key in group.options.get("same_dtype", ()):
                    if key in got and got[key].dtype != expected[key].dtype:
                        raise AssertionError(f"{name}: {key} has dtype {got[key].dtype}; the model's dtype is "
                                             f"{expected[key].dtype}")
                worst = hwcheck.compare(name, got, expected, expected_label="reference")
        except AssertionError as exc:
            cases.append(CaseResult(case.id, 0, case.points, False, desc, str(exc)))
            continue
        except Exception as exc:  # e.g. outputs of a type compare cannot read
            cases.append(CaseResult(case.id, 0, case.points, False, desc, f"{type(exc).__name__}: {exc}"))
            continue
        cases.append(CaseResult(case.id, case.points, case.points, True, desc, "", worst))
    return GroupResult(group.grade_id, sum(c.points for c in cases), group.points, status, message, cases)


def _read_outputs(io_dir: Path, gid: str) -> tuple[dict, dict, str]:
    """Outputs and errors the runner saved for a group (untrusted files: size-checked, no pickles)."""
    npz, err = io_dir / f"{gid}.npz", io_dir / f"{gid}.errors.json"
    try:
        if npz.stat().st_size > MAX_OUTPUT_BYTES or err.stat().st_size > MAX_OUTPUT_BYTES:
            return {}, {}, "outputs too large"
        with np.load(npz, allow_pickle=False) as data:
            outputs = {k: data[k] for k in data.files}
        errors = json.loads(err.read_text())
        if not isinstance(errors, dict):
            raise ValueError("errors is not a mapping")
        errors = {str(k): {"type": str(v.get("type", "Error"))[:200], "message": str(v.get("message", ""))[:2000],
                           "where": str(v.get("where", ""))[:300]} for k, v in errors.items() if isinstance(v, dict)}
        return outputs, errors, ""
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        return {}, {}, f"could not read the outputs: {type(exc).__name__}: {exc}"


def run_checks(box: Sandbox, groups: list[Group], budget_scale: float = 1.0) -> dict[str, GroupResult]:
    """Run ``groups`` on the submission in ``box.workdir / "submission"``; return results by grade_id.

    ``budget_scale`` multiplies every group's time budget (a slower machine, or quicker tests).
    """
    io_dir = box.workdir / "io"
    io_dir.mkdir(exist_ok=True)
    job, arrays, inputs_of = build_job(groups)
    (io_dir / "job.json").write_text(json.dumps(job))
    np.savez(io_dir / "inputs.npz", **arrays)
    box.refresh()
    by_id = {g.grade_id: g for g in groups}
    budget_of = {g.grade_id: g.budget_s * budget_scale for g in groups}
    results: dict[str, GroupResult] = {}
    pending = [g.grade_id for g in groups]
    env = {"HW4_SITE_PACKAGES": os.pathsep.join(site_packages())}
    while pending:
        for gid in pending:
            for suffix in (".start", ".done"):
                (io_dir / f"{gid}{suffix}").unlink(missing_ok=True)
        budget = STARTUP_S + sum(budget_of[g] for g in pending)
        argv = box.python("sandbox_runner.py", f"{box.root}/io", f"{box.root}/submission", *pending)
        running = box.start(argv, timeout=budget, env=env, log_dir=box.workdir.parent / f"{box.workdir.name}.log")
        current, current_since = None, None
        while True:
            for gid in list(pending):
                if (io_dir / f"{gid}.done").exists():
                    outputs, errors, problem = _read_outputs(io_dir, gid)
                    res = evaluate(by_id[gid], inputs_of, outputs, errors, "error" if problem else "ok", problem)
                    res.wall_s = _marker_span(io_dir, gid)
                    results[gid] = res
                    pending.remove(gid)
                    current, current_since = None, None
            started = next((g for g in pending if (io_dir / f"{g}.start").exists()), None)
            if started and started != current:
                current, current_since = started, time.monotonic()
            exited = running.poll() is not None
            if current and time.monotonic() - current_since > budget_of[current]:
                running.kill()
                results[current] = evaluate(by_id[current], inputs_of, {}, {}, "timeout",
                                            f"timed out: still running after {budget_of[current]:.0f} s "
                                            "(an infinite loop, or far too slow)")
                pending.remove(current)
                break
            if not pending:
                running.kill()
                break
            if exited:
                res = running.result(False)
                if current is not None:
                    why = _crash_message(res.returncode, res.stderr)
                    results[current] = evaluate(by_id[current], inputs_of, {}, {}, "crash", why)
                    pending.remove(current)
                else:  # died before its first group: nothing can run
                    why = "the checks could not start: " + _crash_message(res.returncode, res.stderr)
                    for gid in pending:
                        results[gid] = evaluate(by_id[gid], inputs_of, {}, {}, "crash", why)
                    pending = []
                break
            if current is None and running.elapsed() > STARTUP_S + 5 and not any(
                    (io_dir / f"{g}.start").exists() for g in pending):
                running.kill()
                for gid in pending:
                    results[gid] = evaluate(by_id[gid], inputs_of, {}, {}, "timeout", "the checks did not start in time")
                pending = []
                break
            time.sleep(0.05)
    return {g.grade_id: results[g.grade_id] for g in groups}


def _marker_span(io_dir: Path, gid: str) -> float:
    """Seconds between a group's start and done markers (as the runner wrote them)."""
    try:
        return max(0.0, (io_dir / f"{gid}.done").stat().st_mtime - (io_dir / f"{gid}.start").stat().st_mtime)
    except OSError:
        return 0.0


def _crash_message(returncode, stderr: str) -> str:
    if returncode is not None and returncode < 0:
        try:
            import signal
            sig = signal.Signals(-returncode).name
        except ValueError:
            sig = str(-returncode)
        what = f"the process was killed by {sig}"
        if sig in ("SIGKILL", "SIGSEGV"):
            what += " (memory limit, or a crash)"
    else:
        what = f"the process exited with code {returncode} (os._exit, sys.exit or a crash in your code)"
    last = [line for line in stderr.strip().splitlines() if line.strip()][-1:] if stderr.strip() else []
    return what + (f"; last line of stderr: {last[0][:300]}" if last else "")

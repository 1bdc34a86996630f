"""Hidden checks, trusted side: draw inputs, run the sandboxed runner, judge, award points.

The cases are data (the ``[hidden.<grade_id>]`` tables of ``course/questions/*.toml``); what a case's target means (its draw, the
student's call, the reference and the verdict) is ``hwlib.check.TARGETS``, the table the public
checks use. For one submission :func:`run_checks` writes every group's job through
``hwlib.check.protocol``, starts ``sandbox_runner.py`` in the sandbox and watches it group by group:
a group that runs past its budget is killed and scores 0, a crash scores 0 for the group it happened
in, and the runner restarts for the groups left. The outputs come back as arrays (no pickles) and
are judged here, against references computed here: nothing the student's code does reaches this
process, which imports the kit's ``hwlib`` and never the submission.

Beyond the returned values, the judge of a layer or model case holds the record of what the student's
calls left of their inputs (``hwlib.check.watch``): it compares it with the inputs drawn here, so
changing an input in place, or a record gone missing, fails the case; so does an output whose dtype
is not the inputs'. A case's ``layout`` draw keyword sends its arrays in another memory layout
(the sandbox re-creates it from the job's ``_layout`` tag).

The tasks' code policy (a NumPy-only homework: :mod:`.policy`) is checked here too: on the source
before the sandbox starts, and on what the sandbox recorded while the groups ran; a violation goes
into its cell's result (``GroupResult.policy``) and, where the policy says so, takes its points.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from course.registry import load as load_registry
from hwlib import check
from hwlib.check import protocol, watch

from . import policy
from .sandbox import Sandbox, site_packages

__all__ = ["Case", "Group", "CaseResult", "GroupResult", "load", "draw_inputs", "job",
           "evaluate", "run_checks"]

STARTUP_S = 60.0          # time the runner may take to start (Python, NumPy) before its first group


@dataclass(frozen=True)
class Case:
    id: str
    points: float
    target: str                                    # a name of hwlib.check.TARGETS
    dtype: str = "float64"
    seed: int = 0
    draw: dict = field(default_factory=dict)       # keywords of the target's draw (lists as tuples)


@dataclass(frozen=True)
class Group:
    grade_id: str
    budget_s: float
    cases: tuple
    oracle: tuple = ()                             # layer families the sandbox computes with PyTorch

    @property
    def points(self) -> float:
        return sum(c.points for c in self.cases)

    @property
    def targets(self) -> tuple:
        """The targets its cases run, in order, each once."""
        return tuple(dict.fromkeys(c.target for c in self.cases))


@dataclass
class CaseResult:
    id: str
    points: float
    max_points: float
    passed: bool
    describe: str                     # dtype and input shapes
    message: str = ""                 # why it failed (the student's error, or the judge's)
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
    policy: list = field(default_factory=list)   # code-policy violations of its tasks (policy.apply)


def _tuples(value):
    """TOML lists as tuples (shapes), inside dicts too."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def load(registry=None) -> dict[str, Group]:
    """The hidden-check groups of every autograded cell, from the course registry (``registry``; None:
    the course's profile), by grade_id; every case's target must be in the check table."""
    groups = {}
    for gid, g in (registry or load_registry()).hidden.items():
        where = f"{g['question']}: [hidden.{gid}]"
        cases = tuple(Case(c["id"], c["points"], c.get("target", g.get("target", "")), c.get("dtype", "float64"),
                           c.get("seed", 0), _tuples(dict(c.get("draw", {})))) for c in g["cases"])
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where} repeats a case id")
        unknown = sorted({c.target for c in cases} - set(check.TARGETS))
        if unknown:
            raise ValueError(f"{where} names targets that hwlib.check.TARGETS lacks: {unknown}")
        layouts = sorted({str(c.draw["layout"]) for c in cases if "layout" in c.draw} - set(watch.LAYOUTS))
        if layouts:
            raise ValueError(f"{where}: unknown layout {layouts}; expected one of {', '.join(watch.LAYOUTS)}")
        groups[gid] = Group(gid, float(g.get("budget_s", 60)), cases, tuple(g.get("oracle", ())))
    return groups


# --- inputs and references (trusted) ---------------------------------------------------------------

def draw_inputs(groups: list[Group]) -> dict:
    """Every case's inputs by ``(grade_id, case id)``, drawn from its seed (the same for every submission)."""
    return {(g.grade_id, c.id): check.draw(c.target, c.seed, c.dtype, **c.draw) for g in groups for c in g.cases}


def job(groups: list[Group], inputs_of: dict) -> dict:
    """The job for the sandbox (:func:`hwlib.check.protocol.write_job`): targets and inputs, never
    a reference or a threshold."""
    return {g.grade_id: {"oracle": list(g.oracle),
                         "cases": [{"id": c.id, "target": c.target, "inputs": inputs_of[(g.grade_id, c.id)]}
                                   for c in g.cases]} for g in groups}


_REFERENCE_CACHE: dict = {}


def _reference(group: Group, case: Case, inputs: dict) -> dict:
    """The case's expected outputs, computed once per process (the same for every submission)."""
    key = (group.grade_id, case.id, case.target, case.seed, case.dtype, repr(case.draw))
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = check.reference(case.target, inputs)
    return _REFERENCE_CACHE[key]


def evaluate(group: Group, inputs_of: dict, outputs: dict, errors: dict, status: str = "ok",
             message: str = "") -> GroupResult:
    """Score a group from the sandbox's ``{case id: outputs}`` and errors; a ``status`` other than
    "ok" fails every case with ``message``."""
    cases = []
    for case in group.cases:
        inputs = inputs_of[(group.grade_id, case.id)]
        desc = check.describe(inputs)
        if status != "ok":
            cases.append(CaseResult(case.id, 0, case.points, False, desc, message))
            continue
        err = errors.get(case.id) or errors.get("*")
        if err:
            where = f" ({err['where']})" if err.get("where") else ""
            cases.append(CaseResult(case.id, 0, case.points, False, desc, f"{err['type']}: {err['message']}{where}"))
            continue
        expected = _reference(group, case, inputs)
        try:
            summary = check.judge(case.target, outputs.get(case.id, {}), expected, inputs)
        except AssertionError as exc:
            cases.append(CaseResult(case.id, 0, case.points, False, desc, str(exc)))
            continue
        except Exception as exc:  # e.g. outputs of a type the judge cannot read
            cases.append(CaseResult(case.id, 0, case.points, False, desc, f"{type(exc).__name__}: {exc}"))
            continue
        worst = summary if isinstance(summary, dict) else {}
        cases.append(CaseResult(case.id, case.points, case.points, True, desc, "", worst))
    return GroupResult(group.grade_id, sum(c.points for c in cases), group.points, status, message, cases)


# --- the watchdog ----------------------------------------------------------------------------------

def run_checks(box: Sandbox, groups: list[Group], budget_scale: float = 1.0, registry=None) -> dict[str, GroupResult]:
    """Run ``groups`` on the submission in ``box.workdir / "submission"``; return results by grade_id,
    with the tasks' code policy applied (``registry``: the course's, None for the default profile).

    ``budget_scale`` multiplies every group's time budget (a slower machine, or quicker tests).
    """
    io_dir = box.workdir / "io"
    io_dir.mkdir(exist_ok=True)
    registry = registry or load_registry()
    rules = policy.load(registry)
    # The source as handed in, read before any of it runs (the sandbox may rewrite its own folder).
    scans = policy.read_modules(box.workdir / "submission", {t.module for t in registry.tasks})
    policy.write_watch(io_dir, rules, registry)
    inputs_of = draw_inputs(groups)
    protocol.write_job(io_dir, job(groups, inputs_of))
    box.refresh()
    by_id = {g.grade_id: g for g in groups}
    budget_of = {g.grade_id: g.budget_s * budget_scale for g in groups}
    results: dict[str, GroupResult] = {}
    pending = [g.grade_id for g in groups]
    env = {"HW4_SITE_PACKAGES": os.pathsep.join(site_packages())}

    def fail(gids, status, why):
        for gid in gids:
            results[gid] = evaluate(by_id[gid], inputs_of, {}, {}, status, why)
            pending.remove(gid)

    while pending:
        for gid in pending:
            protocol.clear_marks(io_dir, gid)
        budget = STARTUP_S + sum(budget_of[g] for g in pending)
        argv = box.python("sandbox_runner.py", f"{box.root}/io", f"{box.root}/submission", *pending)
        running = box.start(argv, timeout=budget, env=env, log_dir=box.workdir.parent / f"{box.workdir.name}.log")
        current, current_since = None, None
        while True:
            for gid in list(pending):
                if protocol.marked(io_dir, gid, "done"):
                    outputs, errors, problem = protocol.read_outputs(io_dir, gid)
                    res = evaluate(by_id[gid], inputs_of, outputs, errors, "error" if problem else "ok", problem)
                    res.wall_s = protocol.marker_span(io_dir, gid)
                    results[gid] = res
                    pending.remove(gid)
                    current, current_since = None, None
            started = next((g for g in pending if protocol.marked(io_dir, g, "start")), None)
            if started and started != current:
                current, current_since = started, time.monotonic()
            exited = running.poll() is not None
            if current and time.monotonic() - current_since > budget_of[current]:
                running.kill()
                fail([current], "timeout", f"timed out: still running after {budget_of[current]:.0f} s "
                                           "(an infinite loop, or far too slow)")
                break
            if not pending:
                running.kill()
                break
            if exited:
                res = running.result(False)
                if current is not None:
                    fail([current], "crash", _crash_message(res.returncode, res.stderr))
                else:  # died before its first group: nothing can run
                    fail(list(pending), "crash", "the checks could not start: " + _crash_message(res.returncode, res.stderr))
                break
            if current is None and running.elapsed() > STARTUP_S + 5 and not any(
                    protocol.marked(io_dir, g, "start") for g in pending):
                running.kill()
                fail(list(pending), "timeout", "the checks did not start in time")
                break
            time.sleep(0.05)
    records = policy.read_records(io_dir, [g.grade_id for g in groups])
    policy.apply(results, policy.check(box.workdir / "submission", rules, records, registry, scans))
    return {g.grade_id: results[g.grade_id] for g in groups}


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

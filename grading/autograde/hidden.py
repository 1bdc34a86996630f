"""Hidden checks, trusted side: draw inputs, run the sandboxed runner, judge, award points.

The cases are data (the ``[hidden.<grade_id>]`` tables of ``course/questions/*.toml``); what a case's target means (its draw, the
student's call, the reference and the verdict) is ``hwlib.check.TARGETS``, the table the public
checks use. For one submission :func:`run_checks` writes every group's job through
``protocol.py``, starts ``sandbox_runner.py`` in the sandbox and watches it group by group:
a group that runs past its budget is killed and scores 0, a crash scores 0 for the group it happened
in, and the runner restarts for the groups left. The outputs come back as arrays (no pickles) and
are judged here, against references computed here: nothing the student's code does reaches this
process, which imports the kit's ``hwlib`` and never the submission.

Beyond the returned values, the judge of a layer or model case holds the record of what the student's
calls left of their inputs (``hwlib.check.watch``): it compares it with the inputs drawn here, so
changing an input in place, or a record gone missing, fails the case. An output whose dtype is not the
inputs' fails it where the course profile sets ``strict_dtypes`` (course/course.toml); otherwise the
case is judged on its values and keeps its points, and its result carries a note saying what the
change costs (``CaseResult.note``, for the feedback). A case's ``layout`` draw keyword sends its arrays
in another memory layout (the sandbox re-creates it from the job's ``_layout`` tag).

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
from hwlib.check import watch

from pathlib import Path

from . import oracle, policy, protocol, untrusted
from .sandbox import Sandbox, site_packages

__all__ = ["Case", "Group", "CaseResult", "GroupResult", "load", "draw_inputs", "job",
           "evaluate", "batches", "read_outputs", "run_checks", "Clock"]

ORACLE_DIR = "/oracle"     # where a batch's oracle layers are mounted in its sandbox (oracle.py)

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
    strict_dtypes: bool = False                    # a dtype change fails a case (the profile's setting)

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
    note: str = ""                    # what a passed case should still tell the student (a dtype change)


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
    registry = registry or load_registry()
    for gid, g in registry.hidden.items():
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
        groups[gid] = Group(gid, float(g.get("budget_s", 60)), cases, tuple(g.get("oracle", ())),
                            registry.strict_dtypes)
    return groups


# --- inputs and references (trusted) ---------------------------------------------------------------

def draw_inputs(groups: list[Group]) -> dict:
    """Every case's inputs by ``(grade_id, case id)``, drawn from its seed (the same for every submission)."""
    return {(g.grade_id, c.id): check.draw(c.target, c.seed, c.dtype, **c.draw) for g in groups for c in g.cases}


def job(groups: list[Group], inputs_of: dict) -> dict:
    """The job for the sandbox (:func:`.protocol.write_job`): targets and inputs, never
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
        got = outputs.get(case.id, {})
        try:
            summary = check.judge(case.target, got, expected, inputs, strict_dtypes=group.strict_dtypes)
        except AssertionError as exc:
            cases.append(CaseResult(case.id, 0, case.points, False, desc, str(exc)))
            continue
        except Exception as exc:  # e.g. outputs of a type the judge cannot read
            cases.append(CaseResult(case.id, 0, case.points, False, desc, f"{type(exc).__name__}: {exc}"))
            continue
        worst = summary if isinstance(summary, dict) else {}
        note = " ".join(check.notes(case.target, got, expected, graded=True))
        cases.append(CaseResult(case.id, case.points, case.points, True, desc, "", worst, note))
    return GroupResult(group.grade_id, sum(c.points for c in cases), group.points, status, message, cases)


# --- the watchdog ----------------------------------------------------------------------------------

MAX_ERRORS_BYTES = 4 << 20     # a group's errors record (messages are cut to 2,000 characters anyway)
WALL_FACTOR = 4.0              # a group may take this many times its budget in wall-clock time (see Clock)


def _blocked(rules) -> dict[str, tuple]:
    """The packages each autograded cell's run cannot import: the top-level forbidden packages of
    the rules with consequence ``zero`` (a ``flag`` rule allows and reviews)."""
    out: dict[str, set] = {}
    for rule in rules:
        if rule.consequence == "zero":
            out.setdefault(rule.cell, set()).update(m for m in rule.forbidden if "." not in m)
    return {cell: tuple(sorted(names)) for cell, names in out.items()}


def batches(groups: list[Group], rules) -> list[tuple[tuple, tuple, list[Group]]]:
    """``(oracle families, blocked packages, groups)``: groups that can share one sandboxed process.

    Each batch runs in a sandbox of its own, on a fresh copy of the submission: the oracle layers of
    one batch (mounted for it alone) and whatever its code left behind never reach another one.
    """
    blocked = _blocked(rules)
    out: dict[tuple, list[Group]] = {}
    for g in groups:
        out.setdefault((tuple(sorted(g.oracle)), blocked.get(g.grade_id, ())), []).append(g)
    return [(oracle, block, members) for (oracle, block), members in out.items()]


class Clock:
    """The time a sandboxed run is charged: wall-clock time less the time its main thread waited for
    a CPU while it could run (``/proc/<pid>/schedstat``). Another submission's CPU hog on the same
    machine makes the runner wait, never costs it budget; a runner that loops, sleeps or hangs is
    charged in full. Where schedstat cannot be read it is wall-clock time."""

    def __init__(self, running):
        self.running, self.pid, self.t0, self.wait0 = running, None, time.monotonic(), 0.0

    def _wait(self) -> float | None:
        if self.pid is None:
            self.pid = self.running.runner_pid()
            if self.pid is None:
                return None
            self.wait0 = self._read() or 0.0
        return self._read()

    def _read(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/schedstat") as fh:
                return int(fh.read().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    def restart(self) -> None:
        """Charge from now on (a new group started)."""
        self.t0 = time.monotonic()
        wait = self._wait()
        self.wait0 = wait if wait is not None else self.wait0

    def wall(self) -> float:
        return time.monotonic() - self.t0

    def charged(self) -> float:
        wait = self._wait()
        return self.wall() - (max(0.0, wait - self.wait0) if wait is not None else 0.0)


def read_outputs(out_dir, gid: str) -> tuple[dict, dict, str]:
    """``({case id: {output: array}}, errors, problem)`` as the sandbox left them, read as hostile data
    (:mod:`.untrusted`); ``problem`` is "" unless a file is missing, too large, not a regular file or
    unreadable (then the outputs and errors are empty)."""
    try:
        arrays = untrusted.load_npz(Path(out_dir) / f"{gid}.npz", protocol.MAX_OUTPUT_BYTES, "the result file")
        errors = untrusted.read_json(Path(out_dir) / f"{gid}.errors.json", MAX_ERRORS_BYTES, "the errors file")
    except untrusted.Untrusted as exc:
        return {}, {}, str(exc)
    outputs: dict = {}
    for key, value in arrays.items():
        cid, sep, name = key.partition("/")
        if sep:
            outputs.setdefault(cid, {})[name] = value
    if not isinstance(errors, dict):
        return {}, {}, "the errors file is not a mapping"
    errors = {str(k)[:200]: {"type": str(v.get("type", "Error"))[:200], "message": str(v.get("message", ""))[:2000],
                             "where": str(v.get("where", ""))[:300]} for k, v in list(errors.items())[:10_000]
              if isinstance(v, dict)}
    return outputs, errors, ""


def _marker_span(out_dir, gid: str) -> float:
    start, done = (untrusted.mtime(Path(out_dir) / f"{gid}.{stage}") for stage in ("start", "done"))
    return max(0.0, done - start) if start is not None and done is not None else 0.0


def run_checks(box: Sandbox, groups: list[Group], budget_scale: float = 1.0, registry=None) -> dict[str, GroupResult]:
    """Run ``groups`` on the submission in ``box.workdir / "submission"``; return results by grade_id,
    with the tasks' code policy applied (``registry``: the course's, None for the default profile).

    ``budget_scale`` multiplies every group's time budget (a slower machine, or quicker tests).
    """
    registry = registry or load_registry()
    rules = policy.load(registry)
    # The source as handed in, read before any of it runs (every module of the submission).
    scans = policy.read_modules(box.workdir / "submission", policy.submission_modules(box.workdir / "submission"))
    policy.write_watch(box.jobdir, rules, registry)
    inputs_of = draw_inputs(groups)
    protocol.write_job(box.jobdir, job(groups, inputs_of))
    results: dict[str, GroupResult] = {}
    records: dict = {"imports": [], "globals": {}}
    for families, blocked, members in batches(groups, rules):
        binds = ()
        if families:
            folder = oracle.build(box.side_dir(f"oracle-{'-'.join(families)}"), families)
            binds = ((folder, ORACLE_DIR),)
        _run_batch(box, members, inputs_of, budget_scale, results, records, blocked, binds)
    policy.apply(results, policy.check(box.workdir / "submission", rules, records, registry, scans))
    return {g.grade_id: results[g.grade_id] for g in groups}


def _run_batch(box: Sandbox, groups: list[Group], inputs_of: dict, budget_scale: float, results: dict,
               records: dict, blocked: tuple, binds: tuple) -> None:
    """Run one batch's groups, restarting the runner (on a fresh copy) after a crash or a timeout."""
    by_id = {g.grade_id: g for g in groups}
    budget_of = {g.grade_id: g.budget_s * budget_scale for g in groups}
    pending = [g.grade_id for g in groups]
    env = {"HW4_SITE_PACKAGES": os.pathsep.join(site_packages())}
    if binds:
        env["HW4_ORACLE"] = binds[0][1] if box.contained else str(binds[0][0])
    while pending:
        argv = box.python("sandbox_runner.py", box.job_path, box.out_path, f"{box.root}/submission", *pending)
        running = box.start(argv, timeout=WALL_FACTOR * (STARTUP_S + sum(budget_of[g] for g in pending)), env=env,
                            blocked=blocked, binds=binds, log_dir=box.workdir.parent / f"{box.workdir.name}.log")
        for gid, status, why in _watch(running, box.outdir, pending, budget_of):
            if status == "done":
                results[gid] = _collect(box.outdir, by_id[gid], inputs_of, records)
            else:
                results[gid] = evaluate(by_id[gid], inputs_of, {}, {}, status, why)
            pending.remove(gid)


def _collect(out_dir, group: Group, inputs_of: dict, records: dict) -> GroupResult:
    """A finished group's result from what the runner left (read as hostile data), its import record
    added to ``records``."""
    outputs, errors, problem = read_outputs(out_dir, group.grade_id)
    why = f"{problem}: 0 points for this group" if problem else ""
    result = evaluate(group, inputs_of, outputs, errors, "error" if problem else "ok", why)
    result.wall_s = _marker_span(out_dir, group.grade_id)
    seen = policy.read_records(out_dir, [group.grade_id])
    records["imports"] += seen["imports"]
    records["globals"].update(seen["globals"])
    return result


def _watch(running, out_dir, pending: list, budget_of: dict):
    """Follow one runner over the ``pending`` groups: yield ``(grade_id, "done", "")`` for each group it
    finishes, and, when it must stop, ``(grade_id, status, why)`` for the group (or groups) that cost.
    Ends once every pending group is accounted for, or the runner ended (then it starts again on the rest)."""
    left, clock, current = list(pending), Clock(running), None
    while left:
        # Whether the runner has ended, asked *before* looking for finished groups: what it finished
        # before it ended is then seen below, never taken for a crash of the group it finished last.
        exited = running.poll() is not None
        for gid in [g for g in left if untrusted.present(out_dir / f"{g}.done")]:
            left.remove(gid)
            current = None if current == gid else current
            yield gid, "done", ""
        started = next((g for g in left if untrusted.present(out_dir / f"{g}.start")), None)
        if started and started != current:
            current = started
            clock.restart()
        stop = _stop(running, exited, clock, current, left, budget_of) if left else None
        if stop is not None:
            running.kill()
            status, why, gids = stop
            for gid in gids:
                yield gid, status, why
            return
        time.sleep(0.05)
    running.kill()


def _stop(running, exited: bool, clock: Clock, current: str | None, left: list, budget_of: dict):
    """``(status, why, groups)`` when the runner must stop (a group past its budget, the process gone,
    no start in time), else None."""
    if current is not None:
        budget = budget_of[current]
        if clock.charged() > budget:
            return "timeout", f"timed out: still running after {budget:.0f} s (an infinite loop, or far too slow)", [current]
        if clock.wall() > WALL_FACTOR * budget:
            return "timeout", (f"timed out: still running after {clock.wall():.0f} s of wall-clock time, "
                               f"{WALL_FACTOR:g} times its budget of {budget:.0f} s (waiting, or sleeping)"), [current]
    if exited:
        res = running.result(False)
        if current is not None:
            return "crash", _crash_message(res.returncode, res.stderr), [current]
        # Died before its first group: nothing can run.
        return "crash", "the checks could not start: " + _crash_message(res.returncode, res.stderr), list(left)
    if current is None and (clock.charged() > STARTUP_S + 5 or clock.wall() > WALL_FACTOR * STARTUP_S):
        return "timeout", "the checks did not start in time", list(left)
    return None


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

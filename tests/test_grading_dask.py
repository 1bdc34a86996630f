"""``autograde --scheduler`` (grading/autograde/distribute.py) against the local grader, on 127.0.0.1.

A real scheduler and two worker processes, started as on a cluster (``dask scheduler``, ``dask worker
--nworkers 2 --nthreads 1``), grade four samples whose scores differ (hidden checks; the proof
notebook re-run for the perfect sample); a local run grades the same folder into another course.
Both must give the same grades, the same saved results (timings aside) and the same re-run notebook,
and leave no temporary folder. A worker that reports weak isolation (a ``LocalCluster`` started with
``HW4_TEST_FORCE_ISOLATION=limits``, test only) is refused by default and flags each student it
grades under ``allow_weak_isolation``; a worker with another kit is refused.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from grading.autograde import deadlines, distribute
from grading.autograde.gradebook import load_results
from grading.autograde.job import Settings, autograde
from grading.autograde.notebooks import rerun_dir
from grading.autograde.sandbox import isolation
from grading.nbgrader.course_root import ASSIGNMENT, clone
from grading.samples import samples

from .test_grading_release import shared_release

pytestmark = pytest.mark.slow
STUDENTS = ("perfect", "release", "bug-fc-db", "bug-conv-dw")
EXECUTED, NOTEBOOK = "perfect", "06_conv_backward_proof"
FULL = isolation()["level"] == "full"        # the workers run on this machine: they give what it gives
WEAK = distribute.WEAK_FLAG.format(level="limits")


def _settings(course: Path, **kwargs) -> Settings:
    given = dict(workers=2, execute=True, notebooks=(NOTEBOOK,), execute_students=(EXECUTED,), cell_timeout=60,
                 notebook_budget=300, nbgrader_feedback=False)
    return Settings(course=course, **{**given, **kwargs})


def _dask(args: list, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "dask", *args], env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(procs: list) -> None:
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A temp folder of our own for this process, its pool and the workers; no late policy (these
    runs grade code, not punctuality: tests/test_grading_late_run.py has it)."""
    tmp = Path(tempfile.mkdtemp(prefix="dask-run-tmp-"))
    os.chmod(tmp, 0o711)
    policy = tmp_path_factory.mktemp("policy") / "no_deadline.toml"
    policy.write_text("# no [deadline] table: no late penalty\n")
    patch = pytest.MonkeyPatch()
    patch.setenv(deadlines.POLICY_ENV, str(policy))
    patch.setenv("TMPDIR", str(tmp))
    patch.setattr(tempfile, "tempdir", str(tmp))
    yield {"tmp": tmp, "vars": {**os.environ, "OMP_NUM_THREADS": "1"}}
    patch.undo()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory, env):
    """``dask scheduler`` and ``dask worker --nworkers 2`` on 127.0.0.1, as separate processes."""
    from distributed import Client

    base = tmp_path_factory.mktemp("dask")
    info, log = base / "scheduler.json", base / "dask.log"
    (base / "space").mkdir()
    procs = [_dask(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                    str(info)], {**env["vars"], "TMPDIR": str(base / "space")}, log)]  # its scratch space
    try:
        deadline = time.monotonic() + 120
        while not info.exists() and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.2)
        assert info.exists(), log.read_text()
        address = json.loads(info.read_text())["address"]
        procs.append(_dask(["worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
                            "--no-dashboard", "--local-directory", str(base / "space")], env["vars"], log))
        with Client(address, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        _stop(procs)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, env, scheduler):
    shared = shared_release(tmp_path_factory)
    base = tmp_path_factory.mktemp("dask-grading")
    made = {s.student: s for s in samples(shared["folder"])}
    subs = base / "submissions"
    for student in STUDENTS:
        for rel, data in made[student].files.items():
            (subs / student / ASSIGNMENT / rel).parent.mkdir(parents=True, exist_ok=True)
            (subs / student / ASSIGNMENT / rel).write_bytes(data)
    local, remote = clone(shared["course"], base / "local"), clone(shared["course"], base / "remote")
    results = {"local": autograde(subs, _settings(local), log=lambda *a: None)}
    logged = []
    results["remote"] = autograde(subs, _settings(remote, scheduler=scheduler, allow_weak_isolation=not FULL),
                                  log=logged.append)
    return {"local": local, "remote": remote, "subs": subs, "logged": logged, "shared": shared,
            "results": {k: {r.student: r for r in v} for k, v in results.items()}}


def _grades(course: Path) -> dict:
    with open(course / "grades.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def _comparable(saved: dict) -> dict:
    """A saved result without what differs from run to run: timings and the rerun's printed text."""
    out = {k: v for k, v in saved.items() if k not in ("wall_s", "checks_s")}
    out["groups"] = {gid: {k: v for k, v in g.items() if k != "wall_s"} for gid, g in saved["groups"].items()}
    out["notebooks"] = [(n["name"], n["status"], n["message"], [(h["id"], h["verdict"]) for h in n["headlines"]])
                        for n in saved["notebooks"]]
    # Where it was graded differs: "on a Dask worker" or here; both flags say the isolation was weak.
    out["flags"] = [f for f in saved["flags"] if not f.startswith("isolation:")]
    return out


def test_the_cluster_gives_the_local_grades(graded):
    local, remote = _grades(graded["local"]), _grades(graded["remote"])
    assert sorted(local) == sorted(remote) == sorted(STUDENTS)
    for student in STUDENTS:
        assert {k: v for k, v in remote[student].items() if k != "flags"} == \
               {k: v for k, v in local[student].items() if k != "flags"}, student
    totals = {s: float(local[s]["total"]) for s in STUDENTS}
    assert len(set(totals.values())) == len(STUDENTS) and max(totals, key=totals.get) == "perfect", totals


def test_the_cluster_saves_the_local_results(graded):
    local, remote = load_results(graded["local"]), load_results(graded["remote"])
    for student in STUDENTS:
        assert _comparable(remote[student]) == _comparable(local[student]), student


def test_weak_workers_flag_every_student_or_none(graded):
    flags = {s: r.flags for s, r in graded["results"]["remote"].items()}
    if FULL:
        assert all(WEAK not in f for f in flags.values()), flags
    else:
        assert all(WEAK in f for f in flags.values()), flags
        assert all(WEAK in row["flags"] for row in _grades(graded["remote"]).values())
        assert any("isolation on the Dask workers: limits on 2" in line for line in graded["logged"]), graded["logged"]
    assert all(WEAK not in r.flags for r in graded["results"]["local"].values())


def test_the_rerun_notebook_is_written_on_the_coordinator(graded):
    runs = {}
    for name in ("local", "remote"):
        folder = rerun_dir(graded[name])
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.ipynb")) == \
            [f"{EXECUTED}/{NOTEBOOK}.ipynb"], name
        nb = nbformat.read(folder / EXECUTED / f"{NOTEBOOK}.ipynb", as_version=4)
        errors = [o.get("ename") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if o.get("output_type") == "error"]
        runs[name] = ([(c.cell_type, c.source) for c in nb.cells], errors,
                      [(r.name, r.status) for r in graded["results"][name][EXECUTED].notebooks])
    assert runs["remote"] == runs["local"]
    assert runs["local"][1:] == ([], [(NOTEBOOK, "ok")])


def test_the_runs_leave_no_temporary_folder(graded, env):
    assert sorted(p.name for p in env["tmp"].iterdir()) == []


# --- a worker that looks weak, or runs another kit ----------------------------------------------

@pytest.fixture(scope="module")
def weak_cluster(env):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                      env={distribute.FORCE_ENV: "limits", "TMPDIR": str(env["tmp"])}) as cluster:
        yield cluster


def test_a_weak_worker_is_refused_before_anything_is_written(graded, weak_cluster, tmp_path):
    course = clone(graded["shared"]["course"], tmp_path / "course")
    with pytest.raises(SystemExit) as exc:
        autograde(graded["subs"], _settings(course, scheduler=weak_cluster.scheduler_address, allow_weak_isolation=False),
                  log=lambda *a: None)
    message = str(exc.value)
    worker = next(iter(weak_cluster.scheduler_info["workers"]))
    assert "do not give full sandbox isolation" in message and worker in message and "--allow-weak-isolation" in message
    assert not any((course / "submitted").glob("*/")), "intake ran before the refusal"


def test_a_weak_worker_grades_flagged_when_allowed(graded, weak_cluster, tmp_path):
    course = clone(graded["shared"]["course"], tmp_path / "course")
    results = autograde(graded["subs"], _settings(course, scheduler=weak_cluster.scheduler_address, execute=False,
                                                  allow_weak_isolation=True, students=("bug-fc-db",)),
                        log=lambda *a: None)
    assert [r.flags for r in results] == [[WEAK]]
    row = _grades(course)["bug-fc-db"]
    assert WEAK in row["flags"] and row["total"] == _grades(graded["local"])["bug-fc-db"]["total"]


def test_a_worker_with_another_kit_is_refused(graded, weak_cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(distribute, "kit_fingerprint", lambda: {"kit": "another"})
    course = clone(graded["shared"]["course"], tmp_path / "course")
    with pytest.raises(SystemExit, match="another version of the kit"):
        autograde(graded["subs"], _settings(course, scheduler=weak_cluster.scheduler_address,
                                            allow_weak_isolation=True), log=lambda *a: None)

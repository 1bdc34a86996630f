"""``python -m grading autograde DIR --scheduler ADDRESS``: grade on the workers of a Dask cluster.

The split is the local grader's (job.py), with the network between its two halves:

* **coordinator** (this process and its local pool of ``--workers`` processes; trusted, owns the
  course folder): intake, then per submission :func:`job.prepare` (nbgrader's sanitizing, which
  writes the gradebook, and the submission as graded), packed as one in-memory tar: the composed
  submission, the student's autograded notebooks, the course's source notebooks (which cells are
  headlines) and, with ``--reuse-checks``, the saved results. Then one Dask task per submission;
* **worker** (trusted too: the kit at the coordinator's version; student code runs only in its
  sandbox): :func:`_grade_remote` unpacks into a temp folder of its own, a course folder holding only
  that, and runs :func:`job.grade_submission` with ``prepared=True``: the same hidden checks and
  notebook runs in the same sandbox as a local run. It returns the picklable ``StudentResult``, the
  re-run notebooks (a tar) and what it says of itself (:func:`worker_profile`), and removes its folder;
* **coordinator** again: writes the re-run notebooks to ``<course>/rerun/<student>/``, then goes on as
  a local run does (scores into the gradebook, saved results, feedback, grade files). Only it writes
  the gradebook and the course folder, so the folder after a Dask run is the one a local run leaves.

Before anything is written, :class:`Cluster` asks every connected worker for :func:`worker_profile`:
a worker with another version of the kit or of Python, NumPy or PyTorch is refused (its scores
could differ); a worker without ``full`` isolation (grading/autograde/sandbox.py) is refused unless
``allow_weak`` (``--allow-weak-isolation``), and then every student it grades is flagged
(:data:`WEAK_FLAG`, in ``grades.csv``'s flags and the summary). Without ``allow_weak`` the tasks go to
the vetted workers only: workers that join later take no part in the run.

Nothing here imports :mod:`.job` (job imports this module): ``prepare`` and ``grade`` are passed in.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import os
import platform
import shutil
import socket
import tarfile
import tempfile
import uuid
from concurrent.futures import as_completed as local_completed
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from course.registry import load as load_registry
from hwlib.progress import progress

from ..nbgrader.course_root import ASSIGNMENT
from .gradebook import results_dir
from .notebooks import rerun_dir
from .sandbox import isolation

__all__ = ["Cluster", "worker_profile", "kit_fingerprint", "FORCE_ENV", "WEAK_FLAG"]

# Test-only: a worker started with this variable set to "namespaces" or "limits" reports that level
# (if weaker than its own), to test refusal and flags where every worker has full isolation. It can
# only make a worker look weaker, never stronger. Its sandboxes stay what they are.
FORCE_ENV = "HW4_TEST_FORCE_ISOLATION"
LEVELS = ("limits", "namespaces", "full")            # weakest first (sandbox.py)
WEAK_FLAG = "isolation: graded on a Dask worker without full isolation ({level})"
CONNECT_S, WAIT_S = 15, 60                            # for the scheduler to answer; for a first worker
PACKAGES = ("grading", "hwlib", "course")             # the kit: the same on the coordinator and every worker


@lru_cache(maxsize=1)
def kit_fingerprint() -> dict:
    """The kit's code, questions and profile (a hash; not course.toml's deadlines, which only the
    coordinator reads) and the versions that make a score: they must be equal on every machine."""
    digest = hashlib.sha256(load_registry().profile.encode())
    for package in PACKAGES:
        root = Path(importlib.util.find_spec(package).submodule_search_locations[0])
        for path in sorted(p for p in root.rglob("*") if "__pycache__" not in p.parts and (
                p.suffix == ".py" or (package == "course" and p.parent.name == "questions" and p.suffix == ".toml"))):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode() + path.read_bytes())
    versions = {"python": platform.python_version()}
    for name in ("numpy", "torch", "nbgrader", "nbclient"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"kit": digest.hexdigest()[:16], **versions}


def worker_profile() -> dict:
    """What a worker says of itself: its isolation ``level`` and ``reason``, its ``host`` and ``kit``."""
    info = isolation()
    level, reason = info["level"], info["reason"]
    forced = os.environ.get(FORCE_ENV, "")
    if forced in LEVELS[:-1] and LEVELS.index(forced) < LEVELS.index(level):
        level, reason = forced, f"forced by ${FORCE_ENV} (tests only)"
    return {"level": level, "reason": reason, "host": socket.gethostname(), "kit": kit_fingerprint()}


# --- moving files: in-memory tars -----------------------------------------------------------

def _pack(entries: list[tuple[str, Path]]) -> bytes:
    """A gzipped tar of ``(name in the tar, file or folder)`` pairs; missing ones are left out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, path in entries:
            if path.exists():
                tar.add(path, arcname=name)
    return buffer.getvalue()


def _unpack(blob: bytes, dest: Path, under: str = "") -> None:
    """Extract a :func:`_pack` tar into ``dest``: plain files and folders only, all below ``under``."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        stray = [m.name for m in tar.getmembers() if not f"{m.name}/".startswith(under)]
        if stray:
            raise ValueError(f"unexpected entries (not under {under!r}): {stray[:5]}")
        tar.extractall(dest, filter="data")


def _prepare(prepare, course: Path, student: str, run_dir: Path, reuse_checks: bool) -> tuple[list, bytes]:
    """Coordinator, in its local pool: ``prepare`` (job.prepare), then what the worker needs, packed."""
    workdir = run_dir / student
    try:
        problems = prepare(course, student, workdir)
        autograded = course / "autograded" / student / ASSIGNMENT
        entries = [(f"run/{student}/submission", workdir / "submission"),
                   (f"course/autograded/{student}/{ASSIGNMENT}", autograded)]
        entries += [(f"course/source/{ASSIGNMENT}/{nb.name}", course / "source" / ASSIGNMENT / nb.name)
                    for nb in sorted(autograded.glob("*.ipynb"))]
        if reuse_checks:
            entries.append((f"course/results/{student}.json", results_dir(course) / f"{student}.json"))
        return problems, _pack(entries)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _grade_remote(grade, student: str, slot: int, settings, problems: list, bundle: bytes):
    """Worker: unpack, ``grade`` (job.grade_submission, prepared) in a course folder of its own, pack
    the re-run notebooks; return ``(StudentResult, re-runs tar, worker_profile())``."""
    profile = worker_profile()
    tmp = Path(tempfile.mkdtemp(prefix="hw4-dask-"))
    try:
        _unpack(bundle, tmp)
        (tmp / "run").mkdir(exist_ok=True)
        for folder in (tmp, tmp / "run"):   # sandbox uids may traverse to their own folder, nothing more
            os.chmod(folder, 0o711)
        course = tmp / "course"
        result = grade(student, slot, replace(settings, course=course), tmp / "run", problems, prepared=True)
        return result, _pack([(f"rerun/{student}", rerun_dir(course) / student)]), profile
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- the coordinator's side -------------------------------------------------------------------

class Cluster:
    """A client of the Dask scheduler at ``address`` whose workers passed :func:`worker_profile`'s
    checks (else ``SystemExit``, before the run writes anything). Close it (or use ``with``)."""

    def __init__(self, address: str, allow_weak: bool = False, log=print):
        from distributed import Client

        self.address, self.allow_weak = address, allow_weak
        try:
            self.client = Client(address, timeout=f"{CONNECT_S}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SystemExit(f"--scheduler: no Dask scheduler answers at {address}: {exc}") from None
        try:
            self.profiles = self._vet(log)
        except BaseException:
            self.client.close()
            raise
        self.workers = None if allow_weak else sorted(self.profiles)

    def _vet(self, log) -> dict:
        try:
            self.client.wait_for_workers(1, timeout=WAIT_S)
        except TimeoutError:
            raise SystemExit(f"--scheduler: no worker joined {self.address} in {WAIT_S} s: start some "
                             f"(`dask worker {self.address} --nthreads 1`, grading/README.md)") from None
        try:
            profiles = self.client.run(worker_profile)
        except Exception as exc:  # whatever a worker raised: most often, no kit in its Python
            raise SystemExit(f"--scheduler: a worker of {self.address} could not describe itself "
                             f"({type(exc).__name__}: {exc}); is the kit installed in the workers' Python?") from None
        ours = kit_fingerprint()
        other = {a: p for a, p in profiles.items() if p["kit"] != ours}
        if other:
            raise SystemExit("--scheduler: refused: these workers run another version of the kit or of its "
                             f"dependencies (here: {ours}):\n" + "".join(f"  {a} ({p['host']}): {p['kit']}\n"
                                                                          for a, p in sorted(other.items()))
                             + "install the coordinator's version there (same checkout, same environment)")
        weak = {a: p for a, p in profiles.items() if p["level"] != "full"}
        if weak and not self.allow_weak:
            raise SystemExit("--scheduler: refused: these Dask workers do not give full sandbox isolation:\n"
                             + "".join(f"  {a} ({p['host']}): {p['level']}: {p['reason']}\n"
                                       for a, p in sorted(weak.items()))
                             + "install bubblewrap there (root, or unprivileged user namespaces; `python -m grading "
                               "isolation` on the node says what is missing), stop those workers, or pass "
                               "--allow-weak-isolation to grade there anyway (each student graded there is flagged)")
        for level in sorted({p["level"] for p in profiles.values()}, key=LEVELS.index):
            at = sorted(a for a, p in profiles.items() if p["level"] == level)
            log(f"isolation on the Dask workers: {level} on {len(at)}: {', '.join(at)}"
                + (" (students graded there are flagged)" if level != "full" else ""))
        return profiles

    def grade(self, students: list[str], settings, problems: dict, run_dir: Path, pool, prepare, grade) -> list:
        """Grade ``students`` (in this order): ``prepare`` (job.prepare) each in the local ``pool``, then
        ``grade`` (job.grade_submission) on the workers; write the re-runs; return the StudentResults."""
        from distributed import as_completed

        course = Path(settings.course)
        token = uuid.uuid4().hex[:8]
        bar = progress(total=len(students), desc="autograde", unit="submission")
        prepared = {pool.submit(_prepare, prepare, course, student, run_dir, settings.reuse_checks): (slot, student)
                    for slot, student in enumerate(students, start=1)}
        remote = []
        for fut in local_completed(prepared):
            slot, student = prepared[fut]
            found, bundle = fut.result()
            remote.append(self.client.submit(_grade_remote, grade, student, slot, settings, problems[student] + found,
                                             bundle, key=f"hw4-grade-{student}-{token}", pure=False,
                                             workers=self.workers, allow_other_workers=False))
        results = []
        for fut in as_completed(remote, loop=self.client.loop):
            result, reruns, profile = fut.result()
            fut.release()
            if profile["kit"] != kit_fingerprint() or (profile["level"] != "full" and not self.allow_weak):
                raise SystemExit(f"--scheduler: {result.student} was graded on a worker that fails the checks "
                                 f"(it joined after them: {profile}); no result of this run was recorded")
            _unpack(reruns, course, f"rerun/{result.student}/")
            if profile["level"] != "full":   # the worker's own flag (job.py) says less: where it was graded
                result.flags = [f for f in result.flags if not f.startswith("isolation:")]
                result.flags.append(WEAK_FLAG.format(level=profile["level"]))
            results.append(result)
            bar.update(1)
        bar.close()
        return results

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Cluster({self.address!r}, workers={len(self.profiles)}, allow_weak={self.allow_weak})"

"""grading/autograde/sandbox.py on bubblewrap: what a sandboxed process can and cannot do.

The sandbox tests run where bubblewrap gives a sandbox (skipped elsewhere, but under ``CI=true`` a
missing bubblewrap fails :func:`test_bubblewrap_is_installed_in_ci`). As root they also run the
sandbox as an unprivileged user, the path a cluster node without root takes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from course.paths import REPO
from grading.autograde import isolation as isolation_module
from grading.autograde.compose import BLOCKED_PACKAGE
from grading.autograde.isolation import BLOCKER
from grading.autograde.sandbox import Limits, Sandbox, isolation
from grading.autograde.seccomp_filter import DENIED, bindings

LEVEL = isolation()["level"]
contained = pytest.mark.skipif(LEVEL not in ("full", "namespaces"),
                               reason=f"no bubblewrap sandbox here: {isolation()['reason']}")
full = pytest.mark.skipif(LEVEL != "full", reason=f"no full isolation here: {isolation()['reason']}")
NOBODY = 65534
AS_NOBODY = {"user": NOBODY, "group": NOBODY, "extra_groups": []}     # subprocess: run as an unprivileged uid


def test_bubblewrap_is_installed_in_ci():
    """CI must grade with full isolation: bubblewrap (.ci/run installs it) and the seccomp filter."""
    if os.environ.get("CI") != "true" and LEVEL != "full":
        pytest.skip(f"not CI, and no full isolation here: {isolation()['reason']}")
    assert shutil.which("bwrap"), "bubblewrap is missing: apt-get install bubblewrap"
    info = isolation()
    assert info["level"] == "full", info
    assert info["tool"].startswith("bubblewrap") and all(info[k] for k in ("filesystem", "network", "pid", "seccomp"))


def test_isolation_command_reports_the_level():
    out = subprocess.run([sys.executable, "-m", "grading", "isolation"], cwd=REPO, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    report = {key: value.strip() for key, _, value in (line.partition(":") for line in out.splitlines())}
    assert report["level"] == LEVEL and set(report) >= {"tool", "filesystem", "network", "pid", "seccomp", "uid", "reason"}


def test_probe_and_runs_leave_no_temporary_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    isolation_module.probe.cache_clear()
    try:
        assert isolation()["level"] == LEVEL
    finally:
        isolation_module.probe.cache_clear()
    work = tmp_path / "work"
    work.mkdir()
    box = Sandbox(work, slot=5, tools=work, mode=LEVEL)
    res = box.run([sys.executable, "-I", "-S", "-c", "print('hello')"], timeout=60)
    box.close()
    assert res.stdout.strip() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def _probed_with(monkeypatch, owner, name, value) -> dict:
    """isolation() re-probed with ``owner.<name>`` replaced (then put back, and the cache cleared)."""
    monkeypatch.setattr(owner, name, value)
    isolation_module.probe.cache_clear()
    try:
        return isolation()
    finally:
        monkeypatch.undo()
        isolation_module.probe.cache_clear()


def test_without_bubblewrap_the_level_says_so_and_the_limits_hold(tmp_path, monkeypatch):
    real_which = shutil.which
    info = _probed_with(monkeypatch, shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k))
    assert info["level"] == "limits" and "apt-get install bubblewrap" in info["reason"], info
    box = Sandbox(tmp_path, slot=6, tools=tmp_path, mode="limits", limits=Limits(memory_bytes=2 << 30))
    res = box.run([sys.executable, "-I", "-S", "-c", "b = bytearray(8 << 30)"], timeout=60)
    assert res.returncode != 0 and "MemoryError" in res.stderr


@contained
def test_without_libseccomp_bindings_the_level_is_namespaces(monkeypatch):
    def unavailable():
        raise isolation_module.SeccompUnavailable("no libseccomp bindings: pip install pyseccomp")
    info = _probed_with(monkeypatch, isolation_module, "seccomp_program", unavailable)
    assert info["level"] == "namespaces" and "pip install pyseccomp" in info["reason"], info
    assert info["filesystem"] and info["network"] and info["pid"] and not info["seccomp"]


@pytest.fixture
def box(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    os.chmod(tmp_path, 0o711)
    os.chmod(run, 0o711)
    work = run / "student"
    (work / "submission").mkdir(parents=True)
    (work / "submission" / "mine.txt").write_text("my own file")
    (run / "other").mkdir()
    (run / "other" / "secret.txt").write_text("another student's file")
    tools = run / "tools"
    tools.mkdir()
    (tools / BLOCKER).write_text(BLOCKED_PACKAGE)
    sandbox = Sandbox(work, slot=900 + os.getpid() % 50, tools=tools, limits=Limits(memory_bytes=2 << 30))
    yield sandbox
    sandbox.close()


def run_py(box, code, timeout=60):
    return box.run([sys.executable, "-I", "-S", "-c", code], timeout=timeout)


@contained
def test_sees_only_its_folder_and_the_system(box):
    code = f"""
import os
print("uid", os.getuid(), "cwd", os.getcwd())
for p in [{str(REPO / 'hwlib' / 'layers.py')!r}, {str(REPO / 'course' / 'questions' / 'q1_layers.toml')!r},
          {str(box.workdir.parent / 'other' / 'secret.txt')!r}, "/root/.bash_history"]:
    try:
        open(p).read(); print("READ", p)
    except OSError as exc:
        print("blocked", type(exc).__name__)
print(open("submission/mine.txt").read())
"""
    res = run_py(box, code)
    assert res.returncode == 0, res.stderr
    assert "READ" not in res.stdout
    assert "my own file" in res.stdout and f"uid {box.uid} cwd /sandbox" in res.stdout
    assert box.uid != 0


@contained
def test_no_network_no_writes_outside(box, tmp_path):
    marker = tmp_path / "outside.txt"
    code = f"""
import socket
print(sorted(name for _, name in socket.if_nameindex()))
for addr in [("1.1.1.1", 53), ("127.0.0.1", 22)]:
    try:
        socket.create_connection(addr, timeout=2); print("CONNECTED", addr)
    except OSError:
        pass
for p in [{str(marker)!r}, {str(REPO / 'PWNED')!r}, "/etc/pwned", "/pwned", "/job/pwned", "/grader/pwned",
          "/sandbox/submission/ok.txt", "/out/ok.txt", "/tmp/ok.txt"]:
    try:
        open(p, "w").write("x"); print("WROTE", p)
    except OSError:
        pass
"""
    res = run_py(box, code)
    assert res.returncode == 0, res.stderr
    assert "CONNECTED" not in res.stdout
    assert res.stdout.strip().splitlines() == ["['lo']", "WROTE /sandbox/submission/ok.txt", "WROTE /out/ok.txt",
                                               "WROTE /tmp/ok.txt"]
    assert not marker.exists() and not (REPO / "PWNED").exists() and not (box.jobdir / "pwned").exists()
    # It wrote into a copy of the folder: the trusted side's own copy never changes.
    assert (box.rundir / "submission" / "ok.txt").read_text() == "x"
    assert not (box.workdir / "submission" / "ok.txt").exists()
    assert (box.outdir / "ok.txt").read_text() == "x"


@contained
def test_every_run_starts_from_a_fresh_copy_and_what_it_plants_stays_there(box):
    """A link or pipe one run plants is gone in the next, and never in a folder the trusted side writes."""
    plant = ("import os\n"
             "os.symlink('/etc/passwd', '/sandbox/submission/mine.txt.link'); os.mkfifo('/out/result.npz')\n"
             "print(sorted(os.listdir('/sandbox/submission')), sorted(os.listdir('/out')))")
    first = run_py(box, plant)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "['mine.txt', 'mine.txt.link'] ['result.npz']"
    second = run_py(box, "import os; print(sorted(os.listdir('/sandbox/submission')), os.listdir('/out'))")
    assert second.stdout.strip() == "['mine.txt'] []", second.stderr
    assert sorted(p.name for p in (box.workdir / "submission").iterdir()) == ["mine.txt"]


@contained
def test_a_blocked_package_cannot_be_imported_or_loaded(box):
    """What a NumPy-only question's runs get: no torch by any import, nor its shared libraries."""
    code = ("import sys, glob, importlib.util\nsys.path[:] = [p for p in sys.path if p] + SITE\n"
            "print(sorted(glob.glob(SITE[0] + '/torch/**', recursive=True))[:3])\n"
            "print(open(importlib.util.find_spec('torch').origin).read(17))\n"
            "try:\n    import torch\n    print('IMPORTED')\n"
            "except ImportError as exc:\n    print('REFUSED', exc)\n"
            "import numpy; print('numpy', numpy.__version__)\n").replace("SITE", repr(isolation_module.site_packages()))
    res = box.run([sys.executable, "-I", "-S", "-c", code], timeout=120, blocked=("torch",))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    site = isolation_module.site_packages()[0]
    assert lines[0] == repr([f"{site}/torch/", f"{site}/torch/__init__.py"]), lines
    assert lines[1] == "raise ImportError", lines
    assert lines[2].startswith("REFUSED torch cannot be imported here: this question is graded NumPy only"), lines
    assert lines[3].startswith("numpy "), lines
    free = box.run([sys.executable, "-I", "-S", "-c", code.split("try:")[0]], timeout=120)
    assert free.returncode == 0 and len(eval(free.stdout.splitlines()[0])) == 3, free.stdout + free.stderr
    assert free.stdout.splitlines()[1] != "raise ImportError"


@contained
def test_sees_only_its_own_processes(box):
    res = run_py(box, "import os; print(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))")
    assert res.returncode == 0, res.stderr
    pid, pids = res.stdout.split(" ", 1)
    assert int(pid) < 10 and json.loads(pids) == [1, int(pid)], res.stdout   # bubblewrap's init and itself


def _pidns_members(inode: int) -> list[str]:
    """Host pids of the live (not zombie) processes in PID namespace ``inode``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == f"pid:[{inode}]":
                with open(f"/proc/{entry}/stat") as fh:
                    if fh.read().rsplit(")", 1)[1].split()[0] not in "ZX":
                        found.append(entry)
        except OSError:
            continue
    return found


@contained
def test_timeout_kills_the_process_and_its_detached_children(box):
    start = time.monotonic()
    running = box.start([sys.executable, "-I", "-S", "-c", "import os, time\nif os.fork() == 0:\n    os.setsid()\n"
                         "    if os.fork() == 0:\n        time.sleep(600)\n    os._exit(0)\ntime.sleep(600)"], timeout=3)
    time.sleep(1)
    running._read_info()
    inode = running.sandbox_init["pidns"]
    assert len(_pidns_members(inode)) >= 3          # init, the process, its detached grandchild
    res = running.wait()
    assert res.timed_out and time.monotonic() - start < 30
    assert not _pidns_members(inode), "processes of the sandbox survived"


@contained
def test_memory_and_process_limits(box):
    res = run_py(box, "b = bytearray(8 << 30)")
    assert res.returncode != 0 and "MemoryError" in res.stderr
    code = ("import os, time\nn = 0\ntry:\n    for _ in range(500):\n        if os.fork() == 0:\n"
            "            time.sleep(30)\n            os._exit(0)\n        n += 1\nexcept OSError as exc:\n"
            "    print('stopped after', n, exc.errno)\n")
    res = run_py(box, code)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:2] == ["stopped", "after"] and int(res.stdout.split()[2]) < box.limits.processes
    assert int(res.stdout.split()[3]) == errno.EAGAIN


@contained
def test_a_crash_reads_as_a_signal(box):
    res = run_py(box, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert res.returncode == -11, (res.returncode, res.stderr)
    assert run_py(box, "import os; os._exit(3)").returncode == 3


# What each denied call gets, and a few that must still work (threads, fork, subprocess).
SECCOMP_PROBE = """
import ctypes, errno, json, os, subprocess, sys, threading
NUMBERS = {}
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(name, *args):
    nr = NUMBERS[name]
    if nr < 0:
        return None
    ctypes.set_errno(0)
    ret = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    if ret == 0 and name == "clone":
        os._exit(0)          # only were the filter missing: the child of a raw clone leaves at once
    return ctypes.get_errno() if ret == -1 else "ok"
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
t = threading.Thread(target=lambda: None); t.start(); t.join()
pid = os.fork()
if pid == 0:
    os._exit(7)
forked = os.waitpid(pid, 0)[1] >> 8
echoed = subprocess.run(["/bin/echo", "hi"], capture_output=True, text=True).stdout.strip()
print(json.dumps({"mode": status["Seccomp"].strip(), "denied": {n: call(n) for n in NUMBERS if n not in ("clone", "clone3")},
                  "clone3": call("clone3"), "clone_newuser": call("clone", 0x10000000 | 17),
                  "forked": forked, "echoed": echoed}))
"""


@full
def test_seccomp_denies_what_grading_never_needs(box):
    sc = bindings()      # libseccomp's table of system call numbers, for this machine's architecture
    names = [n for group in DENIED.values() for n in group] + ["clone", "clone3"]
    numbers = {n: sc.resolve_syscall(sc.system_arch(), n) for n in names}
    res = run_py(box, SECCOMP_PROBE.replace("NUMBERS = {}", f"NUMBERS = {numbers!r}"))
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout.strip().splitlines()[-1])
    assert seen["mode"] == "2"                                     # SECCOMP_MODE_FILTER
    assert {n: e for n, e in seen["denied"].items() if e not in (errno.EPERM, None)} == {}
    assert sum(e == errno.EPERM for e in seen["denied"].values()) >= 40
    assert seen["clone3"] == errno.ENOSYS and seen["clone_newuser"] == errno.EPERM
    assert seen["forked"] == 7 and seen["echoed"] == "hi"


@contained
def test_the_folder_is_private(box):
    res = run_py(box, "print('ran')")
    assert res.stdout.strip() == "ran", res.stderr
    for folder in (box.rundir, box.outdir):
        assert (folder.stat().st_mode & 0o777) == 0o700
        assert folder.stat().st_uid == box.uid
    assert box.jobdir.stat().st_uid == os.getuid() and (box.jobdir.stat().st_mode & 0o777) == 0o755


# --- without root: bubblewrap in an unprivileged user namespace ------------------------------------

UNPRIVILEGED = """
import json, os, sys, tempfile
sys.path[:0] = PATHS
from pathlib import Path
from grading.autograde.sandbox import Sandbox, isolation
info = isolation()
run = Path(tempfile.mkdtemp()); os.chmod(run, 0o711); (run / "w").mkdir()
box = Sandbox(run / "w", slot=1, tools=run / "w")
res = box.run([sys.executable, "-I", "-S", "-c", CODE], timeout=120)
box.close()
print(json.dumps({"info": info, "uid": os.getuid(), "stdout": res.stdout, "stderr": res.stderr[-500:]}))
"""


def _unprivileged_python() -> str | None:
    """A Python that an unprivileged uid can run (the kit's may live under root's home)."""
    for python in (sys.executable, "/usr/bin/python3"):
        try:
            subprocess.run([python, "-I", "-c", "import json"], capture_output=True, check=True, **AS_NOBODY)
            return python
        except (OSError, subprocess.CalledProcessError):
            continue
    return None


@contained
def test_without_root_the_sandbox_holds(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("not root: every other test here already runs the unprivileged path")
    python = _unprivileged_python()
    if python is None:
        pytest.skip("no Python that an unprivileged uid can run here")
    inner = ("import os, socket; print(json.dumps({'uid': os.getuid(), 'pids': os.listdir('/proc'), "
             "'kit': os.path.exists(" + repr(str(REPO / "grading")) + "), 'net': socket.if_nameindex()[0][1]}))")
    code = (UNPRIVILEGED.replace("PATHS", repr([str(REPO)] + isolation_module.site_packages()))
            .replace("CODE", repr("import json\n" + inner)))
    os.chmod(tmp_path, 0o777)
    res = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
                         env={"PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "HOME": str(tmp_path)}, **AS_NOBODY)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["info"]["level"] == LEVEL and not out["info"]["root"], out["info"]
    seen = json.loads(out["stdout"].strip().splitlines()[-1])
    assert seen["uid"] == NOBODY and not seen["kit"] and seen["net"] == "lo", seen
    assert max(int(p) for p in seen["pids"] if p.isdigit()) < 10, seen


def test_grading_below_full_isolation_is_refused_unless_allowed(tmp_path, monkeypatch):
    """No bubblewrap here: autograde stops before anything runs, naming the two ways on."""
    from grading.autograde import job
    weak = {"level": "limits", "reason": "bubblewrap is not installed (apt-get install bubblewrap)"}
    monkeypatch.setattr(job, "isolation", lambda: weak)
    logged = []
    with pytest.raises(SystemExit) as stop:
        job.autograde(tmp_path / "submissions", job.Settings(course=tmp_path / "course", allow_weak_isolation=False),
                      log=logged.append)
    message = str(stop.value)
    assert "apt-get install bubblewrap" in message and "--allow-weak-isolation" in message, message
    assert logged == ["isolation: limits (bubblewrap is not installed (apt-get install bubblewrap))"]
    # Allowed, it goes on (here to the next check: no course released in tmp_path).
    with pytest.raises(SystemExit, match="no released assignment"):
        job.autograde(tmp_path / "submissions", job.Settings(course=tmp_path / "course", allow_weak_isolation=True),
                      log=logged.append)

"""Run student code in isolation: its own process, a private file system view, no network, limits.

Everything that runs inside the student's process can be rewritten by the student's code, so the
sandboxed side only *produces* outputs (arrays, executed notebooks) in its own output folder;
verdicts are computed by the trusted caller, which never imports the submission, writes only into
folders no sandbox can write, and reads what comes back as hostile data (:mod:`.untrusted`).

The sandbox is bubblewrap (``bwrap``: Debian ``bubblewrap``, what Flatpak uses); :mod:`.isolation`
builds its command line and probes what this machine gives. The levels (:func:`isolation` says
which one is active; the autograder prints it):

``full``: new mount, PID, network, IPC and UTS namespaces, a read-only view of the system, the
  Python installation and the environment, the submission's folder at ``/sandbox``, no network, the
  seccomp filter of :mod:`.seccomp_filter`; as root a dedicated uid per submission, otherwise (with
  unprivileged user namespaces) the grader's uid in a user namespace of its own;
``namespaces``: the same without the seccomp filter (no libseccomp bindings here);
``limits`` (no bubblewrap, or it cannot start here): only the limits below, the wall-clock budget,
  a clean environment and ``python -I -S``: the student's code can read what the grader's user can.

Limits at every level: address space, file size, open files, CPU time (``setrlimit``); in a
bubblewrap sandbox also the number of processes, counted per sandbox. Ending a sandbox kills its
PID namespace, so nothing it started outlives it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .isolation import (CONTAINED, DATA_DIR, JOB_DIR, OUT_DIR, SANDBOX_DIR, TOOLS_DIR, bwrap_argv, end_sandbox,
                        probe, seccomp_program, site_packages)

__all__ = ["Limits", "Result", "Sandbox", "Running", "isolation", "site_packages", "copy_regular_files",
           "SANDBOX_DIR", "OUT_DIR", "JOB_DIR", "UID_BASE", "remove_tree"]

UID_BASE = 62000               # sandbox uids as root: UID_BASE + block of the process + slot (no such users)
_SLOTS = 1000                  # uids per grading process
INFO = "bwrap-info.json"       # what bubblewrap says of the sandbox it made (its init's pid, namespaces)


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process (and its children)."""

    memory_bytes: int = 6 << 30      # RLIMIT_AS: PyTorch maps a lot of address space on import
    file_bytes: int = 256 << 20      # RLIMIT_FSIZE: largest file it may write (stdout included)
    processes: int = 64              # RLIMIT_NPROC inside the sandbox (no fork bombs)
    tmp_bytes: int = 256 << 20       # size of the private /tmp and /dev/shm
    open_files: int = 512


@dataclass
class Result:
    returncode: int | None           # negative: killed by that signal
    timed_out: bool
    wall_s: float
    stdout: str = ""
    stderr: str = ""


def _set_limits(limits: Limits, cpu_s: int) -> None:
    """Between fork and exec (of bwrap, or of the command itself at level ``limits``)."""
    for res, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_FSIZE, limits.file_bytes),
                       (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0),
                       (resource.RLIMIT_CPU, cpu_s)):
        resource.setrlimit(res, (value, value))


class Sandbox:
    """Sandboxes around one submission: ``workdir`` holds the submission as graded (``submission/``).

    ``workdir`` itself is never shown to student code: every :meth:`start` runs on a fresh copy of it
    (``<workdir>.run``, at ``/sandbox``), with an empty output folder (``<workdir>.out``, at
    ``/out``, the only other place it can write) and the job (``jobdir``: ``<workdir>.job``, at
    ``/job``, read-only). So the trusted side writes only into ``jobdir`` and ``workdir``, which no
    sandbox can write, never through a link the student's code planted; it reads the output folder
    back with :mod:`.untrusted` only; and nothing one run leaves behind (a planted link, a stolen
    module) reaches the next run.

    ``slot`` picks the uid as root (``UID_BASE + slot``): give concurrent sandboxes different slots.
    ``tools`` is a folder of sandbox-side scripts, mounted read-only at ``/grader``; ``data_root``
    is mounted read-only at ``/data``. ``mode`` forces a level (default: :func:`isolation`'s).
    """

    def __init__(self, workdir: Path, *, slot: int, tools: Path, limits: Limits = Limits(),
                 data_root: Path | None = None, mode: str | None = None):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tools = Path(tools).resolve()
        self.limits = limits
        self.data_root = Path(data_root).resolve() if data_root else None
        self.mode = mode or isolation()["level"]
        self.contained = self.mode in CONTAINED
        # As root, each grading process gets its own block of uids: sandboxes of two processes (two
        # pytest workers, two autograde runs) never share one. Otherwise the grader's own uid.
        self.privileged = self.contained and os.geteuid() == 0
        self.uid = UID_BASE + (os.getpid() % 10_000) * _SLOTS + slot % _SLOTS if self.privileged else os.getuid()
        self.jobdir = self.workdir.with_name(self.workdir.name + ".job")
        self.rundir = self.workdir.with_name(self.workdir.name + ".run")
        self.outdir = self.workdir.with_name(self.workdir.name + ".out")
        self.jobdir.mkdir(mode=0o755, exist_ok=True)
        os.chmod(self.jobdir, 0o755)                  # readable by the sandbox's uid, writable by us only
        self.blocked: tuple = ()                      # top-level packages the next start cannot import
        self.binds: tuple = ()                        # (host folder, sandbox path): extra read-only binds
        self._started: list[Running] = []
        self._own_dirs: list[Path] = [self.jobdir]

    def side_dir(self, name: str) -> Path:
        """A folder beside ``workdir`` (``<workdir>.<name>``) for the trusted side, never visible to a
        sandbox unless passed in ``binds``; removed by :meth:`close`."""
        folder = self.workdir.with_name(f"{self.workdir.name}.{name}")
        folder.mkdir(exist_ok=True)
        self._own_dirs.append(folder)
        return folder

    # Paths as the sandboxed process sees them.
    @property
    def root(self) -> str:
        return SANDBOX_DIR if self.contained else str(self.rundir)

    @property
    def out_path(self) -> str:
        return OUT_DIR if self.contained else str(self.outdir)

    @property
    def job_path(self) -> str:
        return JOB_DIR if self.contained else str(self.jobdir)

    @property
    def tools_path(self) -> str:
        return TOOLS_DIR if self.contained else str(self.tools)

    @property
    def data_path(self) -> str | None:
        if self.data_root is None:
            return None
        return DATA_DIR if self.contained else str(self.data_root)

    def write_job(self, name: str, data: bytes) -> Path:
        """Write a file of the job (read-only in the sandbox); return its host path."""
        path = self.jobdir / name
        tmp = self.jobdir / f".{name}.part"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        return path

    def _fresh(self) -> None:
        """A fresh copy of ``workdir`` to run on and an empty output folder (the last run's removed)."""
        for folder in (self.rundir, self.outdir):
            remove_tree(folder)
        shutil.copytree(self.workdir, self.rundir, symlinks=True)
        self.outdir.mkdir()
        if not self.contained:
            return
        for folder in (self.rundir, self.outdir):
            if self.privileged:
                for dirpath, dirnames, filenames in os.walk(folder):
                    os.lchown(dirpath, self.uid, self.uid)
                    for name in dirnames + filenames:
                        os.lchown(os.path.join(dirpath, name), self.uid, self.uid)
            os.chmod(folder, 0o700)

    def refresh(self) -> None:
        """Kept for callers of the old interface: every start is fresh now."""

    def env(self, extra: dict | None = None) -> dict:
        """A clean environment: nothing of the grader's leaks in (no PYTHONPATH, no tokens)."""
        tmp = "/tmp" if self.contained else str(self.rundir / ".tmp")
        if not self.contained:
            Path(tmp).mkdir(exist_ok=True)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
               "MPLCONFIGDIR": f"{tmp}/mpl", "IPYTHONDIR": f"{tmp}/ipython", "JUPYTER_RUNTIME_DIR": f"{tmp}/jrt",
               "JUPYTER_DATA_DIR": f"{tmp}/jdata", "JUPYTER_CONFIG_DIR": f"{tmp}/jconfig",
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
               "HWLIB_QUIET": "1", "NBGRADER_EXECUTION": "autograde", "PYTHONDONTWRITEBYTECODE": "1"}
        if self.data_path:
            env["HWLIB_DATA_ROOT"] = self.data_path
        env.update(extra or {})
        return env

    def python(self, script: str, *args: str) -> list[str]:
        """argv running a sandbox-side script: isolated mode, no site (sys.path is set by the script)."""
        return [sys.executable, "-I", "-S", f"{self.tools_path}/{script}", *args]

    def start(self, argv: list[str], *, timeout: float, env: dict | None = None, log_dir: Path | None = None,
              blocked: tuple = (), binds: tuple = ()):
        """Start ``argv`` in a sandbox on a fresh copy of the folder; return a :class:`Running` handle.

        ``blocked``: top-level packages that cannot be imported there (their folders are hidden);
        ``binds``: ``(host folder, sandbox path)`` pairs mounted read-only for this run only. Without
        ``log_dir`` the output goes to a temporary folder that :meth:`Running.wait` removes once read.
        """
        for running in self._started:
            running.kill()                # one run at a time: its folders are about to be replaced
        self.blocked, self.binds = tuple(blocked), tuple(binds)
        self._fresh()
        own_log = log_dir is None
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="hw4-log-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        info_path = log_dir / INFO
        info_path.unlink(missing_ok=True)
        limits, cpu_s = self.limits, int(timeout) + 5
        fds, command, cwd = [], argv, str(self.rundir)
        with open(log_dir / "stdout.txt", "wb") as out, open(log_dir / "stderr.txt", "wb") as err:
            if self.contained:
                info = os.open(info_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                fds.append(info)
                seccomp = None
                if self.mode == "full":
                    seccomp = os.memfd_create("hw4-seccomp", 0)
                    os.write(seccomp, seccomp_program())
                    os.lseek(seccomp, 0, os.SEEK_SET)
                    fds.append(seccomp)
                command = bwrap_argv(self, argv, info_fd=info, seccomp_fd=seccomp)
                cwd = "/"
            try:
                proc = subprocess.Popen(command, cwd=cwd, env=self.env(env), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, preexec_fn=lambda: _set_limits(limits, cpu_s),
                                        start_new_session=True, close_fds=True, pass_fds=fds)
            finally:
                for fd in fds:
                    os.close(fd)
        running = Running(self, proc, log_dir, timeout, info_path if self.contained else None, own_log)
        self._started.append(running)
        return running

    def run(self, argv: list[str], *, timeout: float, env: dict | None = None, log_dir: Path | None = None,
            blocked: tuple = (), binds: tuple = ()) -> Result:
        """Run ``argv`` to completion (or until ``timeout`` seconds, then kill it)."""
        return self.start(argv, timeout=timeout, env=env, log_dir=log_dir, blocked=blocked, binds=binds).wait()

    def kill_all(self) -> None:
        """End every sandbox this object started: killing a PID namespace's init kills everything in it,
        however the student's processes detached (a new session, a double fork)."""
        for running in self._started:
            running.kill()

    def close(self) -> None:
        """End every sandbox and remove the folders they ran on, the job and the side folders
        (``workdir`` stays: it is the caller's)."""
        self.kill_all()
        for folder in (self.rundir, self.outdir, *self._own_dirs):
            remove_tree(folder)


def remove_tree(folder: Path) -> None:
    """Remove ``folder`` (never following a link in it), also where the student's code took away the
    permissions of its own files; a folder that is not there is fine."""
    def allow(func, path, _exc):
        try:
            parent = os.path.dirname(path)
            os.chmod(parent, 0o700)
            if os.path.isdir(path) and not os.path.islink(path):
                os.chmod(path, 0o700)
            func(path)
        except OSError:
            pass
    if os.path.lexists(folder):
        if os.path.islink(folder) or not os.path.isdir(folder):
            os.unlink(folder)
            return
        shutil.rmtree(folder, onerror=allow)
        if os.path.lexists(folder):   # a second pass after the permissions were given back
            shutil.rmtree(folder, ignore_errors=True)


def isolation() -> dict:
    """Which isolation this machine gives (:func:`.isolation.probe`, once per process)."""
    return probe(Sandbox)


@dataclass
class Running:
    """A process started by :meth:`Sandbox.start`."""

    box: Sandbox
    proc: subprocess.Popen
    log_dir: Path
    timeout: float
    info_path: Path | None = None             # bubblewrap's report (None at level "limits")
    own_log: bool = False                     # log_dir is a temporary folder of ours
    started: float = field(default_factory=time.monotonic)
    sandbox_init: dict = field(default_factory=dict)   # {"pid", "pidns"} once bubblewrap reported them
    killed: bool = False

    def poll(self) -> int | None:
        return self.proc.poll()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _read_info(self) -> None:
        if self.sandbox_init or self.info_path is None:
            return
        try:
            info = json.loads(self.info_path.read_text())
            self.sandbox_init.update(pid=int(info["child-pid"]), pidns=int(info["pid-namespace"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass   # not written yet: bubblewrap dies with its parent's kill below, and its init with it

    def runner_pid(self) -> int | None:
        """The pid (as this side sees it) of the command started: in a bubblewrap sandbox the process
        that is pid 2 of its PID namespace (bubblewrap's init is pid 1); None until it is known."""
        if self.info_path is None:
            return self.proc.pid
        self._read_info()
        if not self.sandbox_init:
            return None
        guess = self.sandbox_init["pid"] + 1              # bubblewrap forks it right after its init
        for pid in [guess] + [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != guess]:
            try:
                if os.readlink(f"/proc/{pid}/ns/pid") != f"pid:[{self.sandbox_init['pidns']}]":
                    continue
                with open(f"/proc/{pid}/status") as fh:
                    nspid = next((line.split()[1:] for line in fh if line.startswith("NSpid:")), [])
                if nspid[-1:] == ["2"]:
                    return pid
            except (OSError, ValueError):
                continue
        return None

    def kill(self) -> None:
        """Kill the sandbox (its PID namespace) and the process group started; once: the ids may be
        reused afterwards."""
        if self.killed:
            return
        self.killed = True
        self._read_info()
        end_sandbox(self.sandbox_init)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()

    def wait(self) -> Result:
        timed_out = False
        try:
            self.proc.wait(timeout=max(0.0, self.timeout - self.elapsed()))
        except subprocess.TimeoutExpired:
            timed_out = True
        self.kill()  # also ends anything the process left behind
        result = self.result(timed_out)
        if self.own_log:
            shutil.rmtree(self.log_dir, ignore_errors=True)
        return result

    def result(self, timed_out: bool) -> Result:
        code = None if timed_out else self.proc.returncode
        # bubblewrap exits with 128 + N when the command was killed by signal N: report it as Popen
        # does (-N), so that a crash reads as one (an exit status above 128 is not used otherwise).
        if self.info_path is not None and code is not None and 128 < code <= 128 + 64:
            code = 128 - code
        return Result(code, timed_out, self.elapsed(), _tail(self.log_dir / "stdout.txt"),
                      _tail(self.log_dir / "stderr.txt"))


def _tail(path: Path, limit: int = 20000) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def copy_regular_files(src: Path, dest: Path) -> list[str]:
    """Copy the regular files under ``src`` to ``dest``; skip symlinks and special files.

    Returns what was skipped (a symlink in a submission could point at the reference solution).
    """
    skipped = []
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        for d in list(dirnames):
            if os.path.islink(os.path.join(dirpath, d)):
                skipped.append(str(rel / d))
                dirnames.remove(d)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                skipped.append(str(rel / name))
                continue
            shutil.copyfile(path, dest / rel / name, follow_symlinks=False)
    return skipped

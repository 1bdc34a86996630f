"""Run student code in isolation: its own process, a private file system view, no network, limits.

Everything that runs inside the student's process can be rewritten by the student's code, so the
sandboxed side only *produces* outputs (arrays, executed notebooks) in its own folder; verdicts are
computed by the trusted caller, which never imports the submission (DESIGN.md, the trust boundary).

Isolation levels (:func:`isolation` says which one is active, and the grading report prints it):

``full`` (the grader runs as root on Linux, and the kernel allows namespaces):
  * a new mount namespace with a fresh root (``chroot``): read-only binds of the system (``/usr``,
    ``/lib*``, ``/bin``, ``/etc``), of the Python installation and of the virtual environment, a
    read-write bind of the submission's own folder at ``/sandbox``, a private ``/tmp`` and
    ``/dev/shm`` (tmpfs, size-capped), minimal ``/dev``, ``/proc`` mounted with ``hidepid=2``. The
    repository (reference solution, hidden checks, gradebook), other submissions and the rest of the
    host are not in the view at all;
  * a new network namespace with only the loopback device: no network;
  * a dedicated unprivileged uid per submission (not in /etc/passwd), no groups, ``no_new_privs``;
    the submission folder is a private copy owned by that uid (mode 700);
  * limits (``setrlimit``): address space, file size, processes (per uid: no fork bombs), CPU time;
  * a wall-clock budget; on expiry the process group and every process of the uid are killed.
``limits`` (not root, or namespaces refused): only the limits, the wall-clock budget, a clean
  environment and ``python -I -S`` with an explicit ``sys.path``; the student's code can read what
  the grader's user can read. Grade on a machine where ``full`` is available.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = ["Limits", "Result", "Sandbox", "Running", "isolation", "site_packages", "copy_regular_files",
           "SANDBOX_DIR", "UID_BASE"]

SANDBOX_DIR = "/sandbox"       # where the submission's folder appears inside the sandbox
TOOLS_DIR = "/grader"          # read-only: the sandbox-side scripts (never the hidden checks)
DATA_DIR = "/data"             # read-only: an optional data root
UID_BASE = 62000               # sandbox uids: UID_BASE + block of the process + slot (no such users)
_SLOTS = 1000                  # uids per grading process

_CLONE_NEWNS, _CLONE_NEWUTS, _CLONE_NEWIPC, _CLONE_NEWNET = 0x00020000, 0x04000000, 0x08000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
_PR_SET_NO_NEW_PRIVS, _PR_SET_PDEATHSIG = 38, 1


@dataclass(frozen=True)
class Limits:
    """Resource limits of one sandboxed process (and its children)."""

    memory_bytes: int = 6 << 30      # RLIMIT_AS: PyTorch maps a lot of address space on import
    file_bytes: int = 256 << 20      # RLIMIT_FSIZE: largest file it may write (stdout included)
    processes: int = 64              # RLIMIT_NPROC for the sandbox uid
    tmp_bytes: int = 256 << 20       # size of the private /tmp
    open_files: int = 512


@dataclass
class Result:
    returncode: int | None
    timed_out: bool
    wall_s: float
    stdout: str = ""
    stderr: str = ""


def site_packages() -> list[str]:
    """The site-packages folders of the grading environment (the sandbox imports numpy etc. from there)."""
    import site
    return [p for p in site.getsitepackages() if Path(p).is_dir()]


# --- the child side (runs between fork and exec, as root) --------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _bind(root: str, source: str, target: str | None = None, *, writable: bool = False) -> None:
    target = root + (target or source)
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    _mount(source, target, None, _MS_BIND | _MS_REC)
    flags = _MS_BIND | _MS_REMOUNT | _MS_NOSUID | (0 if writable else _MS_RDONLY)
    _mount(None, target, None, flags)


def _loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (Jupyter kernels talk to their client over it)."""
    SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))


def _set_limits(limits: Limits, cpu_s: int) -> None:
    for res, value in ((resource.RLIMIT_AS, limits.memory_bytes), (resource.RLIMIT_FSIZE, limits.file_bytes),
                       (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0),
                       (resource.RLIMIT_CPU, cpu_s)):
        resource.setrlimit(res, (value, value))


def _enter_full(root: str, workdir: str, tools: str, data: str | None, uid: int, limits: Limits, cpu_s: int,
                ro_paths: tuple[str, ...]) -> None:
    _check(_libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET | _CLONE_NEWIPC | _CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=8m,mode=755")
    # The private /tmp comes first, so that a Python or virtualenv living under /tmp (a checkout
    # in /tmp) is bound on top of it instead of being hidden by it.
    for name, mode in (("/tmp", "1777"), ("/dev/shm", "1777")):
        os.makedirs(root + name, exist_ok=True)
        _mount("tmpfs", root + name, "tmpfs", _MS_NOSUID | _MS_NODEV, f"size={limits.tmp_bytes},mode={mode}")
    for path in ro_paths:
        if os.path.exists(path):
            _bind(root, path)
    os.makedirs(root + "/dev", exist_ok=True)
    for dev in ("null", "zero", "random", "urandom", "full"):
        if os.path.exists("/dev/" + dev):
            _bind(root, "/dev/" + dev, writable=True)
    os.symlink("/proc/self/fd", root + "/dev/fd")
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", _MS_NOSUID | _MS_NODEV, "hidepid=2")
    _bind(root, workdir, SANDBOX_DIR, writable=True)
    _bind(root, tools, TOOLS_DIR)
    if data:
        _bind(root, data, DATA_DIR)
    _loopback_up()
    os.chroot(root)
    os.chdir(SANDBOX_DIR)
    _set_limits(limits, cpu_s)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    # Die with the grader (set after setuid, which clears it): no orphan outlives an interrupted run.
    _check(_libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")


def _system_paths() -> tuple[str, ...]:
    """What the sandbox sees read-only: the system, the Python installation, the environment."""
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys/devices/system/cpu"]
    for prefix in {sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix)}:
        paths.append(prefix)
    # The interpreter the venv links to, and the folders of the site-packages.
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    paths.extend(site_packages())
    # Keep only the outermost of nested paths (binding an inner one again is harmless but slow).
    paths = sorted(set(paths), key=len)
    kept = []
    for p in paths:
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return tuple(kept)


# --- the parent side ----------------------------------------------------------------------------

@lru_cache(maxsize=1)
def isolation() -> dict:
    """Which isolation this machine gives (probed once by running ``true`` in a full sandbox)."""
    info = {"level": "limits", "filesystem": False, "network": False, "uid": False, "limits": True,
            "reason": ""}
    if os.name != "posix" or not sys.platform.startswith("linux"):
        info["reason"] = "not Linux: no namespaces"
        return info
    if os.geteuid() != 0:
        info["reason"] = "not running as root: no mount/network namespaces, no uid switch"
        return info
    with tempfile.TemporaryDirectory(prefix="hw4-probe-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        box = Sandbox(work, slot=0, tools=Path(tmp), mode="full")
        try:
            # Generous: on a loaded machine the first sandbox start can take a while.
            res = box.run(["/bin/sh", "-c", "test ! -e /root/.bash_history -a $(id -u) -ne 0"], timeout=120)
            ok = res.returncode == 0
            info["reason"] = "" if ok else f"probe failed (exit {res.returncode}): {res.stderr[-300:]}"
        except (OSError, subprocess.SubprocessError) as exc:
            ok, info["reason"] = False, f"probe failed: {exc}"
    if ok:
        info.update(level="full", filesystem=True, network=True, uid=True)
    return info


class Sandbox:
    """A sandbox around one submission folder ``workdir`` (made private to the sandbox uid).

    ``slot`` picks the uid (``UID_BASE + slot``): give concurrent sandboxes different slots.
    ``tools`` is a folder of sandbox-side scripts, mounted read-only at ``/grader``.
    """

    def __init__(self, workdir: Path, *, slot: int, tools: Path, limits: Limits = Limits(),
                 data_root: Path | None = None, mode: str | None = None):
        self.workdir = Path(workdir).resolve()
        # Each grading process gets its own block of uids: sandboxes of two processes (two pytest
        # workers, two autograde runs) never share a uid, so killing one's leftovers spares the other.
        self.uid = UID_BASE + (os.getpid() % 10_000) * _SLOTS + slot % _SLOTS
        self.tools = Path(tools).resolve()
        self.limits = limits
        self.data_root = Path(data_root).resolve() if data_root else None
        self.mode = mode or isolation()["level"]
        self.newroot = Path(tempfile.mkdtemp(prefix="hw4-root-"))  # a mount point, empty on the host
        os.chmod(self.newroot, 0o700)
        self._own()

    # Paths as the sandboxed process sees them.
    @property
    def root(self) -> str:
        return SANDBOX_DIR if self.mode == "full" else str(self.workdir)

    @property
    def tools_path(self) -> str:
        return TOOLS_DIR if self.mode == "full" else str(self.tools)

    @property
    def data_path(self) -> str | None:
        if self.data_root is None:
            return None
        return DATA_DIR if self.mode == "full" else str(self.data_root)

    def _own(self) -> None:
        """Give the folder to the sandbox uid (mode 700: no other sandbox can look in)."""
        if self.mode != "full":
            return
        for dirpath, dirnames, filenames in os.walk(self.workdir):
            os.lchown(dirpath, self.uid, self.uid)
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), self.uid, self.uid)
        os.chmod(self.workdir, 0o700)

    def refresh(self) -> None:
        """Re-own files the trusted side wrote into the folder since the last run."""
        self._own()

    def env(self, extra: dict | None = None) -> dict:
        """A clean environment: nothing of the grader's leaks in (no PYTHONPATH, no tokens)."""
        tmp = "/tmp" if self.mode == "full" else str(self.workdir / ".tmp")
        if self.mode != "full":
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

    def _preexec(self, cpu_s: int):
        if self.mode == "full":
            args = (str(self.newroot), str(self.workdir), str(self.tools),
                    str(self.data_root) if self.data_root else None, self.uid, self.limits, cpu_s, _system_paths())
            return lambda: _enter_full(*args)
        limits = self.limits
        return lambda: _set_limits(limits, cpu_s)

    def start(self, argv: list[str], *, timeout: float, env: dict | None = None, log_dir: Path | None = None):
        """Start ``argv`` in the sandbox; return a :class:`Running` handle."""
        log_dir = Path(log_dir or tempfile.mkdtemp(prefix="hw4-log-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        out = open(log_dir / "stdout.txt", "wb")
        err = open(log_dir / "stderr.txt", "wb")
        try:
            proc = subprocess.Popen(argv, cwd=str(self.workdir) if self.mode != "full" else None,
                                    env=self.env(env), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    preexec_fn=self._preexec(int(timeout) + 5), start_new_session=True,
                                    close_fds=True)
        finally:
            out.close()
            err.close()
        return Running(self, proc, log_dir, timeout)

    def run(self, argv: list[str], *, timeout: float, env: dict | None = None, log_dir: Path | None = None) -> Result:
        """Run ``argv`` to completion (or until ``timeout`` seconds, then kill it)."""
        return self.start(argv, timeout=timeout, env=env, log_dir=log_dir).wait()

    def kill_all(self) -> None:
        """Kill every process of the sandbox uid (student code may have left its process group)."""
        if self.mode != "full":
            return
        for _ in range(3):
            found = False
            for entry in os.listdir("/proc"):
                if not entry.isdigit():
                    continue
                try:
                    with open(f"/proc/{entry}/status") as fh:
                        status = dict(line.split(":", 1) for line in fh if ":" in line)
                except OSError:
                    continue
                if status.get("State", "").strip().startswith("Z"):
                    continue  # a zombie: already dead, its parent (or init) reaps it
                if int(status.get("Uid", "-1 0").split()[0]) == self.uid:
                    found = True
                    try:
                        os.kill(int(entry), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if not found:
                return
            time.sleep(0.05)

    def close(self) -> None:
        self.kill_all()
        try:
            os.rmdir(self.newroot)
        except OSError:
            pass


@dataclass
class Running:
    """A process started by :meth:`Sandbox.start`."""

    box: Sandbox
    proc: subprocess.Popen
    log_dir: Path
    timeout: float
    started: float = field(default_factory=time.monotonic)

    def poll(self) -> int | None:
        return self.proc.poll()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.box.kill_all()

    def wait(self) -> Result:
        timed_out = False
        try:
            self.proc.wait(timeout=max(0.0, self.timeout - self.elapsed()))
        except subprocess.TimeoutExpired:
            timed_out = True
        self.kill()  # also reaps anything the process left behind
        return self.result(timed_out)

    def result(self, timed_out: bool) -> Result:
        return Result(None if timed_out else self.proc.returncode, timed_out, self.elapsed(),
                      _tail(self.log_dir / "stdout.txt"), _tail(self.log_dir / "stderr.txt"))


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


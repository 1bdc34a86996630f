"""What the grading sandbox is made of on this machine: bubblewrap's command line, its end, a probe.

:func:`bwrap_argv` builds the sandbox (:class:`.sandbox.Sandbox` starts it):

* **namespaces**: new mount, PID, network (loopback only: the Jupyter kernel talks to its client over
  it), IPC and UTS namespaces (and cgroup where the kernel allows); as a user other than root, also a
  user namespace (``--unshare-user``) in which no further one can be made (``--disable-userns``);
* **file system**: an empty root holding read-only binds of the system (``/usr``, ``/etc``, the
  ``/lib*``, ``/bin``, ``/sbin`` links), the Python installation and the environment, a read-write
  bind of the submission's folder at ``/sandbox``, the sandbox-side scripts at ``/grader`` and an
  optional data root at ``/data`` (read-only), a private size-capped ``/tmp`` and ``/dev/shm``, a
  minimal ``/dev`` and a ``/proc`` of its own PID namespace; the root itself read-only. The
  repository (reference solution, hidden checks, gradebook), other submissions and the rest of the
  host are not in its view;
* **identity**: as root, ``setpriv`` switches to the sandbox's own uid, no groups, no capabilities
  (bounding set emptied); otherwise the grader's uid in the user namespace, no capabilities;
  ``no_new_privs`` always (bubblewrap sets it), a new session (no terminal to inject into);
* **seccomp** (level ``full``): the filter of :mod:`.seccomp_filter`, loaded by bubblewrap just
  before the command starts;
* **processes**: ``prlimit --nproc`` inside the sandbox, so the count is the sandbox's own;
  everything dies with the grader (``--die-with-parent``).

:func:`probe` finds the level once per process: it starts a real sandbox and asks it what it
sees (its uid, the processes, the network interfaces, whether the kit is visible, the seccomp
mode, whether ``ptrace`` is refused) rather than trusting what should be.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import lru_cache
from pathlib import Path

from .seccomp_filter import SeccompUnavailable, compile_filter

SANDBOX_DIR = "/sandbox"       # where the submission's folder appears inside the sandbox
TOOLS_DIR = "/grader"          # read-only: the sandbox-side scripts (never the hidden checks)
DATA_DIR = "/data"             # read-only: an optional data root
JOB_DIR = "/job"               # read-only: what the trusted side asks of this run
OUT_DIR = "/out"               # read-write: what the run gives back (read with untrusted.py)
BLOCKER = "blocked_package.py"  # in the tools folder: the __init__ of a package that cannot be imported

__all__ = ["CONTAINED", "SANDBOX_DIR", "TOOLS_DIR", "DATA_DIR", "JOB_DIR", "OUT_DIR", "BLOCKER", "probe", "bwrap_argv", "end_sandbox", "seccomp_program", "site_packages", "system_paths"]

CONTAINED = ("full", "namespaces")      # levels at which the code runs in a bubblewrap sandbox
HERE = Path(__file__).resolve().parent


def site_packages() -> list[str]:
    """The site-packages folders of the grading environment (the sandbox imports numpy etc. from there)."""
    import site
    return [p for p in site.getsitepackages() if Path(p).is_dir()]


def system_paths() -> tuple[str, ...]:
    """What the sandbox sees read-only: the system, the Python installation, the environment."""
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys/devices/system/cpu"]
    paths += [sys.base_prefix, sys.prefix, os.path.realpath(sys.base_prefix)]
    # The interpreter the venv links to, and the folders of the site-packages.
    paths.append(os.path.dirname(os.path.realpath(sys.executable)))
    paths.extend(site_packages())
    # Keep only the outermost of nested paths (binding an inner one again is harmless but slow).
    kept = []
    for p in sorted(set(paths), key=len):
        if os.path.lexists(p) and not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return tuple(kept)


@lru_cache(maxsize=1)
def seccomp_program() -> bytes:
    """The compiled seccomp filter (once per process)."""
    return compile_filter()


def _parents(paths) -> list[str]:
    """The folders above ``paths`` that no bind provides, outermost first: created mode 755, so that
    a Python under a private home (``/root/.pyenv``) is reachable by the sandbox's uid."""
    dirs = set()
    for p in paths:
        parent = os.path.dirname(p.rstrip("/"))
        while parent not in ("", "/"):
            dirs.add(parent)
            parent = os.path.dirname(parent)
    return sorted(d for d in dirs if d not in paths)


def _bind_args(src: str, dest: str, writable: bool, bound: list[str]) -> list[str]:
    """bubblewrap's arguments mounting ``src`` at ``dest``. A link among the system paths whose target
    is bound too (``/lib -> usr/lib``) stays a link; any other link is mounted as what it points to,
    so an environment reached through a link (a symlinked ``.venv``) is there as itself."""
    if os.path.islink(src) and dest == src:
        target = os.path.realpath(src)
        if any(target == b or target.startswith(b.rstrip("/") + "/") for b in bound if b != src):
            return ["--symlink", os.readlink(src), dest]
        src = target
    return ["--bind" if writable else "--ro-bind", src, dest]


def _masks(box) -> list[str]:
    """Hide the packages ``box.blocked`` names from the sandbox: each one's folder in site-packages
    becomes an empty read-only folder whose ``__init__.py`` raises ImportError (the tools folder's
    :data:`BLOCKER`), so no import, ``importlib`` trick or ``ctypes`` load of its libraries can reach it."""
    args = []
    blocker = str(box.tools / BLOCKER)
    for site in site_packages():
        for name in box.blocked:
            path = os.path.join(site, name)
            if os.path.isdir(path) and not os.path.islink(path):
                args += ["--perms", "0555", "--tmpfs", path, "--ro-bind", blocker, os.path.join(path, "__init__.py")]
            elif os.path.isfile(path + ".py"):
                args += ["--ro-bind", blocker, path + ".py"]
    return args


def bwrap_argv(box, argv: list[str], *, info_fd: int, seccomp_fd: int | None) -> list[str]:
    """The bubblewrap command line running ``argv`` in ``box`` (a :class:`.sandbox.Sandbox`)."""
    cmd = [shutil.which("bwrap") or "bwrap"]
    if not box.privileged:
        cmd += ["--unshare-user", "--disable-userns"]
    cmd += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--hostname", "sandbox", "--info-fd", str(info_fd)]
    # The private /tmp first: the binds below go on top of it, so an environment or a kit under /tmp
    # stays visible (a tmpfs mounted after them would hide it).
    size = str(box.limits.tmp_bytes)
    cmd += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
            "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    binds = [(p, p, False) for p in system_paths()] + [
        (str(box.rundir), SANDBOX_DIR, True), (str(box.outdir), OUT_DIR, True),
        (str(box.jobdir), JOB_DIR, False), (str(box.tools), TOOLS_DIR, False)]
    if box.data_root:
        binds.append((str(box.data_root), DATA_DIR, False))
    binds += [(str(src), dest, False) for src, dest in box.binds]
    for folder in _parents([dest for _, dest, _ in binds]):
        if not (folder == "/tmp" or folder.startswith(("/dev/", "/proc/"))):
            cmd += ["--perms", "0755", "--dir", folder]
    bound = [dest for _, dest, _ in binds]
    for src, dest, writable in binds:
        cmd += _bind_args(src, dest, writable, bound)
    cmd += _masks(box)
    cmd += ["--remount-ro", "/", "--chdir", SANDBOX_DIR]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    inner = [shutil.which("prlimit") or "prlimit", f"--nproc={box.limits.processes}", "--"]
    if box.privileged:
        inner = [shutil.which("setpriv") or "setpriv", f"--reuid={box.uid}", f"--regid={box.uid}", "--clear-groups",
                 "--inh-caps=-all", "--bounding-set=-all", "--"] + inner
    return cmd + ["--"] + inner + list(argv)


def end_sandbox(init: dict) -> None:
    """SIGKILL bubblewrap's init of one sandbox (its pid, checked against its PID namespace through a
    pidfd, so a recycled pid is never hit), then wait until it is gone."""
    if not init.get("pid"):
        return
    try:
        pidfd = os.pidfd_open(init["pid"])
    except OSError:
        return                                  # already gone
    try:
        if os.readlink(f"/proc/{init['pid']}/ns/pid") != f"pid:[{init['pidns']}]":
            return                              # that pid is another process now
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _dead(init["pid"]):
            time.sleep(0.01)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _dead(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


# --- the probe ---------------------------------------------------------------------------------

# Runs in the sandbox: what it sees, as JSON.
PROBE = """
import ctypes, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
traced = libc.ptrace(0, 0, 0, 0)   # PTRACE_TRACEME: refused by the filter
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                  "interfaces": sorted(name for _, name in socket.if_nameindex()), "kit": os.path.exists(KIT),
                  "cwd": os.getcwd(), "seccomp": status["Seccomp"].strip(),
                  "ptrace_errno": ctypes.get_errno() if traced != 0 else 0}))
"""


@lru_cache(maxsize=1)
def probe(sandbox_class) -> dict:
    """Which isolation this machine gives, found by starting a ``sandbox_class`` (:class:`.sandbox.Sandbox`;
    :func:`.sandbox.isolation` passes it): ``level`` (``full``, ``namespaces`` or ``limits``), what
    each part gives, and ``reason`` (what is missing, and what to install) when it is not full."""
    info = {"level": "limits", "tool": "", "root": os.geteuid() == 0, "uid": "the grader's", "filesystem": False,
            "network": False, "pid": False, "seccomp": False, "limits": True, "reason": ""}
    if not sys.platform.startswith("linux"):
        info["reason"] = "not Linux: no bubblewrap sandbox"
        return info
    bwrap = shutil.which("bwrap")
    missing = [tool for tool in ("prlimit", "setpriv" if info["root"] else "") if tool and not shutil.which(tool)]
    if bwrap is None or missing:
        info["reason"] = ("bubblewrap is not installed (apt-get install bubblewrap)" if bwrap is None else
                          f"{', '.join(missing)} missing (apt-get install util-linux)")
        return info
    version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    info["tool"] = version or "bubblewrap"
    try:
        seccomp_program()
        mode, why_not = "full", ""
    except SeccompUnavailable as exc:
        mode, why_not = "namespaces", f"no seccomp filter: {exc}"
    seen, failure = _probe(mode, sandbox_class)
    if seen is None:
        info["reason"] = failure
        return info
    info.update(filesystem=not seen["kit"] and seen["cwd"] == "/sandbox", network=seen["interfaces"] == ["lo"],
                pid=max(seen["pids"]) < 10 and 1 in seen["pids"],
                seccomp=seen["seccomp"] == "2" and seen["ptrace_errno"] == errno.EPERM)
    if info["root"]:
        info["uid"] = "one per submission" if seen["uid"] != 0 else "root (!)"
    else:
        info["uid"] = "the grader's, in a user namespace of its own"
    lacking = [k for k in ("filesystem", "network", "pid") if not info[k]] + (["uid"] if seen["uid"] == 0 else [])
    if lacking:
        info["reason"] = f"the probe sandbox lacks: {', '.join(lacking)} (it saw {seen})"
        return info
    info["level"] = "full" if mode == "full" and info["seccomp"] else "namespaces"
    info["reason"] = why_not or ("" if info["seccomp"] else "the seccomp filter did not hold in the probe")
    return info


def _probe(mode: str, sandbox_class) -> tuple[dict | None, str]:
    """Run :data:`PROBE` in a sandbox of ``mode``; ``(what it saw, "")`` or ``(None, why it failed)``."""
    tmp = Path(tempfile.mkdtemp(prefix="hw4-probe-"))
    box = None
    try:
        (tmp / "work").mkdir()
        os.chmod(tmp, 0o711)
        box = sandbox_class(tmp / "work", slot=0, tools=tmp / "work", mode=mode)
        code = PROBE.replace("KIT", repr(str(HERE)))
        # Generous: on a loaded machine the first sandbox start can take a while.
        res = box.run([sys.executable, "-I", "-S", "-c", code], timeout=120, log_dir=tmp / "log")
        if res.returncode != 0:
            hint = "" if os.geteuid() == 0 else (" (as a user other than root it needs unprivileged user namespaces: "
                                                 "sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone)")
            return None, (f"bubblewrap could not start a sandbox here (exit {res.returncode}): "
                          f"{res.stderr.strip()[-300:]}{hint}")
        return json.loads(res.stdout.strip().splitlines()[-1]), ""
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
        return None, f"probe failed: {type(exc).__name__}: {exc}"
    finally:
        if box is not None:
            box.close()
        shutil.rmtree(tmp, ignore_errors=True)

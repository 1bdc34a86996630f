"""The seccomp filter of the grading sandbox: the system calls grading never needs, denied.

Student code runs in the sandbox with this filter loaded (bubblewrap's ``--seccomp FD``, read once
before the sandboxed command starts; the filter holds for it and every process it starts, and no
process can lift it). A denied call fails with ``EPERM`` (Python raises ``PermissionError``), so a
hostile attempt is reported as blocked rather than crashing the run; ``clone3`` fails with
``ENOSYS`` instead, which makes the C library fall back to ``clone``, whose flags the filter can
read (``clone3`` passes them in memory, out of the filter's sight). Calls of another architecture
(32-bit ``int 0x80`` or x32 calls on x86_64) kill the process: nothing in grading makes them.

The filter is compiled by libseccomp through its Python bindings: ``pyseccomp`` (PyPI, ctypes over
the system's ``libseccomp.so.2``, Debian ``libseccomp2``) or Debian's own ``python3-seccomp``. It
covers the machine's own architecture (x86_64 or aarch64 on the machines the kit is graded on);
names a kernel does not have on that architecture (``iopl`` on aarch64) are skipped.
"""

from __future__ import annotations

import errno
import tempfile

__all__ = ["DENIED", "NAMESPACE_FLAGS", "SeccompUnavailable", "bindings", "compile_filter"]

# What grading never needs, by why. Every name here fails with EPERM in the sandbox.
DENIED = {
    # watching or steering another process (the grader's, or a sibling's, were it visible)
    "debugging": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    # changing the file system view: the sandbox's mounts are made once, by bubblewrap, before
    "mounts": ("mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig",
               "fsmount", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at"),
    # new or other namespaces (a fresh user namespace gives capabilities inside it)
    "namespaces": ("unshare", "setns"),
    # kernel facilities with a long record of privilege escalations
    "kernel": ("bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "io_uring_setup",
               "io_uring_enter", "io_uring_register", "lookup_dcookie"),
    # the machine itself
    "machine": ("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
                "swapon", "swapoff", "syslog", "acct", "quotactl", "settimeofday", "clock_settime", "clock_adjtime",
                "adjtimex", "iopl", "ioperm", "uselib", "vhangup", "sethostname", "setdomainname"),
}

# clone() flags that make a namespace: clone is allowed (fork, threads), these flags are not.
NAMESPACE_FLAGS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
                   "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                   "CLONE_NEWNET": 0x40000000}


class SeccompUnavailable(RuntimeError):
    """No libseccomp bindings (or no libseccomp) here: the message says what to install."""


def bindings():
    """The libseccomp Python module: Debian's ``seccomp`` or PyPI's ``pyseccomp`` (same API)."""
    try:
        import seccomp
        return seccomp
    except ImportError:
        pass
    try:
        import pyseccomp
        return pyseccomp
    except ImportError:
        raise SeccompUnavailable("no libseccomp bindings: pip install pyseccomp (the grading extra "
                                 "installs it) or apt-get install python3-seccomp") from None
    except (OSError, AttributeError, TypeError) as exc:   # pyseccomp found no libseccomp.so.2
        raise SeccompUnavailable(f"pyseccomp cannot load libseccomp ({exc}): apt-get install libseccomp2") from None


def compile_filter() -> bytes:
    """The filter as a classic BPF program (what ``bwrap --seccomp FD`` reads), for this machine's
    architecture; raises :class:`SeccompUnavailable` when libseccomp cannot be used."""
    sc = bindings()
    arch = sc.system_arch()
    filt = sc.SyscallFilter(sc.ALLOW)
    if hasattr(sc, "Attr") and hasattr(sc.Attr, "ACT_BADARCH"):
        filt.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)

    def known(name):
        return sc.resolve_syscall(arch, name) >= 0

    for names in DENIED.values():
        for name in names:
            if known(name):
                filt.add_rule(sc.ERRNO(errno.EPERM), name)
    for flag in NAMESPACE_FLAGS.values():
        filt.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    if known("clone3"):
        filt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as fh:
        filt.export_bpf(fh)
        fh.seek(0)
        return fh.read()

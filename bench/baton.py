"""Lock-step timing of two processes: only the one holding the baton computes.

This machine's speed drifts by 10-20 % over tens of seconds (other tenants, frequency): two figures
taken one after the other, even back to back, differ by that much with nothing changed. To compare
the same implementation on the command line and in a notebook kernel to within a few percent, both
processes run *at once but never together*: the parent hands a baton to one, which computes for a
slice of about :data:`SLICE_S` (between two timed calls, never inside one), waits until its own
other threads have stopped running (OpenBLAS's and OpenMP's idle workers spin for up to a tenth of a
second before they sleep, and would slow the other process down), and hands it back; the parent
passes it to the other. Both sample the same states of the machine, so its drift cancels out
of their ratio. Each is still a fresh process of its own with one library in it.

The worker side (:func:`attach`, :func:`checkpoint`, :func:`detach`) is a no-op unless a baton was
attached, so a plain ``python -m bench.worker`` run times the usual way. A process that never calls
:func:`checkpoint` (the training suite times whole runs) holds the baton to its end: the pair then
runs back to back.
"""

from __future__ import annotations

import os
import select
import tempfile
import threading
import time
from pathlib import Path

SLICE_S = 0.25    # computing time per turn
QUIET_S = 0.5     # at most this long, a worker waits for its idle thread pools to stop spinning before yielding
SETTLE_S = 0.01   # and the parent pauses this long between turns
WAIT_S = 3 * 3600  # the longest a worker may keep the baton (a full-MNIST training run holds it throughout)

_READY, _GO, _YIELD, _END = b"r", b"g", b"y", b"e"

# --- the worker's side ----------------------------------------------------------------------------

_fds: tuple[int, int] | None = None   # (read the parent's "go", write "ready/yield/end")
_since = 0.0


def attach(path: str | None) -> None:
    """Join the lock-step run whose FIFOs are at ``path`` (``None``: run freely). Blocks until the
    baton comes."""
    global _fds, _since
    if not path:
        return
    _fds = (os.open(f"{path}.go", os.O_RDONLY), os.open(f"{path}.back", os.O_WRONLY))
    os.write(_fds[1], _READY)
    _wait_for_go()
    _since = time.perf_counter()


def checkpoint() -> None:
    """Between two timed calls: hand the baton back once this turn's slice is used up, and wait
    for it to come back."""
    global _since
    if _fds is None or time.perf_counter() - _since < SLICE_S:
        return
    _wait_until_quiet()
    os.write(_fds[1], _YIELD)
    _wait_for_go()
    _since = time.perf_counter()


def detach() -> None:
    """This process is done: the other may have the machine to itself."""
    global _fds
    if _fds is not None:
        os.write(_fds[1], _END)
        for fd in _fds:
            os.close(fd)
        _fds = None


def _wait_until_quiet() -> None:
    """Until no other thread of this process is running (Linux's ``/proc``; elsewhere a pause)."""
    me, deadline = threading.get_native_id(), time.perf_counter() + QUIET_S
    while time.perf_counter() < deadline:
        try:
            tasks = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            time.sleep(QUIET_S / 5)
            return
        if not any(_running(t) for t in tasks if t != me):
            return
        time.sleep(0.002)


def _running(tid: int) -> bool:
    try:
        with open(f"/proc/self/task/{tid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "R"
    except (OSError, IndexError):
        return False


def _wait_for_go() -> None:
    if os.read(_fds[0], 1) != _GO:
        raise RuntimeError("bench.baton: the parent closed the lock-step run")


# --- the parent's side ----------------------------------------------------------------------------

def lockstep(runs: dict) -> dict:
    """Run ``{name: fn(baton_path) -> result}`` at once in threads (each ``fn`` starts a process that
    attaches to ``baton_path`` and waits for it), passing the baton between them in turn, in the
    order of ``runs``. Returns ``{name: result}``; re-raises the first failure."""
    results, errors = {}, {}
    with tempfile.TemporaryDirectory(prefix="bench-baton-") as tmp:
        channels, threads = {}, {}
        for i, name in enumerate(runs):
            path = str(Path(tmp) / f"w{i}")
            for end in (".go", ".back"):
                os.mkfifo(path + end)
            # Read-write opens never block and never see end-of-file while we hold them.
            channels[name] = (os.open(path + ".go", os.O_RDWR), os.open(path + ".back", os.O_RDWR))

            def target(name=name, path=path):
                try:
                    results[name] = runs[name](path)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the parent's thread below
                    errors[name] = exc
            threads[name] = threading.Thread(target=target, name=f"bench {name}", daemon=True)
        try:
            for thread in threads.values():
                thread.start()
            # Every process is started and idle before the first turn: startup costs no one's time.
            waiting = [name for name in runs if _receive(channels[name][1], threads[name]) == _READY]
            turn = 0
            while waiting:
                name = waiting[turn % len(waiting)]
                os.write(channels[name][0], _GO)
                if _receive(channels[name][1], threads[name]) == _YIELD:
                    turn += 1
                else:
                    waiting.remove(name)
                time.sleep(SETTLE_S)
            for thread in threads.values():
                thread.join()
        finally:
            for fds in channels.values():
                for fd in fds:
                    os.close(fd)
    for name in runs:
        if name in errors:
            raise errors[name]
    return results


def _receive(fd: int, thread: threading.Thread) -> bytes:
    """The worker's next message; ``_END`` if its process ended without saying so."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            return os.read(fd, 1)
        if not thread.is_alive():
            return _END
    raise TimeoutError(f"bench.baton: no word from {thread.name} in {WAIT_S} s")

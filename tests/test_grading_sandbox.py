"""grading/autograde/sandbox.py: what a sandboxed process can and cannot do (needs root on Linux: else skipped)."""

from __future__ import annotations

import os
import shutil
import sys
import time

import pytest

from course.paths import REPO
from grading.autograde.sandbox import Limits, Sandbox, isolation

pytestmark = pytest.mark.skipif(isolation()["level"] != "full",
                                reason=f"full isolation not available here: {isolation()['reason']}")


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
    sandbox = Sandbox(work, slot=900 + os.getpid() % 50, tools=tools, limits=Limits(memory_bytes=2 << 30))
    yield sandbox
    sandbox.close()


def run_py(box, code, timeout=60):
    return box.run([sys.executable, "-I", "-S", "-c", code], timeout=timeout)


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


def test_no_network_no_writes_outside(box, tmp_path):
    marker = tmp_path / "outside.txt"
    code = f"""
import socket
for addr in [("1.1.1.1", 53), ("127.0.0.1", 22)]:
    try:
        socket.create_connection(addr, timeout=2); print("CONNECTED", addr)
    except OSError:
        pass
for p in [{str(marker)!r}, {str(REPO / 'PWNED')!r}, "/etc/pwned", "/sandbox/submission/ok.txt"]:
    try:
        open(p, "w").write("x"); print("WROTE", p)
    except OSError:
        pass
"""
    res = run_py(box, code)
    assert res.returncode == 0, res.stderr
    assert "CONNECTED" not in res.stdout
    assert res.stdout.strip().splitlines() == ["WROTE /sandbox/submission/ok.txt"]
    assert not marker.exists() and not (REPO / "PWNED").exists()
    assert (box.workdir / "submission" / "ok.txt").read_text() == "x"


def test_timeout_kills_the_process_and_its_children(box):
    start = time.monotonic()
    res = run_py(box, "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\ntime.sleep(600)",
                 timeout=3)
    assert res.timed_out and time.monotonic() - start < 30
    box.kill_all()
    left = [p for p in os.listdir("/proc") if p.isdigit() and _uid_of(p) == box.uid]
    assert not left, f"processes of the sandbox uid survived: {left}"


def test_memory_limit(box):
    res = run_py(box, "b = bytearray(8 << 30)")
    assert res.returncode != 0 and "MemoryError" in res.stderr


def _uid_of(pid: str) -> int | None:
    """The uid of a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return None
    return None if status["State"].strip().startswith("Z") else int(status["Uid"].split()[0])


def test_the_folder_is_private(box):
    assert (box.workdir.stat().st_mode & 0o777) == 0o700
    assert box.workdir.stat().st_uid == box.uid
    shutil.rmtree(box.workdir / "submission")

"""Shared fixtures: one seeded generator per test, the shared data root when present, a local HTTP mirror."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_configure(config):
    """On a machine without full sandbox isolation (no bubblewrap) the grading tests grade the samples
    whose code is harmless with ``--allow-weak-isolation`` (job.Settings reads this variable), as an
    instructor who chose it would; the hostile samples are left out there (test_grading_autograde). Under
    ``CI=true`` nothing is allowed: CI must grade in the real sandbox, and its sandbox tests fail without it."""
    if os.environ.get("CI") == "true":
        return
    from grading.autograde.sandbox import isolation
    if isolation()["level"] != "full":
        os.environ["HW4_ALLOW_WEAK_ISOLATION"] = "1"


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's name: reproducible across runs, different across tests."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def shared_data_root() -> Path | None:
    """``../shared/data`` (or ``$HWLIB_TEST_SHARED_DATA``) when it exists, else None."""
    root = os.environ.get("HWLIB_TEST_SHARED_DATA") or str(REPO.parent / "shared" / "data")
    path = Path(root).resolve()
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    root = shared_data_root()
    if root is None:
        pytest.skip("shared data (../shared/data) not available")
    return root


class HTTPMirror:
    """A local HTTP server for the download tests: serves the files put into it, logs every request.

    ``put(name, data)`` stores a file and returns its URL; ``fail[name] = k`` answers the next ``k``
    requests for it with HTTP 503 (a flaky mirror); ``requests`` lists the names asked for, in order;
    ``dead_url(name)`` is an address where nothing listens (connection refused).
    """

    def __init__(self, folder: Path):
        import http.server
        import threading

        self.folder, self.requests, self.fail = folder, [], {}
        folder.mkdir(parents=True, exist_ok=True)
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self):
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                if mirror.fail.get(name, 0) > 0:
                    mirror.fail[name] -= 1
                    self.send_error(503, "flaky mirror")
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{name}"

    def put(self, name: str, data) -> str:
        (self.folder / name).write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
        return self.url(name)

    @staticmethod
    def dead_url(name: str) -> str:
        import socket

        with socket.socket() as s:        # a port that was free a moment ago: nothing listens there
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return f"http://127.0.0.1:{port}/{name}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_mirror(tmp_path, monkeypatch):
    """An :class:`HTTPMirror` serving ``tmp_path/mirror``; download retries off (a test of them turns them on)."""
    monkeypatch.setattr("hwlib.data.download.RETRIES", 0)
    mirror = HTTPMirror(tmp_path / "mirror")
    yield mirror
    mirror.close()


@pytest.fixture
def torch_one_thread():
    """One torch thread for the test (restored after): on 2 shared cores, more threads only wait
    for each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

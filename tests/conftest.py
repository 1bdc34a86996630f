"""Shared fixtures: one seeded generator per test, the shared data root when present."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


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

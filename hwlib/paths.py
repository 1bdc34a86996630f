"""Where the kit keeps data: one data root, never the working directory.

The root is, in order: the ``root`` argument, the ``HWLIB_DATA_ROOT`` environment variable,
or the ``data/`` folder next to the ``hwlib`` package (the kit's own ``data/``).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ROOT_ENV", "data_root"]

DATA_ROOT_ENV = "HWLIB_DATA_ROOT"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Return the data root as an absolute path (it need not exist yet)."""
    if root is None or str(root) == "":
        root = os.environ.get(DATA_ROOT_ENV) or Path(__file__).resolve().parent.parent / "data"
    return Path(root).expanduser().resolve()

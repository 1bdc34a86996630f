"""Datasets of the course: one data root, checksummed downloads, embedded offline defaults.

``python -m hwlib.data fetch NAME`` downloads a dataset into the data root
(:func:`hwlib.paths.data_root`); ``python -m hwlib.data list`` shows what is known and present.
Each dataset module registers a :class:`Dataset` with :func:`register`.
"""

from __future__ import annotations

from .download import DataError, Dataset, DATASETS, register, fetch, sha256_payload  # noqa: F401

# Dataset modules register themselves on import.
from . import mnist  # noqa: F401,E402
from .mnist import load_mnist  # noqa: F401,E402
from . import hymenoptera  # noqa: F401,E402
from . import coco  # noqa: F401,E402

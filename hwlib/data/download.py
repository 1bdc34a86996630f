"""Checksummed downloads into the data root, shared by every dataset module.

Checksums are SHA-256 of the *decompressed payload* (for ``.gz`` files), so a mirror that
re-compressed the files still passes while a corrupt or truncated file never does.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..paths import data_root
from ..progress import progress

__all__ = ["DataError", "Remote", "Dataset", "DATASETS", "register", "fetch", "sha256_payload", "verify",
           "require_checksum", "download", "safe_members", "fetch_zip_folder"]


class DataError(RuntimeError):
    """A dataset is missing, corrupt or could not be downloaded; the message says what to do."""


@dataclass(frozen=True)
class Remote:
    """One file of a dataset: where it lands (relative to the dataset folder) and where it comes from."""

    name: str                  # file name inside the dataset folder, e.g. "train-images-idx3-ubyte.gz"
    sha256: str                # SHA-256 of the decompressed payload (of the file itself if not .gz)
    urls: tuple[str, ...]      # mirrors, tried in order


@dataclass(frozen=True)
class Dataset:
    """A downloadable dataset: its folder under the data root and its files."""

    name: str
    folder: str
    files: tuple[Remote, ...] = ()
    description: str = ""
    # Optional hook run after the files are verified (e.g. unpack an archive); gets the dataset folder.
    after_fetch: Callable[[Path], None] | None = field(default=None, compare=False)

    def path(self, root=None) -> Path:
        return data_root(root) / self.folder

    def present(self, root=None) -> bool:
        return all((self.path(root) / f.name).is_file() for f in self.files)


DATASETS: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    DATASETS[dataset.name] = dataset
    return dataset


def sha256_payload(path: Path) -> str:
    """SHA-256 of a file's payload: decompressed for ``.gz``, raw otherwise."""
    opener = gzip.open if path.suffix == ".gz" else open
    digest = hashlib.sha256()
    try:
        with opener(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{path} is corrupt or truncated ({exc}); delete it and fetch it again") from None
    return digest.hexdigest()


def verify(path: Path, remote: Remote, dataset: str = "") -> None:
    """Raise :class:`DataError` unless ``path`` holds the expected payload (``dataset`` names it in the message)."""
    if not path.is_file():
        raise DataError(f"{path} is missing")
    require_checksum(path, sha256_payload(path), remote, dataset)


def require_checksum(path: Path, actual: str, remote: Remote, dataset: str = "") -> None:
    """Raise :class:`DataError` unless ``actual`` (the payload's SHA-256, hex) is ``remote.sha256``."""
    if actual != remote.sha256:
        raise DataError(
            f"{path} does not match its checksum (sha256 of the payload {actual[:16]}..., expected "
            f"{remote.sha256[:16]}...): the file is corrupt, truncated or not the expected one. "
            f"Delete it and run `python -m hwlib.data fetch{' ' + dataset if dataset else ''}` again."
        )


def download(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to ``dest`` atomically (a partial download never takes the final name)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=dest.name, suffix=".part", delete=False) as tmp:
        tmp_path = Path(tmp.name)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                bar = progress(total=total, unit="B", unit_scale=True, desc=dest.name)
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    tmp.write(chunk)
                    bar.update(len(chunk))
                bar.close()
        except BaseException:
            tmp.close()
            tmp_path.unlink(missing_ok=True)
            raise
    shutil.move(str(tmp_path), dest)


def safe_members(archive: zipfile.ZipFile, top: str) -> list[zipfile.ZipInfo]:
    """The archive's members under ``top/``, refusing absolute paths and ``..`` (zip-slip)."""
    members = []
    for info in archive.infolist():
        parts = Path(info.filename).parts
        if info.filename.startswith("/") or ".." in parts:
            raise DataError(f"refusing to unpack {info.filename!r}: it points outside the data root")
        if parts and parts[0] == top:
            members.append(info)
    return members


def fetch_zip_folder(url: str, folder: Path, sha256: str | None, verify_folder: Callable[[Path], None],
                     invalid: str = "does not hold the expected files") -> None:
    """Download the zip at ``url`` and unpack its top-level ``folder.name/`` into ``folder``.

    Nothing is downloaded when ``folder`` already passes ``verify_folder``; a ``folder`` that exists and
    fails it is an error (``invalid`` says how), never overwritten. The archive's SHA-256 is checked when
    ``sha256`` is known (otherwise it is printed so it can be recorded); only members under
    ``folder.name/`` are unpacked, none outside it; ``verify_folder`` checks the unpacked tree before it
    takes its final name, so a failed fetch leaves neither a half folder nor an empty data root.
    """
    try:
        verify_folder(folder)
        return                       # already there and valid
    except DataError:
        if folder.exists():
            raise DataError(f"{folder} exists but {invalid}; delete it and fetch again") from None
    root = folder.parent
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        _download_and_unpack(url, folder, sha256, verify_folder)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _download_and_unpack(url: str, folder: Path, sha256: str | None, verify_folder: Callable[[Path], None]) -> None:
    root = folder.parent
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{folder.name}-") as tmp:
        archive_path = Path(tmp) / url.rsplit("/", 1)[-1]
        try:
            download(url, archive_path)
        except OSError as exc:
            raise DataError(f"could not download {url} ({exc}); download it by hand and unzip it into {root}") from None
        actual = sha256_payload(archive_path)
        if sha256 is None:
            print(f"note: {archive_path.name} cannot be checked against a checksum (none is recorded); its sha256 "
                  f"is {actual}. The unpacked files are checked against their schema.")
        elif actual != sha256:
            raise DataError(f"{url} does not match its checksum (sha256 {actual[:16]}..., expected {sha256[:16]}...); "
                            "fetch again")
        try:
            with zipfile.ZipFile(archive_path) as archive:
                members = safe_members(archive, folder.name)
                if not members:
                    raise DataError(f"{url} holds no {folder.name}/ folder; unzip it by hand into {root}")
                archive.extractall(tmp, members=members)
        except zipfile.BadZipFile as exc:
            raise DataError(f"the download of {url} is not a valid zip ({exc}); fetch again") from None
        verify_folder(Path(tmp) / folder.name)
        shutil.move(str(Path(tmp) / folder.name), folder)


def fetch(name: str, root=None, force: bool = False) -> Path:
    """Download (or verify) dataset ``name`` into the data root; return its folder."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    dataset = DATASETS[name]
    folder = dataset.path(root)
    for remote in dataset.files:
        dest = folder / remote.name
        if dest.is_file() and not force:
            try:
                verify(dest, remote, name)
                continue
            except DataError:
                dest.unlink()  # a corrupt earlier download: fetch it again
        errors = []
        for url in remote.urls:
            try:
                download(url, dest)
                verify(dest, remote, name)
                break
            except DataError as exc:
                dest.unlink(missing_ok=True)
                errors.append(f"{url}: {exc}")
            except OSError as exc:  # URLError, timeouts, refused connections
                errors.append(f"{url}: {exc}")
        else:
            raise DataError(f"could not download {remote.name} for {name}:\n  " + "\n  ".join(errors))
    if dataset.after_fetch is not None:
        dataset.after_fetch(folder)
    return folder

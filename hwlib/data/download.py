"""Checksummed downloads into the data root, shared by every dataset module.

The transfer is pooch's (the fetcher SciPy, scikit-image and MNE use): HTTP(S) with a timeout, a
partial download never taking the final name, :data:`RETRIES` retries after a failed attempt, the
SHA-256 of an archive checked when one is recorded, and zip archives unpacked (``pooch.Unzip``).
What the kit adds:

* checksums of the *decompressed payload* for ``.gz`` files (:func:`sha256_payload`), so a mirror
  that re-compressed the files still passes while a corrupt or truncated file never does;
* several mirrors per file, tried in order (:class:`Remote`);
* an archive is unpacked into a temporary folder and takes its final name only once its tree passes
  the dataset's check; one with a member that points outside its folder (``..``, an absolute path:
  "zip slip") is refused outright, before anything is unpacked;
* every failure is a :class:`DataError` that says what was expected and what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable
from urllib.parse import urlsplit

import pooch

from ..paths import data_root
from ..progress import quiet

__all__ = ["DataError", "Remote", "Dataset", "DATASETS", "RETRIES", "register", "fetch", "sha256_payload",
           "verify", "require_checksum", "download", "unpack_folder", "fetch_zip_folder"]

RETRIES = 2          # attempts after a failed one (pooch waits 1 s, then 2 s, between them)
TIMEOUT = 60.0       # seconds without an answer before an attempt fails


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


# --- checksums of the payload ------------------------------------------------------------------

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


# --- transfer (pooch) --------------------------------------------------------------------------

def download(url: str, dest: Path, sha256: str | None = None) -> Path:
    """Download ``url`` to ``dest`` (replacing it) with pooch; return ``dest``.

    Inputs:
    - url: an ``http://`` or ``https://`` address.
    - dest: the file to write; its folder is created. A partial download never takes this name.
    - sha256: the SHA-256 (hex) of the file as served, checked by pooch before the file takes its
      name; None for no check of the raw file (the caller checks the payload instead).

    Raises :class:`DataError` when every attempt (1 + :data:`RETRIES`) fails: no connection, an HTTP
    error, or bytes that do not match ``sha256``.
    """
    dest = Path(dest)
    if urlsplit(url).scheme not in ("http", "https"):
        raise DataError(f"cannot download {url}: only http:// and https:// addresses are supported")
    dest.unlink(missing_ok=True)          # pooch keeps an existing file whose hash it cannot check
    known_hash = None if sha256 is None else f"sha256:{sha256}"
    fetcher = pooch.create(path=dest.parent, base_url="", registry={dest.name: known_hash}, urls={dest.name: url},
                           retry_if_failed=RETRIES)
    try:
        fetcher.fetch(dest.name, downloader=pooch.HTTPDownloader(progressbar=not quiet(), timeout=TIMEOUT))
    except OSError as exc:                # requests' errors are OSErrors: refused, unknown host, 404, timeout
        raise DataError(f"could not download {url} ({exc})") from None
    except ValueError as exc:             # with an http(s) URL, pooch raises ValueError only on a hash mismatch
        raise DataError(f"{url} does not match its checksum (expected sha256 {sha256[:16]}...): the download "
                        f"is corrupt, truncated or not the expected file; fetch again. [pooch: {exc}]") from None
    return dest


# --- archives ----------------------------------------------------------------------------------

def unpack_folder(archive: Path, top: str, into: Path) -> Path:
    """Unpack the members under ``top/`` of the zip ``archive`` into ``into``; return ``into / top``.

    The member names are checked first: an absolute name or a ``..`` part (zip slip) refuses the whole
    archive, and an archive without a ``top/`` folder is refused too. (``pooch.Unzip`` extracts with
    ``zipfile``, which would itself rewrite such names to stay inside ``into``; the kit refuses them
    instead, so a hostile or broken archive is never half accepted.)
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive.name} is not a valid zip ({exc}); fetch again") from None
    for name in names:
        if name.startswith("/") or ".." in PurePosixPath(name).parts:
            raise DataError(f"refusing to unpack {archive.name}: its member {name!r} points outside the data root")
    if not any(PurePosixPath(name).parts[:1] == (top,) for name in names):
        raise DataError(f"{archive.name} holds no {top}/ folder; unzip it by hand into the data root")
    pooch.Unzip(members=[top + "/"], extract_dir=str(into))(str(archive), "download", None)
    return into / top


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
        with tempfile.TemporaryDirectory(dir=root, prefix=f".{folder.name}-") as tmp:
            try:
                archive = download(url, Path(tmp) / url.rsplit("/", 1)[-1], sha256)
            except DataError as exc:
                raise DataError(f"{exc}; or download it by hand and unzip it into {root}") from None
            if sha256 is None:
                print(f"note: {archive.name} cannot be checked against a checksum (none is recorded); its sha256 "
                      f"is {pooch.file_hash(str(archive))}. The unpacked files are checked against their schema.")
            unpacked = unpack_folder(archive, folder.name, Path(tmp))
            verify_folder(unpacked)
            shutil.move(str(unpacked), folder)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        raise


# --- datasets ----------------------------------------------------------------------------------

def fetch(name: str, root=None, force: bool = False) -> Path:
    """Download (or verify) dataset ``name`` into the data root; return its folder.

    Each file is taken from its first mirror that serves the expected payload; a file already there
    is kept when it verifies (unless ``force``) and fetched again when it does not.
    """
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
                errors.append(str(exc))
        else:
            raise DataError(f"could not download {remote.name} for {name} (tried {len(remote.urls)} mirror(s)); "
                            f"check the connection, or put the file into {folder} by hand:\n  " + "\n  ".join(errors))
    if dataset.after_fetch is not None:
        dataset.after_fetch(folder)
    return folder

"""Every read of a file the sandbox wrote goes through here: what comes back is hostile data.

The student's code can replace any file in a folder the sandbox can write, between the sandbox
writing it and this side reading it: by a symbolic link to a host file (read as the grader's user),
a named pipe (an ``open`` that never returns: one submission would hang the whole class), a device
or socket, a compressed payload that expands to gigabytes, or a forged record. So the trusted side
never writes into a folder a sandbox can write (each sandbox run gets a fresh copy of the
submission, and the job goes in through a read-only mount: :mod:`.sandbox`), and reads what comes
back only with these functions:

* :func:`read_bytes`: the file is opened without following a symbolic link (``O_NOFOLLOW``) and
  without blocking (``O_NONBLOCK``: a FIFO opens at once), must be a regular file (``fstat``), and
  is read up to a size cap;
* :func:`read_json` and :func:`load_npz` on top: an ``.npz`` is a zip of ``.npy`` members; each
  member's declared size and its array header (shape and dtype) are checked against the cap
  *before* anything is decompressed, object arrays (pickles) are refused, and a member can never
  yield more bytes than it declares (``zipfile`` stops there);
* :func:`present` and :func:`mtime`: ``lstat`` only, never through a link.

Anything else raises :class:`Untrusted`, whose message says what the sandbox did, for the
student's feedback ("the result file was replaced by a named pipe"): the group it belongs to scores
0, the run goes on.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile

import numpy as np

__all__ = ["Untrusted", "read_bytes", "read_json", "load_npz", "present", "mtime"]

_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


class Untrusted(Exception):
    """A file from the sandbox that is not what the protocol says: the message is for the feedback."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def read_bytes(path, cap: int, what: str = "the result file") -> bytes:
    """The bytes of the regular file ``path`` (at most ``cap`` of them); :class:`Untrusted` otherwise.

    ``path``'s folder must be one the trusted side made and the sandbox cannot replace (a mount
    point, or a folder outside the sandbox): only its last component can be the sandbox's.
    """
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise Untrusted(f"{what} is missing") from None
    except OSError as exc:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise Untrusted(f"{what} could not be opened ({exc.strerror})") from None
        raise Untrusted(f"{what} was replaced by {_kind(mode)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Untrusted(f"{what} was replaced by {_kind(info.st_mode)}")
        if info.st_size > cap:
            raise Untrusted(f"{what} holds {_mib(info.st_size)}, over the limit of {_mib(cap)}")
        chunks, left = [], cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:     # it grew while being read
            raise Untrusted(f"{what} grew past the limit of {_mib(cap)} while being read")
        return data
    finally:
        os.close(fd)


def read_json(path, cap: int, what: str = "the result file"):
    """The JSON value in ``path`` (:func:`read_bytes`, then parsed); :class:`Untrusted` if it is not JSON."""
    data = read_bytes(path, cap, what)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Untrusted(f"{what} is not valid JSON ({type(exc).__name__})") from None


def load_npz(path, cap: int, what: str = "the result file") -> dict:
    """``{name: array}`` of the ``.npz`` file ``path``, with at most ``cap`` bytes on disk and at most
    ``cap`` bytes of arrays once decompressed (checked from the headers before decompressing)."""
    data = read_bytes(path, cap, what)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Untrusted(f"{what} is not an .npz archive ({exc})") from None
    with archive:
        members = archive.infolist()
        declared = sum(m.file_size for m in members)
        if len(members) > 100_000 or declared > cap:
            raise Untrusted(f"{what} expands to {_mib(declared)} in {len(members)} arrays, "
                            f"over the limit of {_mib(cap)} (a decompression bomb?)")
        arrays, total = {}, 0
        for member in members:
            name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
            try:
                with archive.open(member) as fh:
                    version = np.lib.format.read_magic(fh)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(fh, max_header_size=10_000)
                    if dtype.hasobject:
                        raise Untrusted(f"{what} holds an object array ({name}): refused (no pickles)")
                    nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                    total += nbytes
                    if nbytes > member.file_size or total > cap:
                        raise Untrusted(f"{what}: array {name} of shape {shape} would take {_mib(nbytes)}, "
                                        f"over what it declares or the limit of {_mib(cap)}")
                with archive.open(member) as fh:
                    arrays[name] = np.lib.format.read_array(fh, allow_pickle=False, max_header_size=10_000)
            except Untrusted:
                raise
            except Exception as exc:  # noqa: BLE001 (malformed data can raise anything in the readers)
                raise Untrusted(f"{what}: array {name} could not be read ({type(exc).__name__}: {exc})"[:500]) from None
        return arrays


def present(path) -> bool:
    """Whether ``path`` exists (as anything: a link counts, and is never followed)."""
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def mtime(path) -> float | None:
    """``path``'s modification time (``lstat``: of a link itself), None when it is not there."""
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return None

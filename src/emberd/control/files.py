"""Uploads streamed to disk: never whole in memory, never left half-written.

A body is written piece by piece, as the web server forwards it, to a
hidden temp file in the target directory; the size limit is checked as it
grows.  Only a complete body is fsync'ed and renamed to its final name.  A
full disk (507), an oversized body (413) or an abandoned request removes
the temp file.  Names come from the client, so they are checked: one path
component of ordinary characters, not hidden.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import tempfile

from ..fcgi.responder import Request
from .tunables import Refused

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_FULL = (errno.ENOSPC, errno.EDQUOT)


def safe_name(name: str | None) -> str:
    if not name:
        raise Refused(400, "name is missing (?name=...)")
    if not _NAME.fullmatch(name) or name.endswith((".tmp", ".part")):
        raise Refused(400, f"name {name[:64]!r} is not allowed: one file name of letters, "
                      "digits and ._+- that does not start with a dot")
    return name


class Received:
    __slots__ = ("path", "sha256", "size")

    def __init__(self, path: str, size: int, sha256: str) -> None:
        self.path = path
        self.size = size
        self.sha256 = sha256


async def receive(req: Request, directory: str, name: str, max_bytes: int) -> Received:
    """Store the request body as ``directory/name``; Refused, or Aborted from ``read()``."""
    if req.content_length > max_bytes:
        raise Refused(413, f"{req.content_length} bytes is over the limit of {max_bytes}")
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
    digest = hashlib.sha256()
    size = 0
    try:
        while piece := await req.read():
            size += len(piece)
            if size > max_bytes:
                raise Refused(413, f"upload is over the limit of {max_bytes} bytes")
            digest.update(piece)
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
        final = os.path.join(directory, name)
        os.replace(tmp, final)
    except OSError as exc:
        _discard(fd, tmp)
        if exc.errno in _FULL:
            raise Refused(507, f"no space left in {directory}") from None
        raise Refused(500, f"cannot store the upload: {exc.strerror}") from None
    except BaseException:
        _discard(fd, tmp)
        raise
    os.close(fd)
    _sync_dir(directory)
    return Received(final, size, digest.hexdigest())


def _discard(fd: int, tmp: str) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _sync_dir(directory: str) -> None:
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)

"""Request bodies: in pooled chunks up to a limit, beyond it in temp files.

A body stays in chunks while it is at most ``emberd.body-memory-max`` bytes.
When it grows past that, what is in memory is written to a temp file and
the rest follows it there (lighttpd does the same since 1.4.60: once a queue
spills, all of it goes to disk, freeing memory sooner).  A temp file is
closed at ``server.upload-temp-file-size`` and the next one started.

Temp files live in ``server.upload-dirs``, tried in order: when a directory
is full (ENOSPC, EDQUOT) the partial write is cut off and the next directory
takes over.  Files are opened with O_TMPFILE where the filesystem allows it,
so they have no name and vanish with their descriptor, even if emberd is
killed; elsewhere they are unlinked right after creation.  Nothing is left
behind when a request ends, fails or is aborted.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Iterator, Sequence

from ..http.message import FilePart, OpenFile, Part
from .chunk import Chunk, ChunkPool
from .stats import Stats

_FULL = (errno.ENOSPC, errno.EDQUOT)
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT)
_names = itertools.count()


class BodyError(Exception):
    """The body cannot be kept: ``status`` is the answer (413, 507 or 500)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def open_temp(directory: str) -> int:
    """A nameless, private file in ``directory``."""
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        try:
            return os.open(directory, tmpfile | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            if exc.errno not in _NO_TMPFILE:
                raise
    path = os.path.join(directory, f"emberd-upload-{os.getpid()}-{next(_names)}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.unlink(path)
    return fd


class TempFile:
    __slots__ = ("fd", "size")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0


class Body:
    """The body of one request, as received so far."""

    def __init__(self, pool: ChunkPool, stats: Stats, *, memory_max: int, max_size: int,
                 upload_dirs: Sequence[str], temp_file_size: int) -> None:
        self.pool = pool
        self.stats = stats
        self.memory_max = memory_max
        self.max_size = max_size  # bytes; 0: no limit
        self.upload_dirs = list(upload_dirs)
        self.temp_file_size = temp_file_size
        self.chunks: list[Chunk] = []
        self.files: list[TempFile] = []
        self.size = 0
        self.start = 0  # bytes before this were taken by a consumer and let go (forget())
        self.done = False  # the whole body has arrived
        self._dir = 0  # index of the upload dir in use

    @property
    def in_memory(self) -> bool:
        return not self.files

    def append(self, data: memoryview | bytes) -> None:
        n = len(data)
        if not n:
            return
        if self.max_size and self.size + n > self.max_size:
            raise BodyError(413, f"request body larger than {self.max_size} bytes")
        if not self.files and self.size - self.start + n <= self.memory_max:
            self._to_memory(memoryview(data))
        else:
            if not self.files:
                self._spill()
            self._to_files(memoryview(data))
        self.size += n

    def _to_memory(self, data: memoryview) -> None:
        chunks = self.chunks
        self.stats.body_bytes_in_memory += len(data)
        while data:
            if not chunks or not chunks[-1].room():
                chunks.append(self.pool.acquire())
            c = chunks[-1]
            n = min(c.room(), len(data))
            c.mem[c.end : c.end + n] = data[:n]
            c.end += n
            data = data[n:]

    def _release_chunks(self) -> None:
        chunks, self.chunks = self.chunks, []
        for c in chunks:
            self.stats.body_bytes_in_memory -= len(c)
            self.pool.release(c)

    def _spill(self) -> None:
        try:
            for c in self.chunks:
                self._to_files(c.data())
        finally:
            self._release_chunks()

    def _new_file(self) -> TempFile:
        while self._dir < len(self.upload_dirs):
            try:
                fd = open_temp(self.upload_dirs[self._dir])
            except OSError as exc:
                if exc.errno in _FULL:
                    self._dir += 1
                    continue
                raise BodyError(500, f"cannot create a temp file in "
                                f"{self.upload_dirs[self._dir]}: {exc.strerror}") from None
            f = TempFile(fd)
            self.files.append(f)
            self.stats.temp_files += 1
            return f
        raise BodyError(507, "no space left in any of server.upload-dirs")

    def _to_files(self, data: memoryview) -> None:
        while data:
            f = self.files[-1] if self.files else None
            if f is None or f.size >= self.temp_file_size:
                f = self._new_file()
            want = min(len(data), self.temp_file_size - f.size)
            try:
                n = os.write(f.fd, data[:want])
            except OSError as exc:
                if exc.errno not in _FULL:
                    raise BodyError(500, f"writing a temp file: {exc.strerror}") from None
                # this directory is full: cut off any partial write, go to the next one
                os.ftruncate(f.fd, f.size)
                if f.size == 0:
                    self.files.pop()
                    os.close(f.fd)
                    self.stats.temp_files -= 1
                self._dir += 1
                self._new_file()
                continue
            f.size += n
            self.stats.temp_file_bytes += n
            data = data[n:]

    def forget(self, upto: int) -> None:
        """A consumer streaming the body on has taken its first ``upto`` bytes: let go of
        the chunks and temp files that hold only bytes before that."""
        while self.chunks and self.start + len(self.chunks[0]) <= upto:
            c = self.chunks.pop(0)
            self.start += len(c)
            self.stats.body_bytes_in_memory -= len(c)
            self.pool.release(c)
        if self.chunks:
            return
        # a file still being written is kept: appends go on into it
        while len(self.files) > 1 and self.start + self.files[0].size <= upto:
            f = self.files.pop(0)
            self.start += f.size
            os.close(f.fd)
            self.stats.temp_files -= 1
            self.stats.temp_file_bytes -= f.size

    def segments(self) -> Iterator[memoryview | tuple[int, int]]:
        """The body in order: memoryviews of chunks, or (fd, size) of temp files."""
        for c in self.chunks:
            yield c.data()
        for f in self.files:
            yield (f.fd, f.size)

    def as_parts(self) -> list[Part]:
        """The body as response parts that stay valid after ``close()``."""
        parts: list[Part] = []
        for seg in self.segments():
            if isinstance(seg, memoryview):
                parts.append(bytes(seg))
            elif seg[1]:
                fd, size = seg
                parts.append(FilePart(OpenFile(os.dup(fd), size), 0, size))
        return parts

    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (for a consumer that streams the body on)."""
        out = bytearray()
        pos = self.start
        for seg in self.segments():
            length = len(seg) if isinstance(seg, memoryview) else seg[1]
            if offset < pos + length:
                start = offset - pos
                take = min(n - len(out), length - start)
                if isinstance(seg, memoryview):
                    out += seg[start : start + take]
                else:
                    out += os.pread(seg[0], take, start)
                offset += take
                if len(out) >= n:
                    break
            pos += length
        return bytes(out)

    def read(self) -> bytes:
        """The whole body as bytes (for small bodies and tests)."""
        out = bytearray()
        for seg in self.segments():
            if isinstance(seg, memoryview):
                out += seg
            else:
                fd, size = seg
                out += os.pread(fd, size, 0)
        return bytes(out)

    def close(self) -> None:
        self._release_chunks()
        for f in self.files:
            os.close(f.fd)
            self.stats.temp_files -= 1
            self.stats.temp_file_bytes -= f.size
        self.files.clear()

"""The chunk pool: every byte emberd buffers lives in a fixed-size chunk.

Theory of operation: chunks of ``server.chunkqueue-chunk-sz`` bytes are carved
from slabs of ``emberd.chunk-slab-size`` bytes mapped with ``mmap``.  Memory
that comes from mmap goes back to the kernel with munmap, whatever malloc's
heap looks like -- which is what lighttpd bug #3084 was about: freed buffers
kept by malloc.  A slab none of whose chunks is in use is unmapped at the
maintenance tick, except ``emberd.chunk-reserve`` of them kept for the next
burst.  New chunks come from the oldest slab that has room, so that younger
slabs empty out after a burst and can be released.

A chunk's memory is a memoryview slice of its slab.  ``mmap.close()`` raises
BufferError while any slice of the mapping is alive, so a slab that is free
in the pool's books but still referenced elsewhere (a bug: someone kept a
view of a released chunk) is not unmapped; it is counted in ``pinned`` and
tried again at the next tick.

Chunks handed to ``transport.write()`` must not be released while the
transport may still hold them: from Python 3.12 on, asyncio keeps the
caller's buffer instead of copying it.  The connection releases written
chunks only once its transport reports an empty write buffer.
"""

from __future__ import annotations

import heapq
import mmap

from .stats import Stats


class Slab:
    __slots__ = ("free", "mm", "serial", "view")

    def __init__(self, serial: int, size: int, chunk_size: int) -> None:
        self.serial = serial
        self.mm = mmap.mmap(-1, size)
        self.view = memoryview(self.mm)
        # offsets handed out from the low end first
        self.free = list(range(size - chunk_size, -1, -chunk_size))

    def __lt__(self, other: Slab) -> bool:
        return self.serial < other.serial

    def unmap(self) -> bool:
        """Release the mapping; False while some view of it is still alive."""
        self.view.release()
        try:
            self.mm.close()
        except BufferError:
            return False
        return True


class Chunk:
    """A fixed-size buffer: bytes ``mem[start:end]`` are the chunk's data."""

    __slots__ = ("end", "mem", "offset", "slab", "start")

    def __init__(self, slab: Slab, offset: int, mem: memoryview) -> None:
        self.slab = slab
        self.offset = offset
        self.mem = mem
        self.start = 0
        self.end = 0

    def data(self) -> memoryview:
        return self.mem[self.start : self.end]

    def room(self) -> int:
        return len(self.mem) - self.end

    def __len__(self) -> int:
        return self.end - self.start


class ChunkPool:
    def __init__(self, chunk_size: int, slab_size: int, reserve: int, stats: Stats) -> None:
        if slab_size < chunk_size:
            raise ValueError("a slab must hold at least one chunk")
        self.chunk_size = chunk_size
        self.per_slab = slab_size // chunk_size
        self.slab_size = self.per_slab * chunk_size
        self.reserve = reserve
        self.stats = stats
        self.slabs: list[Slab] = []
        self.pinned: list[Slab] = []  # free in the books, but a view is still alive
        self._room: list[Slab] = []  # heap of slabs with free chunks, oldest first
        self._serial = 0
        stats.chunk_size = self.chunk_size

    def acquire(self) -> Chunk:
        room = self._room
        while room and not room[0].free:
            heapq.heappop(room)
        if not room:
            self._serial += 1
            slab = Slab(self._serial, self.slab_size, self.chunk_size)
            self.slabs.append(slab)
            heapq.heappush(room, slab)
            self.stats.slabs = len(self.slabs)
        slab = room[0]
        offset = slab.free.pop()
        if not slab.free:
            heapq.heappop(room)
        s = self.stats
        s.chunks_used += 1
        if s.chunks_used > s.chunks_high_water:
            s.chunks_high_water = s.chunks_used
        return Chunk(slab, offset, slab.view[offset : offset + self.chunk_size])

    def release(self, chunk: Chunk) -> None:
        slab = chunk.slab
        chunk.mem = memoryview(b"")  # drop the slice; a stale user now sees nothing
        chunk.start = chunk.end = 0
        if not slab.free:
            heapq.heappush(self._room, slab)
        slab.free.append(chunk.offset)
        self.stats.chunks_used -= 1

    def chunks_free(self) -> int:
        return len(self.slabs) * self.per_slab - self.stats.chunks_used

    def trim(self) -> int:
        """Unmap wholly free slabs beyond the reserve; returns how many were released."""
        released = 0
        retry, self.pinned = self.pinned, []
        for slab in retry:
            if slab.unmap():
                released += 1
            else:
                self.pinned.append(slab)
        empty = [s for s in self.slabs if len(s.free) == self.per_slab]
        # keep the oldest free slabs as the reserve: new chunks come from them first
        for slab in sorted(empty, reverse=True)[: max(0, len(empty) - self.reserve)]:
            self.slabs.remove(slab)
            if slab.unmap():
                released += 1
            else:
                self.pinned.append(slab)
        if released or retry or empty:
            self._room = [s for s in self.slabs if s.free]
            heapq.heapify(self._room)
        s = self.stats
        s.slabs = len(self.slabs)
        s.slabs_pinned = len(self.pinned)
        s.slabs_released += released
        return released

    def close(self) -> None:
        for slab in self.slabs + self.pinned:
            slab.unmap()
        self.slabs.clear()
        self.pinned.clear()
        self._room.clear()

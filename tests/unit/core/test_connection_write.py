"""Chunks handed to the transport are recycled only when the transport is done with them.

Python >= 3.12 keeps the caller's buffer in the transport's queue instead of
copying it; a chunk recycled right after write() then gets overwritten while
still queued.  The fake transport here behaves like 3.12 (it queues the
views it is given), so this test catches the corruption on any Python.
"""

from __future__ import annotations

from collections import deque

from emberd.core.chunk import ChunkPool
from emberd.core.connection import Connection
from emberd.core.stats import Stats


class QueueingTransport:
    """Keeps written views queued (no copy) until drain() is called."""

    def __init__(self):
        self.queue: deque[memoryview] = deque()
        self.sent = bytearray()

    def write(self, data):
        self.queue.append(memoryview(data))

    def get_write_buffer_size(self):
        return sum(len(v) for v in self.queue)

    def drain(self, n=None):
        while self.queue and (n is None or n > 0):
            v = self.queue[0]
            take = len(v) if n is None else min(n, len(v))
            self.sent += v[:take]
            if take == len(v):
                self.queue.popleft()
            else:
                self.queue[0] = v[take:]
            if n is not None:
                n -= take


class FakeServer:
    def __init__(self):
        stats = Stats()
        self.shared = type("S", (), {"pool": ChunkPool(1024, 4096, 0, stats),
                                     "stats": stats})()


def test_chunks_are_not_reused_while_queued():
    server = FakeServer()
    conn = Connection(server, ":0")
    conn.transport = QueueingTransport()
    pool = server.shared.pool
    expected = bytearray()
    for i in range(20):
        c = pool.acquire()
        c.mem[:] = bytes([65 + i]) * 1024
        c.end = 1024
        expected += c.mem
        conn.write_chunk(c)
        # whatever is free gets scribbled on at once, as the next reader would
        scratch = pool.acquire()
        scratch.mem[:] = b"#" * 1024
        pool.release(scratch)
        if i % 3 == 2:
            conn.transport.drain(1500)
            conn._reclaim()
    conn.transport.drain()
    conn._reclaim()
    assert bytes(conn.transport.sent) == bytes(expected)
    assert server.shared.stats.chunks_used == 0


def test_partially_sent_chunk_is_held():
    server = FakeServer()
    conn = Connection(server, ":0")
    conn.transport = QueueingTransport()
    c = server.shared.pool.acquire()
    c.end = 1024
    conn.write_chunk(c)
    conn.transport.drain(1000)
    conn._reclaim()
    assert server.shared.stats.chunks_used == 1
    conn.transport.drain()
    conn._reclaim()
    assert server.shared.stats.chunks_used == 0

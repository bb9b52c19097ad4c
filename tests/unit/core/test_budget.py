"""The memory budget's arithmetic (without the measured parts)."""

from __future__ import annotations

from emberd.config.loader import load
from emberd.core import budget

BASE = 'server.document-root = "/srv"\n'


def lines(text: str) -> dict[str, budget.Line]:
    return {line.directive + ":" + line.what.split(" (")[0]: line
            for line in budget.lines(load("t.conf", BASE + text), measure=False)}


def test_http1_only_connection_arithmetic():
    got = lines('server.feature-flags = ( "server.h2proto" => "disable" )\n'
                "server.max-connections = 10\nserver.chunkqueue-chunk-sz = 1024\n"
                "server.max-request-field-size = 4096\nemberd.body-memory-max = 3000\n")
    conn = got["server.max-connections:per HTTP/1.1 connection"]
    assert conn.count == 10
    assert conn.each == (budget.H1_OBJECTS + 1024 + 2 * 4096 + 3072
                         + max(budget.H1_STREAM_QUEUE, budget.SMALL_RESPONSE) + 2 * 1024)


def test_http2_connection_counts_streams_and_records():
    got = lines("server.max-connections = 4\nh2.max-concurrent-streams = 2\n"
                "h2.max-closed-streams = 50\nserver.chunkqueue-chunk-sz = 1024\n"
                "server.max-request-field-size = 2048\nemberd.body-memory-max = 1024\n")
    conn = got["server.max-connections:per HTTP/2 connection"]
    stream = budget.H2_STREAM_OBJECTS + 2048 + 1024 + budget.H2_STREAM_QUEUE
    assert conn.each == (budget.H2_OBJECTS + budget.HPACK_TABLES + 1024 + 16384 + 65536
                         + budget.OUTPUT_BOUND + 2 * stream + 50 * budget.H2_CLOSED_RECORD)
    assert conn.total == 4 * conn.each


def test_pools_and_total():
    got = lines("emberd.chunk-reserve = 3\nemberd.chunk-slab-size = 131072\n"
                "emberd.request-pool-size = 7\nemberd.stat-cache-max-entries = 100\n"
                "emberd.malloc-top-pad = 4096\n")
    assert got["emberd.chunk-reserve:free slabs kept for the next burst"].total == 3 * 131072
    assert got["emberd.request-pool-size:pooled request objects"].total == \
        7 * budget.REQUEST_OBJECT
    assert got["emberd.stat-cache-max-entries:stat cache"].total == 100 * budget.STAT_CACHE_ENTRY
    assert got["emberd.malloc-top-pad:heap top kept by malloc_trim"].total == 4096
    all_lines = list(got.values())
    assert budget.total(all_lines) == sum(line.total or 0 for line in all_lines)


def test_unbounded_settings_are_named():
    got = lines('emberd.malloc-trim = "disable"\nserver.upload-dirs = ( "/dev/shm" )\n'
                "server.max-request-size = 0\n")
    trim = got["emberd.malloc-trim:freed heap memory"]
    assert trim.total is None
    tmp = got["server.max-request-size:request bodies in temp files on tmpfs"]
    assert tmp.each is None and "server.max-request-size" in tmp.note
    assert budget.total(list(got.values())) is None
    bounded = lines('server.upload-dirs = ( "/dev/shm" )\nserver.max-request-size = 100\n'
                    "emberd.body-memory-max = 1024\n")
    assert bounded["server.max-request-size:request bodies in temp files on tmpfs"].each == \
        100 * 1024 - 1024

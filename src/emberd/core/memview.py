"""One snapshot of where emberd's memory is: the memory view of mod_status and the log line.

What the kernel says (VmRSS, VmHWM, RssAnon, RssShmem, PSS), what emberd's
own pools hold (chunks, request objects, bodies in memory and in temp
files, the stat cache), what HTTP/2 keeps per connection (open streams and
the records of closed ones), what glibc's malloc holds (mallinfo2) and what
Python's garbage collector has seen.  ``emberd.memory-stats-interval``
logs the same numbers as one line (``line()``).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from typing import Any

from . import memory
from .runtime import Shared


def _h2_state(connections: Iterable[Any]) -> tuple[int, int, int]:
    """(HTTP/2 connections, open streams, closed-stream records) over every connection."""
    conns = streams = closed = 0
    for conn in connections:
        driver = getattr(conn, "driver", None)
        sess = getattr(driver, "sess", None)
        if sess is None:
            continue
        conns += 1
        streams += len(driver.streams)  # type: ignore[union-attr]
        closed += sess.closed_records
    return conns, streams, closed


def snapshot(shared: Shared, connections: Iterable[Any]) -> dict[str, Any]:
    st = memory.proc_status()
    s = shared.stats
    pool = shared.pool
    h2_conns, h2_streams, h2_closed = _h2_state(connections)
    backends = shared.backends.describe()
    return {
        "uptime_s": round(time.time() - s.started, 1),
        "process": {
            "vmrss_kb": st.get("VmRSS", 0), "vmhwm_kb": st.get("VmHWM", 0),
            "rssanon_kb": st.get("RssAnon", 0), "rssfile_kb": st.get("RssFile", 0),
            "rssshmem_kb": st.get("RssShmem", 0), "pss_kb": memory.pss_kb(),
            "python_allocator": memory.python_allocator(),
        },
        "chunks": {
            "chunk_size": pool.chunk_size, "slab_size": pool.slab_size, "slabs": s.slabs,
            "slabs_reserve": pool.reserve, "slabs_released": s.slabs_released,
            "slabs_pinned": s.slabs_pinned, "used": s.chunks_used, "free": pool.chunks_free(),
            "high_water": s.chunks_high_water,
        },
        "request_pool": {
            "cap": s.request_pool_cap, "pooled": s.request_pool_pooled,
            "in_use": s.request_pool_in_use, "trimmed": s.request_pool_trimmed,
        },
        "connections": {
            "open": s.connections, "high_water": s.connections_high_water,
            "http1": s.connections_h1, "http2": s.connections_h2,
            "accepted": s.connections_accepted, "accept_paused": s.accept_paused,
        },
        "http2": {"connections": h2_conns, "streams_open": h2_streams,
                  "closed_stream_records": h2_closed},
        "bodies": {"in_memory_bytes": s.body_bytes_in_memory, "temp_files": s.temp_files,
                   "temp_file_bytes": s.temp_file_bytes},
        "stat_cache": {"entries": s.stat_cache_entries},
        "backends": {
            "requests": s.backend_requests, "active": s.backend_active,
            "connects": s.backend_connects, "reused": s.backend_reused,
            "failures": s.backend_failures, "processes": backends,
        },
        "malloc": memory.mallinfo(),
        "malloc_trims": s.malloc_trims,
        "gc": {"counts": list(gc.get_count()),
               "collections": [g["collections"] for g in gc.get_stats()]},
        "requests": {"served": s.requests, "active": s.requests_active,
                     "by_class": dict(s.responses_by_class),
                     "bytes_in": s.bytes_in, "bytes_out": s.bytes_out},
    }


def line(shared: Shared, connections: Iterable[Any]) -> str:
    """The snapshot as one log line."""
    v = snapshot(shared, connections)
    p, c, b = v["process"], v["chunks"], v["bodies"]
    h2 = v["http2"]
    return (f"rss={p['vmrss_kb']} kB hwm={p['vmhwm_kb']} kB anon={p['rssanon_kb']} kB "
            f"pss={p['pss_kb']} kB allocator={p['python_allocator']} slabs={c['slabs']} "
            f"chunks used={c['used']} free={c['free']} high-water={c['high_water']} "
            f"connections={v['connections']['open']} h2-streams={h2['streams_open']} "
            f"h2-closed-records={h2['closed_stream_records']} "
            f"requests-pooled={v['request_pool']['pooled']} "
            f"body-memory={b['in_memory_bytes']} temp-files={b['temp_files']} "
            f"({b['temp_file_bytes']} bytes) stat-cache={v['stat_cache']['entries']} "
            f"backends-active={v['backends']['active']} requests={v['requests']['served']}")

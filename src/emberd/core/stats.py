"""Counters the server keeps about itself: pools, connections, bodies, requests.

One Stats object per server process.  The parts of emberd that own a
resource update its counters where they take and give it back, so reading
them costs nothing on the hot path; tests read them in-process and the
status module publishes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class Stats:
    started: float = 0.0
    # chunk pool
    chunk_size: int = 0
    slabs: int = 0
    slabs_released: int = 0
    slabs_pinned: int = 0
    chunks_used: int = 0
    chunks_high_water: int = 0
    # request pool (HTTP/2 streams)
    request_pool_cap: int = 0
    request_pool_pooled: int = 0
    request_pool_in_use: int = 0
    request_pool_trimmed: int = 0
    # connections
    connections: int = 0
    connections_high_water: int = 0
    connections_h1: int = 0
    connections_h2: int = 0
    connections_accepted: int = 0
    accept_paused: int = 0  # times accepting stopped at server.max-connections
    # request bodies
    body_bytes_in_memory: int = 0
    temp_files: int = 0
    temp_file_bytes: int = 0
    # requests
    requests: int = 0
    requests_active: int = 0
    responses_by_class: dict[str, int] = field(default_factory=dict)
    bytes_in: int = 0
    bytes_out: int = 0
    # FastCGI backends
    backend_requests: int = 0
    backend_active: int = 0  # requests a backend is working on now
    backend_connects: int = 0  # connections opened
    backend_reused: int = 0  # requests sent on a kept connection (keep-conn)
    backend_failures: int = 0  # requests answered 5xx because of the backend
    # caches
    stat_cache_entries: int = 0
    # maintenance
    ticks: int = 0
    malloc_trims: int = 0

    def count_response(self, status: int) -> None:
        key = f"{status // 100}xx"
        self.responses_by_class[key] = self.responses_by_class.get(key, 0) + 1

    def snapshot(self) -> dict[str, object]:
        return asdict(self)

"""What a request needs from the server: one configuration and what it set up.

A Runtime is built for each loaded configuration: the plugin instances, the
hooks they implement in module order, and the server-wide limits read once.
A graceful restart builds a new Runtime; a request keeps the one it started
with.  The parts that outlive configurations (the chunk pool, statistics,
the request pool, the stat cache, the error log) are shared through
``Shared``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config.settings import ServerConfig
from ..modules import HOOKS, Plugin
from .chunk import ChunkPool
from .errorlog import ErrorLog
from .gateway import Registry
from .reqpool import RequestPool
from .statcache import StatCache
from .stats import Stats


@dataclass(slots=True)
class Shared:
    stats: Stats
    pool: ChunkPool
    requests: RequestPool
    statcache: StatCache
    errorlog: ErrorLog
    backends: Registry
    connections: set[Any] = field(default_factory=set)  # the server's open connections


class Runtime:
    def __init__(self, config: ServerConfig, shared: Shared) -> None:
        self.config = config
        self.shared = shared
        self.stats = shared.stats
        self.pool = shared.pool
        self.requests = shared.requests
        self.statcache = shared.statcache
        self.log = shared.errorlog.write
        c = config.values
        self.max_head: int = c["server.max-request-field-size"]
        self.max_target: int = c["emberd.max-request-target-size"]
        self.parseopts: dict[str, bool] = c["server.http-parseopts"]
        self.features: dict[str, Any] = c["server.feature-flags"]
        self.upload_dirs: tuple[str, ...] = c["server.upload-dirs"]
        self.temp_file_size: int = c["server.upload-temp-file-size"]
        self.plugins: list[Plugin] = [cls(self) for cls in config.plugins]
        self.hooks: dict[str, list[Callable[..., Any]]] = {
            h: [getattr(p, h) for p in self.plugins if p.overrides(h)] for h in HOOKS
        }

    def close(self) -> None:
        for p in self.plugins:
            p.close()

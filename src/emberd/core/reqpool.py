"""The request pool: Request objects reused instead of allocated per request.

lighttpd keeps a "small request pool" for HTTP/2 streams (``reqpool.c``);
emberd uses one for every protocol.  At most ``emberd.request-pool-size``
objects are kept; the maintenance tick frees all pooled ones (as lighttpd's
``request_pool_free()`` does), so a burst leaves nothing behind for long.
"""

from __future__ import annotations

from ..http.message import Request
from .stats import Stats


class RequestPool:
    def __init__(self, cap: int, stats: Stats) -> None:
        self.cap = cap
        self.stats = stats
        self._free: list[Request] = []
        stats.request_pool_cap = cap

    def acquire(self, method: str, target: str, version: str,
                headers: list[tuple[str, str]]) -> Request:
        s = self.stats
        s.request_pool_in_use += 1
        if self._free:
            req = self._free.pop()
            s.request_pool_pooled = len(self._free)
            req.reset(method, target, version, headers)
            return req
        return Request(method, target, version, headers)

    def release(self, req: Request) -> None:
        s = self.stats
        s.request_pool_in_use -= 1
        req.clear()
        if len(self._free) < self.cap:
            self._free.append(req)
            s.request_pool_pooled = len(self._free)

    def trim(self) -> None:
        self.stats.request_pool_trimmed += len(self._free)
        self._free.clear()
        self.stats.request_pool_pooled = 0

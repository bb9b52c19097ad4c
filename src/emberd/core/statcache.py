"""The stat cache: file metadata kept for two seconds (``server.stat-cache-engine``).

"simple" is lighttpd's default engine: an entry is trusted for 2 s, so a
page with many small files does not stat each of them per request, while a
changed file is seen within 2 s.  "disable" (or "none") stats every time.
The number of entries is bounded by ``emberd.stat-cache-max-entries``: a
client asking for many different names cannot grow the cache without limit;
when it is full, expired entries go first, then the oldest.
"""

from __future__ import annotations

import os
import stat as st
import time

from .stats import Stats

TTL = 2.0  # seconds, as lighttpd's simple engine


class StatCache:
    def __init__(self, enabled: bool, max_entries: int, stats: Stats) -> None:
        self.enabled = enabled and max_entries > 0
        self.max_entries = max_entries
        self.stats = stats
        # path -> (time, stat result or errno)
        self._entries: dict[str, tuple[float, os.stat_result | int]] = {}

    def stat(self, path: str) -> os.stat_result:
        """os.stat(path) through the cache; raises OSError like os.stat."""
        if not self.enabled:
            return os.stat(path)
        now = time.monotonic()
        hit = self._entries.get(path)
        if hit is not None and now - hit[0] < TTL:
            result = hit[1]
        else:
            try:
                result = os.stat(path)
            except OSError as exc:
                result = exc.errno or 0
            self._store(path, now, result)
        if isinstance(result, int):
            raise OSError(result, os.strerror(result), path)
        return result

    def _store(self, path: str, now: float, result: os.stat_result | int) -> None:
        entries = self._entries
        if path not in entries and len(entries) >= self.max_entries:
            self.cleanup(now)
            if len(entries) >= self.max_entries:
                del entries[next(iter(entries))]  # the oldest insertion
        entries.pop(path, None)  # re-insert at the end: dict order is age order
        entries[path] = (now, result)
        self.stats.stat_cache_entries = len(entries)

    def cleanup(self, now: float | None = None) -> None:
        """Drop expired entries (every second, and when the cache is full)."""
        if now is None:
            now = time.monotonic()
        entries = self._entries
        while entries:
            path = next(iter(entries))
            if now - entries[path][0] < TTL:
                break
            del entries[path]
        self.stats.stat_cache_entries = len(entries)

    def contains_symlink(self, path: str, stop: str = "/") -> bool:
        """Whether any component of ``path`` (below ``stop``) is a symbolic link."""
        while path and path != stop and path != "/":
            try:
                if st.S_ISLNK(os.lstat(path).st_mode):
                    return True
            except OSError:
                return False
            path = os.path.dirname(path)
        return False

    def clear(self) -> None:
        self._entries.clear()
        self.stats.stat_cache_entries = 0

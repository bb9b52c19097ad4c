"""The stat cache: entries trusted for two seconds, bounded in number."""

from __future__ import annotations

import os

import pytest

from emberd.core import statcache as sc
from emberd.core.statcache import StatCache
from emberd.core.stats import Stats


def test_entries_are_reused_within_the_ttl(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(sc.time, "monotonic", lambda: clock[0])
    f = tmp_path / "f"
    f.write_text("a")
    cache = StatCache(True, 10, Stats())
    assert cache.stat(str(f)).st_size == 1
    f.write_text("abc")
    assert cache.stat(str(f)).st_size == 1  # cached
    clock[0] += sc.TTL
    assert cache.stat(str(f)).st_size == 3  # expired


def test_errors_are_cached_too(tmp_path):
    cache = StatCache(True, 10, Stats())
    with pytest.raises(FileNotFoundError):
        cache.stat(str(tmp_path / "missing"))
    (tmp_path / "missing").write_text("now")
    with pytest.raises(OSError):
        cache.stat(str(tmp_path / "missing"))


def test_disabled_cache_always_stats(tmp_path):
    f = tmp_path / "f"
    f.write_text("a")
    cache = StatCache(False, 10, Stats())
    cache.stat(str(f))
    f.write_text("abcd")
    assert cache.stat(str(f)).st_size == 4


def test_the_number_of_entries_is_bounded(tmp_path):
    stats = Stats()
    cache = StatCache(True, 5, stats)
    for i in range(50):
        with pytest.raises(OSError):
            cache.stat(str(tmp_path / f"no-{i}"))
    assert stats.stat_cache_entries == 5


def test_contains_symlink(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_text("x")
    os.symlink(real, tmp_path / "link")
    cache = StatCache(True, 5, Stats())
    assert cache.contains_symlink(str(tmp_path / "link" / "f"))
    assert not cache.contains_symlink(str(real / "f"))

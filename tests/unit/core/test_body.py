"""Request bodies: memory, spill to temp files, full directories, limits, cleanup."""

from __future__ import annotations

import errno
import os

import pytest

from emberd.core import body as body_mod
from emberd.core.body import Body, BodyError
from emberd.core.chunk import ChunkPool
from emberd.core.stats import Stats


def make(tmp_path, *, memory_max=4096, max_size=0, dirs=None, file_size=1 << 20):
    stats = Stats()
    pool = ChunkPool(1024, 65536, 0, stats)
    dirs = dirs or [str(tmp_path)]
    return Body(pool, stats, memory_max=memory_max, max_size=max_size, upload_dirs=dirs,
                temp_file_size=file_size), stats


def test_small_body_stays_in_memory(tmp_path):
    b, stats = make(tmp_path)
    b.append(b"x" * 3000)
    assert b.in_memory and b.read() == b"x" * 3000
    assert stats.chunks_used == 3 and stats.body_bytes_in_memory == 3000
    b.close()
    assert stats.chunks_used == 0 and stats.body_bytes_in_memory == 0


def test_large_body_spills_everything_to_a_temp_file(tmp_path):
    b, stats = make(tmp_path)
    data = os.urandom(10000)
    for i in range(0, len(data), 777):
        b.append(data[i : i + 777])
    assert not b.in_memory and b.read() == data
    assert stats.chunks_used == 0 and stats.temp_files == 1
    assert stats.temp_file_bytes == len(data)
    assert os.listdir(tmp_path) == []  # O_TMPFILE: nothing visible
    b.close()
    assert stats.temp_files == 0 and stats.temp_file_bytes == 0


def test_temp_files_rotate_at_the_configured_size(tmp_path):
    b, stats = make(tmp_path, memory_max=0, file_size=4096)
    b.append(b"y" * 10000)
    assert [f.size for f in b.files] == [4096, 4096, 1808]
    assert stats.temp_files == 3
    b.close()


def test_limit_gives_413(tmp_path):
    b, _ = make(tmp_path, max_size=100)
    b.append(b"a" * 100)
    with pytest.raises(BodyError) as exc:
        b.append(b"a")
    assert exc.value.status == 413
    b.close()


class FullDisk:
    """os.write that fails with ENOSPC for files of the given directories."""

    def __init__(self, full_fds):
        self.full_fds = full_fds
        self.real = os.write

    def __call__(self, fd, data):
        if fd in self.full_fds():
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(fd, data)


def test_a_full_directory_hands_over_to_the_next(tmp_path, monkeypatch):
    a, c = tmp_path / "a", tmp_path / "c"
    a.mkdir()
    c.mkdir()
    b, stats = make(tmp_path, memory_max=0, dirs=[str(a), str(c)])
    b.append(b"1" * 100)
    first = b.files[0].fd
    monkeypatch.setattr(body_mod.os, "write", FullDisk(lambda: {first}))
    b.append(b"2" * 100)
    assert len(b.files) == 2 and b.read() == b"1" * 100 + b"2" * 100
    assert stats.temp_file_bytes == 200
    b.close()


def test_all_directories_full_gives_507_and_keeps_nothing(tmp_path, monkeypatch):
    b, stats = make(tmp_path, memory_max=0)
    monkeypatch.setattr(body_mod.os, "write", FullDisk(lambda: {f.fd for f in b.files}))
    with pytest.raises(BodyError) as exc:
        b.append(b"z" * 5000)
    assert exc.value.status == 507
    b.close()
    assert stats.temp_files == 0 and stats.temp_file_bytes == 0


def test_unwritable_directory_gives_500(tmp_path):
    b, _ = make(tmp_path, memory_max=0, dirs=[str(tmp_path / "missing")])
    with pytest.raises(BodyError) as exc:
        b.append(b"q")
    assert exc.value.status == 500


def test_named_fallback_when_o_tmpfile_is_unsupported(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "O_TMPFILE", raising=False)
    b, _ = make(tmp_path, memory_max=0)
    b.append(b"abc")
    assert os.listdir(tmp_path) == []  # unlinked right away
    assert b.read() == b"abc"
    b.close()

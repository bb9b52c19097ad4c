"""The chunk pool: sizes, slab release at the tick, no release while referenced."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emberd.core.chunk import ChunkPool
from emberd.core.stats import Stats


def pool(chunk=1024, slab=8192, reserve=0) -> ChunkPool:
    return ChunkPool(chunk, slab, reserve, Stats())


def test_chunks_are_carved_from_slabs():
    p = pool()
    chunks = [p.acquire() for _ in range(8)]
    assert p.stats.slabs == 1 and p.stats.chunks_used == 8
    assert all(len(c.mem) == 1024 for c in chunks)
    assert len({c.offset for c in chunks}) == 8
    p.acquire()
    assert p.stats.slabs == 2


def test_chunks_do_not_overlap():
    p = pool()
    chunks = [p.acquire() for _ in range(16)]
    for i, c in enumerate(chunks):
        c.mem[:] = bytes([i]) * 1024
    for i, c in enumerate(chunks):
        assert bytes(c.mem) == bytes([i]) * 1024


def test_free_slabs_are_released_at_the_tick_beyond_the_reserve():
    p = pool(reserve=1)
    chunks = [p.acquire() for _ in range(8 * 4)]
    assert p.stats.slabs == 4
    for c in chunks:
        p.release(c)
    assert p.stats.slabs == 4  # nothing happens before the tick
    assert p.trim() == 3
    assert p.stats.slabs == 1 and p.stats.slabs_released == 3
    assert p.chunks_free() == 8


def test_a_slab_with_a_chunk_in_use_stays():
    p = pool()
    chunks = [p.acquire() for _ in range(16)]
    for c in chunks[:15]:
        p.release(c)
    assert p.trim() == 1  # the first slab is empty, the second holds a chunk
    assert p.stats.slabs == 1
    assert bytes(chunks[15].mem[:4]) == b"\0\0\0\0"  # still usable


def test_a_slab_still_referenced_elsewhere_is_not_unmapped():
    p = pool()
    c = p.acquire()
    stale = c.mem[:10]  # a view kept by mistake past release
    p.release(c)
    assert p.trim() == 0
    assert p.stats.slabs == 0 and p.stats.slabs_pinned == 1
    stale.release()
    assert p.trim() == 1 and p.stats.slabs_pinned == 0


def test_new_chunks_come_from_the_oldest_slab():
    p = pool()
    first = [p.acquire() for _ in range(8)]
    second = [p.acquire() for _ in range(8)]
    for c in first[:4] + second[:4]:
        p.release(c)
    again = p.acquire()
    assert again.slab is first[0].slab


def test_high_water_mark():
    p = pool()
    chunks = [p.acquire() for _ in range(5)]
    for c in chunks:
        p.release(c)
    p.acquire()
    assert p.stats.chunks_high_water == 5 and p.stats.chunks_used == 1


def test_slab_must_hold_a_chunk():
    with pytest.raises(ValueError):
        pool(chunk=8192, slab=4096)


@given(st.lists(st.booleans(), max_size=200))
def test_acquire_release_sequences_keep_the_books(ops):
    p = pool()
    held = []
    for take in ops:
        if take or not held:
            held.append(p.acquire())
        else:
            p.release(held.pop(0))
    assert p.stats.chunks_used == len(held)
    assert len({(id(c.slab), c.offset) for c in held}) == len(held)
    for c in held:
        p.release(c)
    p.trim()
    assert p.stats.slabs == 0

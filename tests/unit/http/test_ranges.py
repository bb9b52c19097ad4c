"""Range headers as lighttpd reads them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emberd.http import ranges


@pytest.mark.parametrize(
    ("value", "length", "expected"),
    [
        ("bytes=0-9", 100, [(0, 9)]),
        ("bytes=90-", 100, [(90, 99)]),
        ("bytes=-10", 100, [(90, 99)]),
        ("bytes=-200", 100, [(0, 99)]),
        ("bytes=50-500", 100, [(50, 99)]),
        ("BYTES=0-0", 100, [(0, 0)]),
        ("bytes= 0 - 9 , 20-29", 1000, [(0, 29)]),  # within 80 bytes: merged
        ("bytes=0-9,200-209", 1000, [(0, 9), (200, 209)]),
        ("bytes=200-209,0-9", 1000, [(200, 209), (0, 9)]),  # order kept
        ("bytes=0-50,10-20", 1000, [(0, 50)]),
        ("bytes=100-", 100, []),  # starts past the end: 416
        ("bytes=-0", 100, []),
        ("bytes=5-3", 100, []),
        ("bytes=abc", 100, []),
        ("bytes=5-3,0-1", 100, [(0, 1)]),  # an invalid range is skipped
        ("items=0-1", 100, None),  # unknown unit: ignore the header
        ("", 100, None),
    ],
)
def test_parse(value, length, expected):
    assert ranges.parse(value, length) == expected


def test_many_unsorted_ranges_are_capped():
    spec = "bytes=" + ",".join(f"{i * 1000}-{i * 1000}" for i in range(50, 0, -1))
    assert len(ranges.parse(spec, 10**6)) == ranges.MAX_UNSORTED


@given(st.integers(1, 10**6), st.lists(st.tuples(st.integers(-5, 10**6), st.integers(-5, 10**6)),
                                       max_size=20))
def test_parsed_ranges_are_inside_the_file(length, pairs):
    spec = "bytes=" + ",".join(f"{a}-{b}" if a >= 0 else f"-{-a}" for a, b in pairs)
    got = ranges.parse(spec, length)
    assert got is not None
    for first, last in got:
        assert 0 <= first <= last < length


def test_part_header():
    h = ranges.part_header(0, 9, 100, "text/plain")
    assert h == b"\r\n--fkj49sn38dcn3\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-9/100\r\n\r\n"

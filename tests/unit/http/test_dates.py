"""HTTP dates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from emberd.http.dates import http_date, parse_http_date


def test_format():
    assert http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert http_date(1700000000) == "Tue, 14 Nov 2023 22:13:20 GMT"


@given(st.integers(0, 2**33))
def test_round_trip(ts):
    assert parse_http_date(http_date(ts)) == ts


def test_not_a_date():
    for bad in ["", "yesterday", "Tue, 14 Nov 2023 22:13:20 UTC", "Tue, 99 Nov 2023 22:13:20 GMT",
                "Tue, 14 Foo 2023 22:13:20 GMT"]:
        assert parse_http_date(bad) is None

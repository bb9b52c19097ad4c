"""The HTTP/1.1 parser on raw bytes: whole, byte by byte, and with trailing data."""

from __future__ import annotations

import pytest

from emberd.http import h1
from emberd.http.h1 import H1Parser


def events(data: bytes, split: str = "whole", limit: int = 8192) -> list:
    """Feed ``data`` and collect events until the parser needs more (or is done)."""
    p = H1Parser(limit, limit)
    pieces = [data] if split == "whole" else [data[i : i + 1] for i in range(len(data))]
    out: list = []
    for piece in pieces:
        p.feed(piece)
        while True:
            ev = p.next_event()
            if isinstance(ev, h1.NeedData):
                break
            out.append(ev)
            if isinstance(ev, h1.BodyEnd):
                p.next_request()
            if isinstance(ev, h1.Rejected | h1.Closed):
                return out
    p.feed_eof()
    while not isinstance(ev := p.next_event(), h1.NeedData):
        out.append(ev)
        if isinstance(ev, h1.BodyEnd):
            p.next_request()
        if isinstance(ev, h1.Rejected | h1.Closed):
            break
    return out


def simple(evs: list) -> list:
    out = []
    for e in evs:
        if isinstance(e, h1.RequestHead):
            out.append(("head", e.method, e.target, e.version, e.keep_alive))
        elif isinstance(e, h1.BodyData):
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + e.data)
            else:
                out.append(("data", e.data))
        elif isinstance(e, h1.BodyEnd):
            out.append(("end",))
        elif isinstance(e, h1.Rejected):
            out.append(("reject", e.status))
        elif isinstance(e, h1.Closed):
            out.append(("closed",))
    return out


SPLITS = ["whole", "bytewise"]
GET = b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\n\r\n"


@pytest.mark.parametrize("split", SPLITS)
def test_get(split):
    assert simple(events(GET, split)) == [
        ("head", "GET", "/a?b=1", "1.1", True), ("end",), ("closed",)]


@pytest.mark.parametrize("split", SPLITS)
def test_pipelined_and_trailing_data(split):
    data = GET + b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + \
        b"GET /c HTTP/1.0\r\n\r\n"
    assert simple(events(data, split)) == [
        ("head", "GET", "/a?b=1", "1.1", True), ("end",),
        ("head", "POST", "/p", "1.1", True), ("data", b"hello"), ("end",),
        ("head", "GET", "/c", "1.0", False), ("end",), ("closed",)]


@pytest.mark.parametrize("split", SPLITS)
def test_chunked_body(split):
    data = (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    assert simple(events(data, split)) == [
        ("head", "POST", "/", "1.1", True), ("data", b"hello world"), ("end",), ("closed",)]


def test_head_fields():
    p = H1Parser(8192, 8192)
    p.feed(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
           b"Connection: close\r\nX-Multi: a\r\nX-Multi: b\r\n\r\n")
    head = p.next_event()
    assert isinstance(head, h1.RequestHead)
    assert head.content_length == 3 and head.expect_continue and not head.keep_alive
    assert head.headers[-2:] == [("x-multi", "a"), ("x-multi", "b")]


def test_leading_empty_lines_are_ignored():
    assert simple(events(b"\r\n\r\n" + GET))[0][0] == "head"


def test_lf_only_line_endings():
    assert simple(events(b"GET / HTTP/1.1\nHost: x\n\n"))[0] == ("head", "GET", "/", "1.1", True)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET /" + b"a" * 260 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /" + b"a" * 300, 414),  # no end of line yet, already too long
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 300 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 300, 431),  # incomplete head
        (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nab", 400),  # then EOF
    ],
)
def test_rejections(data, status, split):
    evs = simple(events(data, split, limit=256))
    assert ("reject", status) in evs


def test_max_target_is_separate_from_max_head():
    p = H1Parser(8192, 64)
    p.feed(b"GET /" + b"a" * 70 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert p.next_event() == h1.Rejected(414, "request target too long")


def test_response_head_always_has_a_reason_and_refuses_line_breaks():
    assert h1.response_head("1.1", 299, []) == b"HTTP/1.1 299 Unknown\r\n\r\n"
    assert h1.response_head("1.0", 200, [("A", "b")]) == b"HTTP/1.0 200 OK\r\nA: b\r\n\r\n"
    with pytest.raises(ValueError):
        h1.response_head("1.1", 200, [("X", "a\r\nInjected: 1")])

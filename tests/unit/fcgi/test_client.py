"""FcgiRequest: what a server sends and how it reads a backend's answer."""

from __future__ import annotations

import pytest

from emberd.fcgi import records as r
from emberd.fcgi.client import End, FcgiRequest, Stderr, Stdout


def records(data: bytes) -> list[r.Record]:
    return r.RecordReader().feed(data)


def test_begin_params_stdin():
    req = FcgiRequest(keep_conn=True)
    out = records(req.begin([("SCRIPT_NAME", "/x.php"), ("QUERY_STRING", "a=1")])
                  + req.stdin(b"body") + req.stdin_end())
    assert [x.type for x in out] == [r.BEGIN_REQUEST, r.PARAMS, r.PARAMS, r.STDIN, r.STDIN]
    assert r.parse_begin(out[0].content).keep_conn
    assert r.decode_pairs(out[1].content) == [(b"SCRIPT_NAME", b"/x.php"),
                                              (b"QUERY_STRING", b"a=1")]
    assert out[2].content == b"" and out[3].content == b"body" and out[4].content == b""
    assert all(x.request_id == 1 for x in out)


def test_params_over_65535_bytes_are_dropped():
    req = FcgiRequest(keep_conn=False)
    params = [(f"HTTP_X_{i}", "v" * 1000) for i in range(100)]
    out = records(req.begin(params))
    assert len(out[1].content) <= r.MAX_CONTENT
    kept = r.decode_pairs(out[1].content)
    assert 60 <= len(kept) < 100 and req.dropped == 100 - len(kept)
    assert not r.parse_begin(out[0].content).keep_conn


def test_receive_events_bytewise():
    data = (r.encode(r.STDOUT, 1, b"Status: 200\r\n\r\nhi") + r.encode(r.STDERR, 1, b"warn")
            + r.encode(r.GET_VALUES_RESULT, 0, b"") + r.end_request(1, 0))
    req = FcgiRequest(keep_conn=True)
    events = []
    for i in range(len(data)):
        events += req.receive(data[i : i + 1])
    assert events == [Stdout(b"Status: 200\r\n\r\nhi"), Stderr(b"warn"), End(0, 0)]
    assert req.ended


@pytest.mark.parametrize("bad", [
    r.encode(r.STDOUT, 2, b"x"),  # another request id
    r.end_request(1) + r.encode(r.STDOUT, 1, b"late"),  # after the end
    r.encode(r.STDIN, 1, b"x"),  # a record a backend does not send
    b"HTTP/1.1 200 OK\r\n\r\n",  # not FastCGI at all
])
def test_bad_backend_output(bad):
    with pytest.raises(r.FcgiError):
        FcgiRequest(keep_conn=False).receive(bad)

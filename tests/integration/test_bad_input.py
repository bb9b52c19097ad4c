"""Every bad request gets a precise status, a log line, a closed connection, and the
server goes on serving."""

from __future__ import annotations

import socket
import time

import pytest

from tests.helpers import get, parse_replies, raw


@pytest.fixture
def srv(emberd):
    return emberd('server.max-request-size = 64\n'
                  'server.modules = ( "mod_indexfile", "mod_staticfile" )\n'
                  'index-file.names = ( "index.html" )\n')


def still_serving(srv) -> None:
    assert get(srv.port, "/index.html").status == 200


H = b"Host: localhost\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "logged"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
        (b"GET / HTTP/1.1\r\n" + H + b"Bad Header\r\n\r\n", 400, ""),
        (b"GET /a%00b HTTP/1.1\r\n" + H + b"\r\n", 400, "NUL byte"),
        (b"GET /a%zz HTTP/1.1\r\n" + H + b"\r\n", 400, "invalid percent-encoding"),
        (b"GET /\x01 HTTP/1.1\r\n" + H + b"\r\n", 400, ""),
        (b"GET relative HTTP/1.1\r\n" + H + b"\r\n", 400, "not a path"),
        (b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400, "malformed HTTP version"),
        (b"GET / HTTP/11\r\n" + H + b"\r\n", 400, "malformed HTTP version"),
        (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505, "not supported"),
        (b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505, "not supported"),
        (b"BREW /pot HTTP/1.1\r\n" + H + b"\r\n", 501, "unknown method BREW"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, "too long"),
        (b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, "too large"),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999\r\n\r\n", 413,
         "server.max-request-size"),
        (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: x\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501, ""),
        (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, ""),
    ],
    ids=["garbage", "no-host", "bad-host", "bad-header", "nul", "bad-percent", "ctrl",
         "relative", "bad-version", "bad-version2", "http2-version", "http09", "unknown-method", "414", "431",
         "413", "bad-length", "unknown-te", "bad-chunk"],
)
def test_bad_request(srv, request_bytes, status, logged):
    replies = parse_replies(raw(srv.port, request_bytes))
    assert [r.status for r in replies] == [status]
    assert replies[0].header("Connection") == "close"
    assert replies[0].reason  # always a reason phrase
    if logged:
        deadline = time.monotonic() + 5
        while logged not in srv.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert logged in srv.log()
    still_serving(srv)


def test_not_http_at_all_is_closed_without_an_answer(srv):
    assert raw(srv.port, b"INVALID CONNECTION PREFACE\r\n\r\n") == b""
    assert "not an HTTP request line -> connection closed" in srv.log()
    still_serving(srv)


def test_chunked_body_over_the_limit(srv):
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    body = chunk * 70 + b"0\r\n\r\n"
    r = parse_replies(raw(srv.port, b"POST /index.html HTTP/1.1\r\n" + H +
                          b"Transfer-Encoding: chunked\r\n\r\n" + body))
    assert [x.status for x in r] == [413]
    still_serving(srv)


def test_path_traversal_stays_in_the_document_root(srv):
    for path in ["/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                 "/sub/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc/passwd",
                 "/sub/..\\..\\etc/passwd"]:
        r = get(srv.port, path)
        assert r.status in (403, 404), path
        assert b"root:" not in r.body


def test_symlinks_refused_when_follow_symlink_is_disabled(emberd, docroot, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    (docroot / "link.txt").symlink_to(secret)
    on = emberd()
    assert get(on.port, "/link.txt").body == b"secret\n"
    off = emberd('server.follow-symlink = "disable"\n')
    assert get(off.port, "/link.txt").status == 403


def test_encoded_slash_options(emberd, docroot):
    reject = emberd('server.http-parseopts = ( "url-path-2f-reject" => "enable" )\n')
    assert get(reject.port, "/sub%2Fpage.txt").status == 400
    decode = emberd()
    assert get(decode.port, "/sub%2Fpage.txt").body == b"a page\n"


def test_alias_cannot_escape_its_target(emberd, tmp_path):
    target = tmp_path / "aliased"
    target.mkdir()
    (target / "a.txt").write_text("aliased file\n")
    (tmp_path / "outside.txt").write_text("outside\n")
    srv = emberd('server.modules = ( "mod_alias", "mod_staticfile" )\n'
                 f'alias.url = ( "/al" => "{target}/" )\n')
    assert get(srv.port, "/al/a.txt").body == b"aliased file\n"
    assert get(srv.port, "/al../outside.txt").status == 404  # not an alias match
    assert get(srv.port, "/al/../outside.txt").status == 404


def test_half_closed_client_gets_every_pipelined_answer(srv):
    reqs = (b"GET /index.html HTTP/1.1\r\n" + H + b"\r\n"
            b"GET /missing HTTP/1.1\r\n" + H + b"\r\n"
            b"HEAD /index.html HTTP/1.0\r\n\r\n")
    replies = parse_replies(raw(srv.port, reqs), head_only={2})
    assert [r.status for r in replies] == [200, 404, 200]
    assert replies[2].version == "HTTP/1.0" and replies[2].header("Connection") == "close"


def test_http10_keep_alive(srv):
    reqs = b"GET /index.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2
    replies = parse_replies(raw(srv.port, reqs))
    assert [r.status for r in replies] == [200, 200]
    assert replies[0].header("Connection") == "keep-alive"


def test_expect_continue(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /index.html HTTP/1.1\r\n" + H +
                  b"Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"hello")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert parse_replies(data)[0].status == 200


def test_max_keep_alive_requests(emberd):
    srv = emberd("server.max-keep-alive-requests = 2\n")
    reqs = b"GET /index.html HTTP/1.1\r\n" + H + b"\r\n"
    replies = parse_replies(raw(srv.port, reqs * 3))
    assert [r.status for r in replies] == [200, 200]
    assert replies[1].header("Connection") == "close"


def test_slow_request_head_times_out(emberd):
    srv = emberd("server.max-read-idle = 1\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /index.html HTTP/1.1\r\n")
        t0 = time.monotonic()
        assert s.recv(100) == b""  # closed by the server
        assert time.monotonic() - t0 < 8
    still_serving(srv)


def test_idle_keep_alive_connection_is_closed(emberd):
    srv = emberd("server.max-keep-alive-idle = 1\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /index.html HTTP/1.1\r\n" + H + b"\r\n")
        data = b""
        while not data.endswith(b"<h1>emberd</h1>\n"):
            data += s.recv(65536)
        assert data.startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 8


def test_body_sent_too_slowly_gets_408(emberd):
    srv = emberd("server.max-read-idle = 1\n")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"POST /index.html HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\nabc")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert parse_replies(data)[0].status == 408

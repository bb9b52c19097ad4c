"""The CGI environment sent to backends and the CGI response head read back."""

from __future__ import annotations

import pytest

from emberd.http.cgi import BadHead, CgiOptions, HeadParser, environment
from emberd.http.message import Request


def make_request(headers: list[tuple[str, str]] | None = None) -> Request:
    req = Request("POST", "/app/x.php/extra?a=1&b=2", "1.1",
                  headers or [("host", "dev.local:8080"), ("content-type", "text/plain"),
                              ("x-custom", "1"), ("proxy", "evil:3128"),
                              ("accept", "a"), ("accept", "b")])
    req.path, req.query, req.authority = "/app/x.php/extra", "a=1&b=2", "dev.local:8080"
    req.remote_addr, req.remote_port = "10.0.0.2", 50000
    req.local_addr, req.local_port = "10.0.0.1", 8080
    req.content_length = 42
    req.conf = {"server.name": ""}
    ph = req.physical
    ph.doc_root, ph.path, ph.path_info = "/var/www", "/var/www/app/x.php", "/extra"
    return req


def test_environment_as_lighttpd_sends_it():
    env = dict(environment(make_request(), "/app/x.php", "/extra", CgiOptions(server_tag="t")))
    assert env["CONTENT_LENGTH"] == "42"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["QUERY_STRING"] == "a=1&b=2"
    assert env["REQUEST_URI"] == "/app/x.php/extra?a=1&b=2"
    assert env["SCRIPT_NAME"] == "/app/x.php" and env["PATH_INFO"] == "/extra"
    assert env["PATH_TRANSLATED"] == "/var/www/extra"
    assert env["SCRIPT_FILENAME"] == "/var/www/app/x.php"
    assert env["DOCUMENT_ROOT"] == "/var/www"
    assert env["SERVER_NAME"] == "dev.local" and env["SERVER_PORT"] == "8080"
    assert env["SERVER_ADDR"] == "10.0.0.1" and env["SERVER_SOFTWARE"] == "t"
    assert env["REMOTE_ADDR"] == "10.0.0.2" and env["REMOTE_PORT"] == "50000"
    assert env["REQUEST_METHOD"] == "POST" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["REDIRECT_STATUS"] == "200"
    assert env["HTTP_X_CUSTOM"] == "1" and env["HTTP_ACCEPT"] == "a, b"
    assert "HTTP_PROXY" not in env  # httpoxy
    assert "HTTPS" not in env


def test_docroot_strip_and_broken_scriptfilename():
    req = make_request()
    env = dict(environment(req, "/app/x.php", "/extra",
                           CgiOptions(docroot="/srv/php", strip_request_uri="/app/")))
    assert env["SCRIPT_FILENAME"] == "/srv/php/app/x.php"
    assert env["DOCUMENT_ROOT"] == "/srv/php"
    assert env["REQUEST_URI"] == "/x.php/extra?a=1&b=2"
    env = dict(environment(req, "/app/x.php", "/extra",
                           CgiOptions(break_scriptfilename_for_php=True)))
    assert env["SCRIPT_FILENAME"] == "/var/www/app/x.php/extra"


def test_ambiguous_header_names_are_dropped():
    req = make_request([("x-a", "dash"), ("x_a", "underscore")])
    env = dict(environment(req, "/", "", CgiOptions()))
    assert env["HTTP_X_A"] == "dash"


def test_https_and_user():
    req = make_request()
    req.scheme = "https"
    req.user = "admin"
    env = dict(environment(req, "/", "", CgiOptions()))
    assert env["HTTPS"] == "on" and env["REQUEST_SCHEME"] == "https"
    assert env["REMOTE_USER"] == "admin" and env["AUTH_TYPE"] == "Basic"


@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_head_parser_pieces(piece):
    data = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\n\r\nbody"
    p = HeadParser(1024)
    rest = None
    for i in range(0, len(data), piece):
        got = p.feed(data[i : i + piece])
        if got is not None:
            rest = got + data[i + piece :]
            break
    assert rest == b"body"
    assert p.status == 404
    assert p.headers == [("Content-Type", "text/plain"), ("X-A", "1")]


def test_head_parser_location_and_lf_only():
    p = HeadParser(1024)
    assert p.feed(b"Location: /elsewhere\n\n") == b""
    assert p.status == 302
    p = HeadParser(1024)
    assert p.feed(b"Content-Type: text/html\n\n<p>") == b"<p>"
    assert p.status == 200


@pytest.mark.parametrize("bad", [
    b"no colon here\r\n\r\n",
    b"Status: abc\r\n\r\n",
    b"Status: 2000\r\n\r\n",
    b" folded: x\r\n\r\n",
    b"Bad Name: x\r\n\r\n",
])
def test_head_parser_malformed(bad):
    with pytest.raises(BadHead):
        HeadParser(1024).feed(bad)


def test_head_parser_size_bound():
    p = HeadParser(64)
    with pytest.raises(BadHead):
        p.feed(b"X-Long: " + b"a" * 100)
    p = HeadParser(64)
    with pytest.raises(BadHead):
        p.feed(b"X-Long: " + b"a" * 100 + b"\r\n\r\n")

"""mod_accesslog's format compiler and escaping."""

from __future__ import annotations

import pytest

from emberd.config.loader import load
from emberd.http.message import Request, Response
from emberd.modules.accesslog import DEFAULT_FORMAT, FormatError, compile_format, escape


def render(fmt: str, req: Request, resp: Response, sent: int) -> str:
    return "".join(p if isinstance(p, str) else p(req, resp, sent) for p in compile_format(fmt))


def request() -> Request:
    req = Request("GET", "/a?b=1", "1.1", [("referer", "http://r/"), ("user-agent", 'ua "x"'),
                                           ("cookie", "a=1; sess=abc")])
    req.conf = load("t.conf", 'server.document-root = "/srv"\n').values
    req.remote_addr, req.authority, req.path, req.query = "10.0.0.1", "host.example", "/a", "b=1"
    req.start = 0.0
    return req


def test_default_format():
    line = render(DEFAULT_FORMAT, request(), Response(200, [("Content-Type", "text/html")]), 1234)
    assert line.startswith('10.0.0.1 host.example - [')
    assert line.endswith('] "GET /a?b=1 HTTP/1.1" 200 1234 "http://r/" "ua \\"x\\""')


def test_specifiers():
    req, resp = request(), Response(404, [("X-Out", "o")])
    assert render("%s %>s %m %U %q %H %{X-Out}o %{sess}C %b", req, resp, 0) == \
        "404 404 GET /a ?b=1 HTTP/1.1 o abc -"
    assert render("100%% %{referer}i %V %{%Y}t", req, resp, 0) == "100% http://r/ host.example 1970"


def test_escaping_stops_forged_lines():
    assert escape('a"b\\c\nd\x7fé') == 'a\\"b\\\\c\\x0ad\\x7f\\xc3\\xa9'


@pytest.mark.parametrize("fmt", ["%", "%{x", "%Z", "%{x}Z"])
def test_bad_formats(fmt):
    with pytest.raises(FormatError):
        compile_format(fmt)


def test_bad_format_is_a_config_error():
    with pytest.raises(Exception, match=r"accesslog.format: unknown specifier %Z"):
        load("t.conf", 'server.document-root = "/srv"\nserver.modules = ( "mod_accesslog" )\n'
                       'accesslog.format = "%Z"\n')

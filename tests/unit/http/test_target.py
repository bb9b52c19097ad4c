"""Request targets: splitting, decoding, simplification -- never above the root."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emberd.config.directives import CORE
from emberd.http.target import BadTarget, parse_target, quote_path, simplify

OPTS = {s.key: s.default for d in CORE if d.key == "server.http-parseopts" for s in d.subkeys}


def parse(raw: str, **opts: bool):
    return parse_target(raw, {**OPTS, **opts})


@pytest.mark.parametrize(
    ("raw", "path", "query"),
    [
        ("/", "/", None), ("/a/b", "/a/b", None), ("/a?", "/a", ""), ("/a?x=1&y", "/a", "x=1&y"),
        ("/a/./b/../c", "/a/c", None), ("/../../etc", "/etc", None), ("//a///b/", "/a/b/", None),
        ("/%61%62", "/ab", None), ("/a%2Fb", "/a/b", None), ("/%C3%BC", "/ü", None),
        ("/%2e%2e/x", "/x", None), ("/a/..", "/", None), ("/a/b/..", "/a/", None),
        ("/a?q=%2e%2e", "/a", "q=%2e%2e"), ("*", "*", None),
    ],
)
def test_paths(raw, path, query):
    t = parse(raw)
    assert (t.path, t.query) == (path, query)


def test_absolute_form():
    t = parse("http://Example.org:8080/x?y")
    assert (t.scheme, t.authority, t.path, t.query) == ("http", "Example.org:8080", "/x", "y")
    assert parse("https://h?q").path == "/"


@pytest.mark.parametrize(
    ("raw", "opts"),
    [
        ("/a%00", {}), ("/a%zz", {}), ("/a%2", {}), ("/\x01", {}), ("x", {}),
        ("ftp://h/", {}), ("http:///x", {}), ("/%ff", {}),
        ("/a%2fb", {"url-path-2f-reject": True}), ("/a/../b", {"url-path-dotseg-reject": True}),
    ],
)
def test_rejected(raw, opts):
    with pytest.raises(BadTarget) as exc:
        parse(raw, **opts)
    assert exc.value.status == 400


def test_options():
    assert parse("/a%2Fb", **{"url-path-2f-decode": False}).path == "/a%2Fb"
    assert parse("/a\\b", **{"url-path-backslash-trans": True}).path == "/a/b"
    assert parse("/%ff", **{"url-invalid-utf8-reject": False}).path == "/\udcff"


def test_quote_path():
    assert quote_path("/a b/ü") == "/a%20b/%C3%BC"
    assert quote_path("/plain-path_1.txt") == "/plain-path_1.txt"


PATH_CHARS = st.sampled_from([*list("ab/.%2e2f"), "%2e", "%2E", "%2f", "..", "%00", "\\"])


@given(st.lists(PATH_CHARS, max_size=30).map(lambda xs: "/" + "".join(xs)))
def test_normalised_paths_never_climb(raw):
    try:
        t = parse(raw)
    except BadTarget:
        return
    assert t.path.startswith("/")
    assert ".." not in t.path.split("/")
    assert "\0" not in t.path
    assert simplify(t.path) == t.path  # idempotent

"""Any input gives a configuration or a located error, never a traceback."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emberd.config.errors import ConfigError
from emberd.config.loader import load
from emberd.config.parser import parse

# characters that mean something to the grammar, plus some that do not
GRAMMAR_CHARS = st.sampled_from(list('=:+!~^$(){}[],"#\\\n\r\t .-_aeiklnrstu019\u00a0\0@'))

TOKENS = st.sampled_from([
    "server.port", "server.document-root", "var.x", "x", "env.HOME", "env.NOPE", "mod_a",
    "=", ":=", "+=", "+", "=>", ",", "(", ")", "{", "}", "[", "]", "$HTTP", "$SERVER",
    "$REQUEST_HEADER", "$FOO", '"url"', '"host"', '"socket"', '"remote-ip"', '"/"',
    '"10.0.0.0/8"', '"(a"', '"^/x"', '"a:b"', "==", "!=", "=~", "!~", "=^", "=$", "else",
    "elif", "if", "global", "include", "include_shell", '"/nonexistent/*.conf"', "80",
    "99999999999999999999999", '"enable"', "\n", "\r\n", "# c\n", " ",
])


def check(text: str) -> None:
    for step in (lambda: parse("f.conf", text, environ={"HOME": "/h"}),
                 lambda: load("f.conf", text, environ={"HOME": "/h"})):
        try:
            step()
        except ConfigError as exc:
            errors = getattr(exc, "errors", [exc])
            for e in errors:
                assert e.message
                if e.location is not None:
                    assert e.location.source == "f.conf" and e.location.line >= 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(GRAMMAR_CHARS, max_size=80))
def test_random_characters(text):
    check(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TOKENS, max_size=30).map(" ".join))
def test_random_token_sequences(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_unicode(text):
    check(text)

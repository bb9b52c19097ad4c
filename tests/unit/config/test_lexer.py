"""The tokenizer, against raw text fed whole and with the quirks lighttpd has."""

from __future__ import annotations

import pytest

from emberd.config.errors import ConfigError
from emberd.config.lexer import Lexer, Tok


def kinds(text: str) -> list[Tok]:
    lx = Lexer(text, "t.conf")
    out = []
    while True:
        tok = lx.next()
        out.append(tok.kind)
        if tok.kind is Tok.EOF:
            return out


def texts(text: str) -> list[str]:
    lx = Lexer(text, "t.conf")
    out = []
    while (tok := lx.next()).kind is not Tok.EOF:
        out.append(tok.text)
    return out


def test_assignment_tokens():
    assert kinds('server.port = 80\n') == [Tok.KEY, Tok.ASSIGN, Tok.INTEGER, Tok.EOL, Tok.EOF]
    assert kinds('a := "x"') == [Tok.KEY, Tok.FORCE_ASSIGN, Tok.STRING, Tok.EOF]
    assert kinds('a += "x" + b') == [Tok.KEY, Tok.APPEND, Tok.STRING, Tok.PLUS, Tok.KEY, Tok.EOF]


def test_newlines_comments_and_blank_lines_collapse_into_one_eol():
    text = 'a = 1\n\n  # comment\n\t\n# another\r\nb = 2\r\n'
    assert kinds(text) == [Tok.KEY, Tok.ASSIGN, Tok.INTEGER, Tok.EOL,
                           Tok.KEY, Tok.ASSIGN, Tok.INTEGER, Tok.EOL, Tok.EOF]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_numbers_with_every_newline_style(newline):
    lx = Lexer(f"a = 1{newline}{newline}  b = 2{newline}", "t.conf")
    toks = []
    while (tok := lx.next()).kind is not Tok.EOF:
        toks.append(tok)
    b = next(t for t in toks if t.text == "b")
    assert (b.loc.line, b.loc.column) == (3, 3)


def test_newlines_inside_parentheses_are_whitespace():
    text = 'a = (\n "x",\n # c\n "y" => 1,\n)\n'
    assert kinds(text) == [Tok.KEY, Tok.ASSIGN, Tok.LPAREN, Tok.STRING, Tok.COMMA, Tok.STRING,
                           Tok.ARRAY_ASSIGN, Tok.INTEGER, Tok.COMMA, Tok.RPAREN, Tok.EOL, Tok.EOF]


def test_string_escape_is_only_backslash_quote():
    assert texts(r'a = "x\"y\n\\z"') == ["a", "=", r'x"y\n\\z']


def test_string_may_span_lines_and_counts_them():
    lx = Lexer('a = "x\ny"\nb = 1', "t.conf")
    toks = []
    while (tok := lx.next()).kind is not Tok.EOF:
        toks.append(tok)
    assert toks[2].text == "x\ny"
    assert next(t for t in toks if t.text == "b").loc.line == 3


def test_condition_operators():
    for op, kind in [("==", Tok.EQ), ("!=", Tok.NE), ("=~", Tok.MATCH), ("!~", Tok.NOMATCH),
                     ("=^", Tok.PREFIX), ("=$", Tok.SUFFIX)]:
        assert kinds(f'$HTTP["url"] {op} "/" {{\n}}') == [
            Tok.DOLLAR, Tok.CONDNAME, Tok.LBRACKET, Tok.STRING, Tok.RBRACKET, kind, Tok.STRING,
            Tok.LCURLY, Tok.EOL, Tok.RCURLY, Tok.EOF]


def test_text_after_closing_brace_gets_an_eol():
    assert kinds("} else {") == [Tok.RCURLY, Tok.EOL, Tok.ELSE, Tok.LCURLY, Tok.EOF]
    assert kinds("}  # c\n") == [Tok.RCURLY, Tok.EOL, Tok.EOF]


@pytest.mark.parametrize("word", ["else", "elif", "elsif", "elseif"])
def test_else_spellings(word):
    assert kinds(f"{word} $") == [Tok.ELSE, Tok.DOLLAR, Tok.EOF]


def test_if_before_a_condition_is_ignored():
    assert kinds("if $HTTP") == [Tok.DOLLAR, Tok.CONDNAME, Tok.EOF]
    assert kinds("else if $HTTP") == [Tok.ELSE, Tok.DOLLAR, Tok.CONDNAME, Tok.EOF]
    assert kinds("if = 1") == [Tok.KEY, Tok.ASSIGN, Tok.INTEGER, Tok.EOF]


def test_keywords():
    assert kinds('include "x"') == [Tok.INCLUDE, Tok.STRING, Tok.EOF]
    assert kinds('include_shell "x"') == [Tok.INCLUDE_SHELL, Tok.STRING, Tok.EOF]
    assert kinds("global {") == [Tok.GLOBAL, Tok.LCURLY, Tok.EOF]


def test_no_break_space_is_whitespace():
    assert kinds("a\u00a0=\u00a01") == [Tok.KEY, Tok.ASSIGN, Tok.INTEGER, Tok.EOF]


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ('a = "x" "y"', "two strings in a row", 9),
        ('a "x"', "missing assignment operator", 3),
        ("a b = 1", "missing assignment operator", 3),
        ("a = (1 = 2)", "use => for assignments in lists", 8),
        ('$HTTP["url"] = "x"', "only == =~", 14),
        ('$HTTP["url"] !x "x"', "only != and !~", 14),
        ("a ! b", "unexpected '!'", 3),
        ("a : b", "unexpected ':'", 3),
        ("a = 1)", "')' without a matching '('", 6),
        ('a = "open', "missing closing quote", 5),
        ("a = @", "unexpected character '@'", 5),
        ("a = 1\0", "stray NUL", 6),
        ("$9", "unexpected character '9' in a condition", 2),
    ],
)
def test_errors_name_the_position(text, message, column):
    with pytest.raises(ConfigError) as exc:
        kinds(text)
    assert message in exc.value.message
    assert exc.value.location is not None
    assert (exc.value.location.source, exc.value.location.line) == ("t.conf", 1)
    assert exc.value.location.column == column

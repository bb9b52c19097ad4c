"""Tokens of the lighttpd configuration language.

Theory of operation: the tokenizer mirrors lighttpd's ``config_tokenizer()``
(``src/configfile.c``) so that a file lighttpd accepts tokenizes the same way
here.  Its behaviour depends on two pieces of state:

* ``parens`` -- inside ``( ... )`` newlines are plain whitespace and ``=`` must
  be ``=>``;
* ``in_cond`` -- after ``$`` and up to the comparison operator, bare words are
  condition names (``HTTP``, ``SERVER``) and ``=``/``!`` start an operator.

Newlines, comments and blank lines collapse into one EOL token (outside
parentheses).  A ``}`` followed by more text on the same line yields an EOL
after it, so ``} else {`` works.  ``if`` right before ``$`` is ignored, and
``else``/``elif``/``elsif``/``elseif`` are all ELSE.  Strings know only one
escape, ``\\"``.  U+00A0 (no-break space) counts as whitespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .errors import ConfigError, Location


class Tok(Enum):
    EOL = "end of line"
    EOF = "end of file"
    STRING = "string"
    INTEGER = "integer"
    KEY = "name"
    ASSIGN = "'='"
    FORCE_ASSIGN = "':='"
    APPEND = "'+='"
    PLUS = "'+'"
    LPAREN = "'('"
    RPAREN = "')'"
    COMMA = "','"
    ARRAY_ASSIGN = "'=>'"
    DOLLAR = "'$'"
    CONDNAME = "condition name"
    LBRACKET = "'['"
    RBRACKET = "']'"
    LCURLY = "'{'"
    RCURLY = "'}'"
    EQ = "'=='"
    NE = "'!='"
    MATCH = "'=~'"
    NOMATCH = "'!~'"
    PREFIX = "'=^'"
    SUFFIX = "'=$'"
    INCLUDE = "'include'"
    INCLUDE_SHELL = "'include_shell'"
    GLOBAL = "'global'"
    ELSE = "'else'"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str
    loc: Location

    def describe(self) -> str:
        if self.kind is Tok.STRING:
            return f'string "{self.text}"'
        if self.kind in (Tok.INTEGER, Tok.KEY, Tok.CONDNAME):
            return f"{self.kind.value} '{self.text}'"
        return str(self.kind.value)


_KEYWORDS = {
    "include": Tok.INCLUDE,
    "include_shell": Tok.INCLUDE_SHELL,
    "global": Tok.GLOBAL,
    "else": Tok.ELSE,
    "elif": Tok.ELSE,
    "elsif": Tok.ELSE,
    "elseif": Tok.ELSE,
}
_COND_OPS = {"==": Tok.EQ, "=~": Tok.MATCH, "=^": Tok.PREFIX, "=$": Tok.SUFFIX,
             "!=": Tok.NE, "!~": Tok.NOMATCH}
_SINGLE = {"(": Tok.LPAREN, ")": Tok.RPAREN, "{": Tok.LCURLY, "[": Tok.LBRACKET,
           "]": Tok.RBRACKET, "$": Tok.DOLLAR}
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_COND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_DIGITS = frozenset("0123456789")
_BLANK = frozenset(" \t\u00a0")


class Lexer:
    """Turns one source text into tokens; ``next()`` returns EOF forever at the end."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self.pos = 0
        self.line = 1
        self.line_start = 0
        self.parens = 0
        self.in_cond = False
        self.pending_eol: Location | None = None
        self.prev: Tok | None = None

    def _loc(self, pos: int | None = None) -> Location:
        p = self.pos if pos is None else pos
        return Location(self.source, self.line, p - self.line_start + 1)

    def _error(self, message: str, pos: int | None = None) -> ConfigError:
        return ConfigError(self._loc(pos), message)

    def _newline(self) -> None:
        """Step over one newline (\\n, \\r or \\r\\n) at self.pos."""
        if self.text.startswith("\r\n", self.pos):
            self.pos += 2
        else:
            self.pos += 1
        self.line += 1
        self.line_start = self.pos

    def _skip_comment(self) -> None:
        end = self.pos
        text = self.text
        while end < len(text) and text[end] not in "\r\n":
            end += 1
        self.pos = end

    def next(self) -> Token:
        tok = self._scan()
        self.prev = tok.kind
        return tok

    def _emit(self, kind: Tok, text: str, start: int) -> Token:
        return Token(kind, text, self._loc(start))

    def _scan(self) -> Token:
        if self.pending_eol is not None:
            loc, self.pending_eol = self.pending_eol, None
            return Token(Tok.EOL, "", loc)
        text = self.text
        n = len(text)
        while self.pos < n:
            c = text[self.pos]
            start = self.pos
            if c in _BLANK:
                self.pos += 1
            elif c in "\r\n":
                eol_loc = self._loc()
                while self.pos < n:
                    c = text[self.pos]
                    if c in "\r\n":
                        self._newline()
                    elif c == "#":
                        self._skip_comment()
                    elif c in _BLANK:
                        self.pos += 1
                    else:
                        break
                if not self.parens:
                    return Token(Tok.EOL, "", eol_loc)
            elif c == "#":
                self._skip_comment()
            elif c == "=":
                nxt = text[self.pos + 1 : self.pos + 2]
                if self.parens:
                    if nxt != ">":
                        raise self._error("use => for assignments in lists")
                    self.pos += 2
                    return self._emit(Tok.ARRAY_ASSIGN, "=>", start)
                if self.in_cond:
                    op = c + nxt
                    if op not in _COND_OPS:
                        raise self._error("only == =~ =^ =$ != !~ are allowed in a condition")
                    self.pos += 2
                    self.in_cond = False
                    return self._emit(_COND_OPS[op], op, start)
                self.pos += 1
                return self._emit(Tok.ASSIGN, "=", start)
            elif c == "!":
                op = text[self.pos : self.pos + 2]
                if not self.in_cond:
                    raise self._error("unexpected '!' outside a condition")
                if op not in ("!=", "!~"):
                    raise self._error("only != and !~ start with '!' in a condition")
                self.pos += 2
                self.in_cond = False
                return self._emit(_COND_OPS[op], op, start)
            elif c == ",":
                self.pos += 1
                if self.parens:
                    return self._emit(Tok.COMMA, ",", start)
            elif c == '"':
                return self._string()
            elif c in _SINGLE:
                self.pos += 1
                if c == "(":
                    self.parens += 1
                elif c == ")":
                    if not self.parens:
                        raise self._error("')' without a matching '('", start)
                    self.parens -= 1
                elif c == "$":
                    self.in_cond = True
                return self._emit(_SINGLE[c], c, start)
            elif c == "}":
                self.pos += 1
                tok = self._emit(Tok.RCURLY, "}", start)
                # lighttpd: text after '}' on the same line starts a new statement
                p = self.pos
                while p < n and text[p] in " \t":
                    p += 1
                if p < n and text[p] not in "\r\n#":
                    self.pending_eol = self._loc(self.pos)
                return tok
            elif c == "+":
                if text.startswith("+=", self.pos):
                    self.pos += 2
                    return self._emit(Tok.APPEND, "+=", start)
                self.pos += 1
                return self._emit(Tok.PLUS, "+", start)
            elif c == ":":
                if not text.startswith(":=", self.pos):
                    raise self._error("unexpected ':' (did you mean ':='?)")
                self.pos += 2
                return self._emit(Tok.FORCE_ASSIGN, ":=", start)
            elif c == "\0":
                raise self._error("stray NUL character")
            elif self.in_cond:
                end = self.pos
                while end < n and text[end] in _COND_CHARS:
                    end += 1
                if end == self.pos:
                    raise self._error(f"unexpected character {c!r} in a condition")
                self.pos = end
                return self._emit(Tok.CONDNAME, text[start:end], start)
            elif c in _DIGITS:
                end = self.pos
                while end < n and text[end] in _DIGITS:
                    end += 1
                self.pos = end
                return self._emit(Tok.INTEGER, text[start:end], start)
            elif c in _KEY_CHARS:
                end = self.pos
                while end < n and text[end] in _KEY_CHARS:
                    end += 1
                word = text[start:end]
                self.pos = end
                if word == "if":
                    p = end
                    while p < n and text[p] in " \t":
                        p += 1
                    if p < n and text[p] == "$":
                        continue  # 'if $HTTP[...]' and 'else if $HTTP[...]'
                kw = _KEYWORDS.get(word)
                if kw is not None:
                    return self._emit(kw, word, start)
                if self.prev is Tok.KEY:
                    raise self._error(
                        "missing assignment operator ('=') or string concatenation ('+')", start
                    )
                return self._emit(Tok.KEY, word, start)
            else:
                raise self._error(f"unexpected character {c!r}")
        return Token(Tok.EOF, "", self._loc())

    def _string(self) -> Token:
        if self.prev is Tok.STRING:
            raise self._error("two strings in a row: join them with '+' or separate list "
                              "entries with ','")
        if self.prev is Tok.KEY:
            raise self._error("missing assignment operator ('=') before this string")
        loc = self._loc()
        text = self.text
        parts: list[str] = []
        i = self.pos + 1
        seg = i
        n = len(text)
        while True:
            if i >= n:
                raise ConfigError(loc, "missing closing quote")
            c = text[i]
            if c == '"':
                break
            if c == "\\" and i + 1 < n and text[i + 1] == '"':
                parts.append(text[seg:i])
                seg = i + 1  # keep the quote, drop the backslash
                i += 2
                continue
            if c == "\0":
                raise ConfigError(loc, "stray NUL character in a string")
            if c in "\r\n":
                # a newline inside a string is kept (as lighttpd does) but counted
                self.pos = i
                self._newline()
                i = self.pos
                continue
            i += 1
        parts.append(text[seg:i])
        self.pos = i + 1
        return Token(Tok.STRING, "".join(parts), loc)

"""The lighttpd configuration grammar, parsed into a ConfigTree.

Theory of operation: a recursive-descent parser that accepts what lighttpd's
lemon grammar (``src/configparser.y``) accepts::

    file      = { line }
    line      = assign | global | chain EOL | include | include_shell | EOL
    assign    = key ( "=" | ":=" | "+=" ) expr
    expr      = value { "+" value }
    value     = key | STRING | INTEGER | list
    list      = "(" [ item { "," { "," } item } { "," } ] ")"
    item      = expr | expr "=>" expr
    global    = "global" "{" { line } "}"
    chain     = cond { [EOL] "else" ( cond | block ) }
    cond      = "$" NAME "[" expr "]" op expr block
    include   = "include" expr            (glob, with {a,b} braces)
    include_shell = "include_shell" expr  (run by /bin/sh, stdout parsed)

Semantics kept from lighttpd: a key without a dot is ``var.<key>``; ``=``
refuses a key already set in the same block, ``:=`` replaces, ``+=`` merges
with the value of the same block or, failing that, of the nearest enclosing
block; a bare key in an expression reads a variable (searched outwards
through the enclosing blocks) or, for ``env.NAME``, the environment, and an
undefined one is an error; ``var.PID`` and ``var.CWD`` are predefined.
Included paths are relative to the directory of the main file unless they
start with ``/``, ``./`` or ``../``; a pattern with glob characters may match
nothing.  ``include_shell`` runs in that same directory.

Errors are raised at the first problem as ConfigError with file:line:column.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from .conditions import Condition, Op, make_condition
from .errors import ConfigError, Location
from .lexer import Lexer, Tok, Token
from .tree import BUILTIN, Assignment, Block, ConfigTree
from .values import INT_MAX, Array, MergeError, Value, copy_value, merge, type_name

# lighttpd refuses configuration files over 32 MiB (configfile.c).
MAX_FILE_SIZE = 32 * 1024 * 1024
# lighttpd has no limit; a file that includes itself would recurse forever.
MAX_INCLUDE_DEPTH = 16
# include_shell commands that hang would hang start-up; lighttpd waits forever.
SHELL_TIMEOUT = 60.0

_OPS = {Tok.EQ: Op.EQ, Tok.NE: Op.NE, Tok.MATCH: Op.MATCH, Tok.NOMATCH: Op.NOMATCH,
        Tok.PREFIX: Op.PREFIX, Tok.SUFFIX: Op.SUFFIX}
_GLOB_CHARS = frozenset("*?[]{}")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives as glob(3) with GLOB_BRACE does."""
    depth = 0
    start = -1
    for i, c in enumerate(pattern):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                inner = pattern[start + 1 : i]
                parts: list[str] = []
                level = 0
                seg = 0
                for j, d in enumerate(inner):
                    if d == "{":
                        level += 1
                    elif d == "}":
                        level -= 1
                    elif d == "," and level == 0:
                        parts.append(inner[seg:j])
                        seg = j + 1
                parts.append(inner[seg:])
                if len(parts) == 1:
                    continue  # "{x}" is literal in glob(3)
                head, tail = pattern[:start], pattern[i + 1 :]
                out: list[str] = []
                for p in parts:
                    out.extend(expand_braces(head + p + tail))
                return out
    return [pattern]


def read_source(path: str) -> str:
    """Read a configuration file (at most 32 MiB); bytes that are not UTF-8 survive."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        raise OSError(f"{path}: larger than {MAX_FILE_SIZE // (1024 * 1024)} MiB")
    return data.decode("utf-8", "surrogateescape")


class _Source:
    """One text being parsed, with a two-token lookahead."""

    __slots__ = ("ahead", "lexer")

    def __init__(self, text: str, name: str) -> None:
        self.lexer = Lexer(text, name)
        self.ahead: list[Token] = []

    def peek(self, n: int = 0) -> Token:
        while len(self.ahead) <= n:
            self.ahead.append(self.lexer.next())
        return self.ahead[n]

    def advance(self) -> Token:
        tok = self.peek()
        self.ahead.pop(0)
        return tok


class Parser:
    """Parses a main configuration and everything it includes into one tree."""

    def __init__(self, environ: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.cwd = os.getcwd() if cwd is None else cwd
        root = Block(0, "global", None, None)
        root.values["var.PID"] = Assignment("var.PID", os.getpid(), BUILTIN)
        root.values["var.CWD"] = Assignment("var.CWD", self.cwd, BUILTIN)
        self.tree = ConfigTree([root])
        self.by_path: dict[str, Block] = {"global": root}
        self.current = root
        self.stack: list[Block] = []
        self.basedir = ""
        self.depth = 0
        self.src: _Source | None = None

    # -- entry points -------------------------------------------------------

    def parse_main(self, path: str, text: str | None = None) -> ConfigTree:
        """Parse the main file (``-`` with ``text`` for standard input)."""
        if path != "-" and "/" in path:
            self.basedir = path[: path.rfind("/") + 1]
        if text is None:
            try:
                text = read_source(path)
            except OSError as exc:
                raise ConfigError(None, f"cannot read configuration {path}: "
                                  f"{exc.strerror or exc}") from None
        self._parse_text(text, path)
        return self.tree

    def _parse_text(self, text: str, name: str) -> None:
        saved = self.src
        self.src = _Source(text, name)
        self.tree.sources.append(name)
        try:
            self._lines(None)
        finally:
            self.src = saved

    # -- token helpers ------------------------------------------------------

    @property
    def _s(self) -> _Source:
        assert self.src is not None
        return self.src

    def _expect(self, kind: Tok, what: str) -> Token:
        tok = self._s.peek()
        if tok.kind is not kind:
            raise ConfigError(tok.loc, f"expected {kind.value} {what}, found {tok.describe()}")
        return self._s.advance()

    # -- statements ---------------------------------------------------------

    def _lines(self, opener: Token | None) -> None:
        """Statements up to '}' (inside a block) or the end of the text."""
        s = self._s
        while True:
            tok = s.peek()
            kind = tok.kind
            if kind is Tok.EOL:
                s.advance()
            elif kind is Tok.EOF:
                if opener is not None:
                    raise ConfigError(opener.loc, "this '{' is never closed (missing '}')")
                return
            elif kind is Tok.RCURLY:
                if opener is None:
                    raise ConfigError(tok.loc, "'}' without a matching '{'")
                return
            elif kind is Tok.KEY:
                self._assignment()
            elif kind is Tok.INCLUDE:
                s.advance()
                self._include(self._string_operand(tok), tok)
            elif kind is Tok.INCLUDE_SHELL:
                s.advance()
                self._include_shell(self._string_operand(tok), tok)
            elif kind is Tok.GLOBAL:
                self._global_block()
            elif kind is Tok.DOLLAR:
                self._condition_chain()
            elif kind is Tok.ELSE:
                raise ConfigError(tok.loc, "'else' without a condition before it")
            else:
                raise ConfigError(tok.loc, f"unexpected {tok.describe()}; expected a "
                                  "directive, a condition, 'include' or 'global'")

    def _assignment(self) -> None:
        key_tok = self._s.advance()
        key = key_tok.text if "." in key_tok.text else "var." + key_tok.text
        op = self._s.advance()
        if op.kind not in (Tok.ASSIGN, Tok.FORCE_ASSIGN, Tok.APPEND):
            raise ConfigError(op.loc, f"expected '=', ':=' or '+=' after {key_tok.text}, "
                              f"found {op.describe()}")
        value = self._expression()
        loc = key_tok.loc
        if key.startswith("env."):
            raise ConfigError(loc, f"cannot set {key}: environment variables are read-only")
        values = self.current.values
        if op.kind is Tok.ASSIGN:
            old = values.get(key)
            if old is not None:
                where = "" if old.loc is BUILTIN else f" (at {old.loc})"
                raise ConfigError(loc, f"{key} is already set in this block{where}; "
                                  "use := to replace it or += to add to it")
        elif op.kind is Tok.APPEND:
            base = self._lookup(key)
            if base is not None:
                try:
                    value = merge(base, value)
                except MergeError as exc:
                    raise ConfigError(op.loc, f"cannot append to {key}: {exc}") from None
        values[key] = Assignment(key, value, loc)

    def _lookup(self, key: str) -> Value | None:
        block: Block | None = self.current
        while block is not None:
            a = block.values.get(key)
            if a is not None:
                return copy_value(a.value)
            block = block.parent
        return None

    # -- expressions --------------------------------------------------------

    def _expression(self) -> Value:
        s = self._s
        value = self._value()
        while s.peek().kind is Tok.PLUS:
            plus = s.advance()
            right = self._value()
            try:
                value = merge(value, right)
            except MergeError as exc:
                raise ConfigError(plus.loc, f"cannot apply '+': {exc}") from None
        return value

    def _value(self) -> Value:
        tok = self._s.advance()
        kind = tok.kind
        if kind is Tok.STRING:
            return tok.text
        if kind is Tok.INTEGER:
            number = int(tok.text)
            if number > INT_MAX:
                raise ConfigError(tok.loc, f"integer {tok.text} is too large")
            return number
        if kind is Tok.KEY:
            name = tok.text if "." in tok.text else "var." + tok.text
            if name.startswith("env."):
                env = self.environ.get(name[4:])
                if env is None:
                    raise ConfigError(tok.loc, f"undefined environment variable {name[4:]}")
                return env
            found = self._lookup(name)
            if found is None:
                raise ConfigError(tok.loc, f"undefined variable {name}")
            return found
        if kind is Tok.LPAREN:
            return self._list(tok)
        raise ConfigError(tok.loc, f"expected a value (string, integer, list or variable), "
                          f"found {tok.describe()}")

    def _list(self, opener: Token) -> Array:
        s = self._s
        out = Array()
        if s.peek().kind is Tok.RPAREN:
            s.advance()
            return out
        while True:
            item_tok = s.peek()
            if item_tok.kind is Tok.EOF:
                raise ConfigError(opener.loc, "this '(' is never closed (missing ')')")
            item = self._expression()
            if s.peek().kind is Tok.ARRAY_ASSIGN:
                s.advance()
                key = self._as_string(item, item_tok, "a list key")
                if key in out:
                    raise ConfigError(item_tok.loc, f'duplicate list key "{key}"')
                out.append(key, self._expression())
            else:
                out.append(None, item)
            tok = s.peek()
            if tok.kind is Tok.COMMA:
                while s.peek().kind is Tok.COMMA:
                    s.advance()
                if s.peek().kind is Tok.RPAREN:
                    s.advance()
                    return out
            elif tok.kind is Tok.RPAREN:
                s.advance()
                return out
            elif tok.kind is not Tok.EOF:
                raise ConfigError(tok.loc, f"expected ',' or ')' in a list, found "
                                  f"{tok.describe()}")
            # at the end of the text: the next turn reports the unclosed '('

    @staticmethod
    def _as_string(value: Value, tok: Token, what: str) -> str:
        if isinstance(value, Array):
            raise ConfigError(tok.loc, f"{what} must be a string, not a list")
        return str(value)

    def _string_operand(self, keyword: Token) -> str:
        tok = self._s.peek()
        return self._as_string(self._expression(), tok, f"the operand of {keyword.text}")

    # -- blocks -------------------------------------------------------------

    def _enter(self, block: Block) -> None:
        self.stack.append(self.current)
        self.current = block

    def _leave(self) -> None:
        self.current = self.stack.pop()

    def _block_body(self) -> None:
        opener = self._expect(Tok.LCURLY, "to open the block")
        self._lines(opener)
        self._s.advance()  # '}'

    def _global_block(self) -> None:
        self._s.advance()
        self._enter(self.tree.root)
        self._block_body()
        self._leave()

    def _new_block(self, path: str, cond: Condition | None, loc: Location,
                   prev: Block | None) -> Block:
        if self.stack and self.current is self.tree.root:
            raise ConfigError(loc, "conditions cannot be used inside a global { } block")
        if prev is not None and prev.is_else:
            raise ConfigError(loc, "unreachable: this branch follows a plain 'else'")
        existing = self.by_path.get(path)
        if existing is not None:
            if prev is not None:
                raise ConfigError(loc, "unreachable else branch: the same condition "
                                  f"was already used at {existing.loc}")
            return existing
        block = Block(len(self.tree.blocks), path, cond, self.current, prev, loc)
        self.tree.blocks.append(block)
        self.by_path[path] = block
        self.current.children.append(block)
        return block

    def _condition(self, prev: Block | None) -> Block:
        s = self._s
        dollar = s.advance()
        obj = self._expect(Tok.CONDNAME, "after '$' (HTTP, REQUEST_HEADER or SERVER)")
        self._expect(Tok.LBRACKET, f"after ${obj.text}")
        name_tok = s.peek()
        name = self._as_string(self._expression(), name_tok, "a condition name")
        self._expect(Tok.RBRACKET, f'after ${obj.text}["{name}"')
        op_tok = s.advance()
        op = _OPS.get(op_tok.kind)
        if op is None:
            raise ConfigError(op_tok.loc, "expected a comparison (== != =~ !~ =^ =$), "
                              f"found {op_tok.describe()}")
        value_tok = s.peek()
        value = self._expression()
        if not isinstance(value, str):
            raise ConfigError(value_tok.loc, "the value compared in a condition must be a "
                              f"string, not a {type_name(value)}")
        cond = make_condition(obj.text, name, op, value, dollar.loc)
        return self._new_block(f"{self.current.path} / {cond.text()}", cond, dollar.loc, prev)

    def _condition_chain(self) -> None:
        s = self._s
        block = self._condition(None)
        self._enter(block)
        self._block_body()
        self._leave()
        while True:
            if s.peek().kind is Tok.EOL and s.peek(1).kind is Tok.ELSE:
                s.advance()
            if s.peek().kind is not Tok.ELSE:
                break
            else_tok = s.advance()
            if s.peek().kind is Tok.DOLLAR:
                block = self._condition(block)
            elif s.peek().kind is Tok.LCURLY:
                path = f"{self.current.path} / else({block.path})"
                block = self._new_block(path, None, else_tok.loc, block)
            else:
                tok = s.peek()
                raise ConfigError(tok.loc, "expected a condition or '{' after 'else', "
                                  f"found {tok.describe()}")
            self._enter(block)
            self._block_body()
            self._leave()

    # -- includes -----------------------------------------------------------

    def _resolve(self, name: str) -> str:
        if not self.basedir or name.startswith(("/", "./", "../")):
            return name
        return self.basedir + name

    def _descend(self, text: str, name: str, at: Token) -> None:
        if self.depth >= MAX_INCLUDE_DEPTH:
            raise ConfigError(at.loc, f"includes nested more than {MAX_INCLUDE_DEPTH} deep "
                              "(does a file include itself?)")
        self.depth += 1
        try:
            self._parse_text(text, name)
        finally:
            self.depth -= 1

    def _include(self, pattern: str, at: Token) -> None:
        full = self._resolve(pattern)
        if _GLOB_CHARS.isdisjoint(full):
            paths = [full] if os.path.lexists(full) else []
        else:
            import glob  # only for patterns

            paths = sorted({p for alt in expand_braces(full) for p in glob.glob(alt)})
        if not paths:
            if _GLOB_CHARS.isdisjoint(full):
                raise ConfigError(at.loc, f"include file not found: {full}")
            return
        for path in paths:
            if os.path.isdir(path):
                raise ConfigError(at.loc, f"include: {path} is a directory")
            try:
                text = read_source(path)
            except OSError as exc:
                raise ConfigError(at.loc, f"cannot read included file {path}: "
                                  f"{exc.strerror or exc}") from None
            self._descend(text, path, at)

    def _include_shell(self, command: str, at: Token) -> None:
        try:
            proc = subprocess.run(["/bin/sh", "-c", command], cwd=self.basedir or None,
                                  stdout=subprocess.PIPE, timeout=SHELL_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ConfigError(at.loc, f'include_shell "{command}" did not finish within '
                              f"{SHELL_TIMEOUT:.0f} s") from None
        except OSError as exc:
            raise ConfigError(at.loc, f'include_shell "{command}": {exc.strerror}') from None
        if proc.returncode != 0:
            raise ConfigError(at.loc, f'include_shell "{command}" exited with status '
                              f"{proc.returncode}")
        if len(proc.stdout) > MAX_FILE_SIZE:
            raise ConfigError(at.loc, f'include_shell "{command}" printed more than 32 MiB')
        self._descend(proc.stdout.decode("utf-8", "surrogateescape"), command, at)


def parse(path: str, text: str | None = None, environ: Mapping[str, str] | None = None,
          cwd: str | None = None) -> ConfigTree:
    """Parse a main configuration file (or ``text`` named ``path``)."""
    return Parser(environ, cwd).parse_main(path, text)

"""mod_accesslog: one line per request, in lighttpd's (Apache-like) format.

The format is compiled once per configuration into a list of small
functions.  Specifiers: ``%%`` ``%a`` remote address, ``%A`` local address,
``%b`` body bytes ('-' for none), ``%B`` body bytes, ``%{name}C`` cookie,
``%D`` microseconds taken, ``%{name}e`` environment, ``%f`` file, ``%h``
remote host, ``%H`` protocol, ``%{name}i`` request header, ``%I`` bytes
received, ``%k`` requests on the connection (not kept: always 1), ``%l``
'-', ``%m`` method, ``%{name}o`` response header, ``%O`` bytes sent, ``%p``
local port, ``%q`` query string, ``%r`` request line, ``%s``/``%>s``
status, ``%t`` time (``%{strftime}t`` for another format), ``%T`` seconds
taken, ``%u`` user, ``%U`` path, ``%v`` server name, ``%V`` host, ``%X``
connection state ('+' kept alive, '-' closed).

Values are escaped as lighttpd does by default: '"' and '\\' get a
backslash, control and non-ASCII bytes become ``\\xHH``, so a request cannot
forge log lines.  Lines go to a file (appended), a piped command
(``"|cmd"``) or syslog.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable

from ..config.errors import Diagnostics
from ..config.schema import Directive, Scope, Type
from ..config.settings import ServerConfig
from ..core.runtime import Runtime
from ..http.message import Request, Response
from . import Plugin

DEFAULT_FORMAT = '%h %V %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
Field = Callable[[Request, Response, int], str]


def escape(text: str) -> str:
    out = []
    for ch in text.encode("utf-8", "surrogateescape"):
        if ch in (0x22, 0x5C):
            out.append("\\" + chr(ch))
        elif ch < 0x20 or ch >= 0x7F:
            out.append(f"\\x{ch:02x}")
        else:
            out.append(chr(ch))
    return "".join(out)


def _header(name: str) -> Field:
    low = name.lower()
    return lambda req, resp, sent: escape(req.header(low) or "-")


def _resp_header(name: str) -> Field:
    return lambda req, resp, sent: escape(resp.header(name) or "-")


def _cookie(name: str) -> Field:
    def get(req: Request, resp: Response, sent: int) -> str:
        for part in (req.header("cookie") or "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == name:
                return escape(v)
        return "-"
    return get


def _time(fmt: str | None) -> Field:
    def get(req: Request, resp: Response, sent: int) -> str:
        t = time.localtime(req.start)
        return time.strftime(fmt, t) if fmt else time.strftime("[%d/%b/%Y:%H:%M:%S %z]", t)
    return get


def _request_line(req: Request, resp: Response, sent: int) -> str:
    return escape(f"{req.method} {req.target} {req.protocol}")


_SIMPLE: dict[str, Field] = {
    "a": lambda req, resp, sent: req.remote_addr,
    "h": lambda req, resp, sent: req.remote_addr,
    "A": lambda req, resp, sent: req.local_addr,
    "b": lambda req, resp, sent: str(sent) if sent else "-",
    "B": lambda req, resp, sent: str(sent),
    "D": lambda req, resp, sent: str(int((time.time() - req.start) * 1_000_000)),
    "T": lambda req, resp, sent: str(int(time.time() - req.start)),
    "f": lambda req, resp, sent: escape(req.physical.path or "-"),
    "H": lambda req, resp, sent: req.protocol,
    "I": lambda req, resp, sent: str(req.bytes_in),
    "O": lambda req, resp, sent: str(req.bytes_out),
    "k": lambda req, resp, sent: "1",
    "l": lambda req, resp, sent: "-",
    "m": lambda req, resp, sent: escape(req.method),
    "p": lambda req, resp, sent: str(req.local_port),
    "q": lambda req, resp, sent: escape("?" + req.query) if req.query is not None else "",
    "r": _request_line,
    "s": lambda req, resp, sent: str(resp.status),
    "t": _time(None),
    "u": lambda req, resp, sent: escape(req.user or "-"),
    "U": lambda req, resp, sent: escape(req.path),
    "v": lambda req, resp, sent: escape(req.conf["server.name"] or req.authority or "-"),
    "V": lambda req, resp, sent: escape(req.authority or "-"),
    "X": lambda req, resp, sent: "+" if req.keep_alive else "-",
}
_WITH_ARG: dict[str, Callable[[str], Field]] = {
    "i": _header, "o": _resp_header, "C": _cookie, "t": _time,
    "e": lambda name: lambda req, resp, sent: escape(req.env.get(name, "-")),
}


class FormatError(ValueError):
    pass


def compile_format(fmt: str) -> list[str | Field]:
    """Literal strings and field functions, in order; FormatError for a bad specifier."""
    out: list[str | Field] = []
    lit: list[str] = []
    i = 0
    n = len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            lit.append(c)
            i += 1
            continue
        i += 1
        arg = None
        if i < n and fmt[i] == "{":
            end = fmt.find("}", i)
            if end < 0:
                raise FormatError("'%{' without a closing '}'")
            arg = fmt[i + 1 : end]
            i = end + 1
        if i < n and fmt[i] in "<>":
            i += 1  # %>s: the final status, which is the only one there is
        if i >= n:
            raise FormatError("format ends with '%'")
        spec = fmt[i]
        i += 1
        if spec == "%" and arg is None:
            lit.append("%")
            continue
        if arg is not None and spec in _WITH_ARG:
            field = _WITH_ARG[spec](arg)
        elif arg is None and spec in _SIMPLE:
            field = _SIMPLE[spec]
        else:
            raise FormatError(f"unknown specifier %{'{' + arg + '}' if arg else ''}{spec}")
        if lit:
            out.append("".join(lit))
            lit = []
        out.append(field)
    if lit:
        out.append("".join(lit))
    return out


class _Sink:
    """Where lines go: a file, a pipe or syslog."""

    def __init__(self, target: str, syslog_level: int | None) -> None:
        self.target = target
        self.level = syslog_level
        self.fd = -1
        self.proc: subprocess.Popen[bytes] | None = None
        self.open()

    def open(self) -> None:
        if self.level is not None:
            return
        if self.target.startswith("|"):
            self.proc = subprocess.Popen(self.target[1:], shell=True, stdin=subprocess.PIPE)
            assert self.proc.stdin is not None
            self.fd = self.proc.stdin.fileno()
        else:
            self.fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT |
                              os.O_CLOEXEC, 0o644)

    def write(self, line: str) -> None:
        if self.level is not None:
            import syslog

            syslog.syslog(self.level, line)
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, (line + "\n").encode("latin-1", "replace"))

    def reopen(self) -> None:
        if self.level is None and self.proc is None:
            old = self.fd
            self.open()
            os.close(old)

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=5)
        elif self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


class AccessLog(Plugin):
    name = "mod_accesslog"
    directives = (
        Directive("accesslog.filename", Type.STRING, Scope.REQUEST, "",
                  'file to append to, or "|command" to pipe lines to', module=name),
        Directive("accesslog.format", Type.STRING, Scope.REQUEST, DEFAULT_FORMAT,
                  "line format (lighttpd's specifiers)", module=name),
        Directive("accesslog.use-syslog", Type.BOOL, Scope.REQUEST, False,
                  "send lines to syslog instead", module=name),
        Directive("accesslog.syslog-level", Type.SHORT, Scope.REQUEST, 6,
                  "syslog priority of the lines (6: LOG_INFO)", module=name, max=7),
    )

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self._formats: dict[str, list[str | Field]] = {}
        self._sinks: dict[tuple[str, int | None], _Sink] = {}

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        for fmt, loc in config.assigned("accesslog.format"):
            try:
                compile_format(fmt)
            except FormatError as exc:
                diags.error(loc, f"accesslog.format: {exc}")

    def _sink(self, req: Request) -> _Sink | None:
        conf = req.conf
        level = conf["accesslog.syslog-level"] if conf["accesslog.use-syslog"] else None
        target = conf["accesslog.filename"]
        if level is None and not target:
            return None
        key = (target, level)
        sink = self._sinks.get(key)
        if sink is None:
            try:
                sink = self._sinks[key] = _Sink(target, level)
            except OSError as exc:
                self.rt.log("mod_accesslog", f"cannot open {target}: {exc.strerror}")
                return None
        return sink

    def request_done(self, req: Request, resp: Response, sent: int) -> None:
        sink = self._sink(req)
        if sink is None:
            return
        fmt = req.conf["accesslog.format"]
        parts = self._formats.get(fmt)
        if parts is None:
            parts = self._formats[fmt] = compile_format(fmt)
        sink.write("".join(p if isinstance(p, str) else p(req, resp, sent) for p in parts))

    def reopen(self) -> None:
        for sink in self._sinks.values():
            try:
                sink.reopen()
            except OSError as exc:
                self.rt.log("mod_accesslog", f"cannot reopen {sink.target}: {exc.strerror}")

    def close(self) -> None:
        for sink in self._sinks.values():
            sink.close()
        self._sinks.clear()


PLUGIN = AccessLog

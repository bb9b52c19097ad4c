"""HTTP/1.1, sans-IO: bytes in, request events out; responses to bytes.

Theory of operation: h11 parses each request, but emberd decides how many
bytes h11 sees.  h11 does not bound a request head that arrives in one read
(``max_incomplete_event_size`` only applies to incomplete data) and has no
414, so emberd keeps unparsed input in its own buffer, finds the end of the
head itself, checks the limits, and only then hands h11 exactly that head:

* the request line longer than the target limit (plus method and version)
  -> 414, whether or not the head is complete;
* the head longer than ``server.max-request-field-size`` -> 431;
* a version other than HTTP/1.0 and 1.1 -> 505; a method lighttpd does not
  know -> 501; anything h11 refuses -> 400 (or h11's own hint).

A fresh h11.Connection parses each request (it costs under a microsecond),
so the next pipelined request never sits in h11's buffer beyond emberd's
checks: after the body, h11's unread bytes (``trailing_data``) go back to
emberd's buffer.  Responses are serialised here rather than through h11:
the head is formatted directly (always with a reason phrase) and framed with
Content-Length or chunked encoding.  That halves h11's cost per request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import h11

from .status import METHODS, reason

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_VERSION = re.compile(rb"HTTP/\d\.\d\Z")
_VERSIONS = frozenset((b"HTTP/1.1", b"HTTP/1.0"))


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str  # UTF-8 with surrogateescape, so no byte is lost
    version: str  # "1.0" or "1.1"
    headers: list[tuple[str, str]]  # lower-case names, latin-1 values
    keep_alive: bool
    content_length: int | None
    chunked: bool
    expect_continue: bool


@dataclass(frozen=True, slots=True)
class BodyData:
    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    pass


@dataclass(frozen=True, slots=True)
class Rejected:
    """The request cannot be served; answer ``status`` (0: no answer) and close."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class NeedData:
    pass


@dataclass(frozen=True, slots=True)
class Closed:
    """The client closed its side between requests."""


NEED_DATA = NeedData()
BODY_END = BodyEnd()
CLOSED = Closed()
Event = RequestHead | BodyData | BodyEnd | Rejected | NeedData | Closed

_HEAD, _BODY, _NO_BODY, _DONE, _FAILED = range(5)


class H1Parser:
    """Request side of one HTTP/1.x connection."""

    def __init__(self, max_head: int, max_target: int) -> None:
        self.max_head = max_head
        self.max_target = max_target
        self.buffer = bytearray()
        self.eof = False
        self._state = _HEAD
        self._h11: h11.Connection | None = None

    @property
    def buffered(self) -> int:
        return len(self.buffer)

    @property
    def request_done(self) -> bool:
        """The current request has been read completely (or refused)."""
        return self._state in (_DONE, _FAILED)

    @property
    def idle(self) -> bool:
        """Waiting for a new request with nothing of it received yet."""
        return self._state == _HEAD and not self.buffer.strip(b"\r\n")

    def feed(self, data: bytes | memoryview) -> None:
        if self._state == _BODY and self._h11 is not None:
            self._h11.receive_data(bytes(data))
        else:
            self.buffer += data

    def feed_eof(self) -> None:
        self.eof = True
        if self._state == _BODY and self._h11 is not None:
            self._h11.receive_data(b"")

    def next_request(self) -> None:
        """The response to the current request is complete: parse the next one."""
        if self._state == _DONE:
            self._state = _HEAD
            self._h11 = None

    def next_event(self) -> Event:
        state = self._state
        if state == _HEAD:
            return self._head()
        if state == _BODY:
            return self._body()
        if state == _NO_BODY:
            self._state = _DONE
            return BODY_END
        return NEED_DATA

    # -- head ------------------------------------------------------------

    def _reject(self, status: int, why: str) -> Rejected:
        self._state = _FAILED
        return Rejected(status, why)

    def _head(self) -> Event:
        buf = self.buffer
        if buf and buf[0] in (13, 10):
            # RFC 9112 2.2: ignore empty lines before the request line
            del buf[: len(buf) - len(buf.lstrip(b"\r\n"))]
        if not buf:
            return CLOSED if self.eof else NEED_DATA
        line_end = buf.find(b"\n")
        line_limit = self.max_target + 32  # method, spaces and version
        if line_end < 0:
            if len(buf) > line_limit:
                return self._reject(414, "request line too long")
            if self.eof:
                return self._reject(400, "connection closed in the middle of a request head")
            return NEED_DATA
        # the request line is complete: check it before waiting for the headers
        parts = buf[:line_end].rstrip(b"\r").split(b" ")
        if len(parts) != 3:
            return self._reject(400, "malformed request line")
        if len(parts[1]) > self.max_target:
            return self._reject(414, "request target too long")
        version_b = bytes(parts[2])
        if version_b not in _VERSIONS:
            if not version_b.startswith(b"HTTP/"):
                # not HTTP/1.x at all (e.g. a broken HTTP/2 preface): no answer would
                # be understood, so the connection is just closed
                return self._reject(0, "not an HTTP request line")
            if _VERSION.match(version_b) is None:
                return self._reject(400, "malformed HTTP version")
            return self._reject(505, f"HTTP version {version_b.decode()} not supported")
        end = buf.find(b"\r\n\r\n", line_end - 1)
        if end >= 0:
            head_len = end + 4
        else:
            m = _HEAD_END.search(buf, line_end)  # bare LF line ends
            head_len = m.end() if m is not None else -1
        if head_len > self.max_head or (head_len < 0 and len(buf) > self.max_head):
            return self._reject(431, "request head too large")
        if head_len < 0:
            if self.eof:
                return self._reject(400, "connection closed in the middle of a request head")
            return NEED_DATA
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        conn.receive_data(bytes(buf[:head_len]))
        del buf[:head_len]
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return self._reject(exc.error_status_hint or 400, str(exc))
        if not isinstance(event, h11.Request):
            return self._reject(400, "malformed request head")
        method = event.method.decode("ascii")
        if method not in METHODS:
            return self._reject(501, f"unknown method {method}")
        headers = [(k.decode("ascii"), v.decode("latin-1")) for k, v in event.headers]
        content_length: int | None = None
        chunked = False
        keep_alive = version_b == b"HTTP/1.1"
        expect = False
        for k, v in headers:
            if k == "content-length":
                content_length = int(v)
            elif k == "transfer-encoding":
                chunked = True
            elif k == "connection":
                tokens = {t.strip().lower() for t in v.split(",")}
                if "close" in tokens:
                    keep_alive = False
                elif "keep-alive" in tokens:
                    keep_alive = True
            elif k == "expect" and v.lower() == "100-continue":
                expect = True
        if chunked:
            content_length = None
        if chunked or content_length:
            # h11 decodes the body: give it what has arrived after the head
            self._h11 = conn
            self._state = _BODY
            if buf:
                conn.receive_data(bytes(buf))
                buf.clear()
            if self.eof:
                conn.receive_data(b"")
        else:
            self._state = _NO_BODY  # the next event is BodyEnd; h11 need not say so
        return RequestHead(method, event.target.decode("utf-8", "surrogateescape"),
                           version_b[5:].decode("ascii"), headers, keep_alive,
                           content_length, chunked, expect)

    # -- body ------------------------------------------------------------

    def _body(self) -> Event:
        conn = self._h11
        assert conn is not None
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return self._reject(exc.error_status_hint or 400, str(exc))
        if isinstance(event, h11.Data):
            return BodyData(bytes(event.data))
        if isinstance(event, h11.EndOfMessage):
            rest, closed = conn.trailing_data
            self.buffer = bytearray(rest)
            self.eof = self.eof or closed
            self._state = _DONE
            return BODY_END
        if event is h11.NEED_DATA:
            if self.eof:
                return self._reject(400, "connection closed in the middle of a request body")
            return NEED_DATA
        if isinstance(event, h11.ConnectionClosed):
            return self._reject(400, "connection closed in the middle of a request body")
        return self._reject(400, f"unexpected {type(event).__name__}")


def response_head(version: str, status: int, headers: list[tuple[str, str]],
                  extra: str = "") -> bytes:
    """A response head; ``extra`` is pre-formatted header lines emberd itself adds.

    Header values with CR or LF are refused (ValueError): a value from a
    backend or the configuration must not be able to add lines.
    """
    lines = [f"HTTP/{version} {status} {reason(status)}\r\n"]
    for k, v in headers:
        if "\n" in v or "\r" in v:
            raise ValueError(f"response header {k} contains a line break")
        lines.append(f"{k}: {v}\r\n")
    lines.append(extra)
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")


def chunk_frame(data: bytes) -> list[bytes]:
    """Pieces of one chunk of a chunked body (RFC 9112 7.1)."""
    return [f"{len(data):x}\r\n".encode("ascii"), data, b"\r\n"]


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

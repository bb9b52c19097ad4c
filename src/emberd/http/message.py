"""Requests and responses as the handling pipeline sees them, for every protocol.

HTTP/1.1 and HTTP/2 both turn what they receive into a Request and write
out a Response; everything in between (conditions, modules, static files)
is protocol-agnostic and shared.

A response body is a list of parts: bytes, or FileParts that refer to a
range of an open file.  Parts let a static file go out with sendfile(2) or
be read into pooled chunks frame by frame, and let a multipart/byteranges
body mix generated headers with file ranges without copying the file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..config.conditions import Field

if TYPE_CHECKING:
    from ..config.settings import Match
    from ..core.body import Body


class OpenFile:
    """A file opened for a response; closed when the last response using it is done."""

    __slots__ = ("fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class FilePart:
    __slots__ = ("file", "length", "offset")

    def __init__(self, file: OpenFile, offset: int, length: int) -> None:
        self.file = file
        self.offset = offset
        self.length = length

    def __len__(self) -> int:
        return self.length


Part = bytes | FilePart


class Response:
    __slots__ = ("headers", "parts", "status")

    def __init__(self, status: int = 200, headers: list[tuple[str, str]] | None = None,
                 parts: list[Part] | None = None) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = headers if headers is not None else []
        self.parts: list[Part] = parts if parts is not None else []

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def set_header(self, name: str, value: str) -> None:
        self.remove_header(name)
        self.headers.append((name, value))

    def remove_header(self, name: str) -> None:
        low = name.lower()
        self.headers = [(k, v) for k, v in self.headers if k.lower() != low]

    def body_length(self) -> int:
        return sum(len(p) for p in self.parts)

    def close(self) -> None:
        """Close the files the parts refer to (idempotent)."""
        for p in self.parts:
            if isinstance(p, FilePart):
                p.file.close()
        self.parts = []


# With server.stream-request-body = 2, a driver stops reading a request body
# once this much of it waits for the producer; the producer calls the sink's
# want_body() when its backlog has dropped to this again.
BODY_BACKLOG = 16 * 1024


class Sink(Protocol):
    """Where a Deferred delivers its response: the protocol driver of the request."""

    @property
    def paused(self) -> bool:
        """True while the client is not taking data: produce nothing more until resume()."""
        ...

    def head(self, resp: Response) -> None:
        """Status and headers are known (``resp.parts``, if any, are the start of the body)."""

    def data(self, data: bytes) -> None:
        """More body."""

    def end(self) -> None:
        """The body is complete."""

    def fail(self, status: int) -> None:
        """The backend failed: an error response, or a cut-off one if the head went out."""

    def want_body(self) -> None:
        """The producer took the request body it was waiting for: more may be read."""


class Deferred(Response):
    """A response that a backend produces after the request has been routed.

    The driver calls ``start(sink)``; the producer then calls the sink's
    methods as the backend answers.  The driver calls ``more_body()`` when
    the request body grows or ends, ``resume()`` when the client takes data
    again after the sink reported ``paused``, and ``abort()`` when the
    client is gone.
    """

    __slots__ = ()

    def start(self, sink: Sink) -> None:
        raise NotImplementedError

    def more_body(self) -> None:
        """The request body grew or is complete (for producers that stream it)."""

    def resume(self) -> None:
        """The sink takes data again."""

    def abort(self) -> None:
        """The client is gone: release the backend."""

    def body_backlog(self) -> int:
        """Request body bytes received but not yet taken by the producer."""
        return 0


class Physical:
    """Where a request maps to on disk (lighttpd's r->physical)."""

    __slots__ = ("doc_root", "path", "path_info", "rel_path")

    def __init__(self) -> None:
        self.doc_root = ""
        self.rel_path = ""
        self.path = ""
        self.path_info = ""


class Request:
    """One request, whatever protocol carried it."""

    __slots__ = (
        "authority",
        "body",
        "bytes_in",
        "bytes_out",
        "conf",
        "content_length",
        "env",
        "error_status",
        "handler",
        "headers",
        "keep_alive",
        "local_addr",
        "local_port",
        "match",
        "method",
        "path",
        "physical",
        "protocol",
        "query",
        "remote_addr",
        "remote_port",
        "response",
        "scheme",
        "socket",
        "start",
        "target",
        "user",
        "version",
    )

    def __init__(self, method: str, target: str, version: str,
                 headers: list[tuple[str, str]]) -> None:
        self.physical = Physical()
        self.reset(method, target, version, headers)

    def reset(self, method: str, target: str, version: str,
              headers: list[tuple[str, str]]) -> None:
        """(Re)initialise every field, so that a pooled object carries nothing over."""
        self.method = method
        self.target = target  # as received (UTF-8 decoded with surrogateescape)
        self.version = version  # "1.0", "1.1" or "2.0"
        self.headers = headers  # lower-case names, values as received
        self.protocol = "HTTP/2.0" if version == "2.0" else "HTTP/" + version
        self.scheme = "http"
        self.authority = ""  # normalised host[:port]
        self.path = ""  # decoded, simplified
        self.query: str | None = None
        self.remote_addr = ""
        self.remote_port = 0
        self.local_addr = ""
        self.local_port = 0
        self.socket = ""  # the listener's token for $SERVER["socket"]
        self.content_length: int | None = None
        self.body: Body | None = None
        self.conf: dict[str, Any] = {}  # the settings that apply (set by prepare())
        self.match: Match | None = None  # which condition blocks applied
        ph = self.physical
        ph.doc_root = ph.rel_path = ph.path = ph.path_info = ""
        self.keep_alive = True
        self.start = time.time()
        self.env: dict[str, str] = {}  # extra environment for backends (setenv)
        self.user = ""  # authenticated user
        self.error_status = 0  # set while server.error-handler answers an error
        self.bytes_in = 0  # head and body received
        self.bytes_out = 0  # head and body sent
        self.response: Response | None = None
        # a module that claimed the request before the file system was consulted
        self.handler: Callable[[Request], Response] | None = None

    def clear(self) -> None:
        """Drop references to what the request used (before it goes back to a pool)."""
        self.headers = []
        self.body = None
        self.conf = {}
        self.match = None
        self.env = {}
        self.response = None
        self.handler = None

    def header(self, name: str) -> str | None:
        """The value of a request header (``name`` in lower case); repeats are joined."""
        found: list[str] = []
        for k, v in self.headers:
            if k == name:
                found.append(v)
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        return ("; " if name == "cookie" else ", ").join(found)

    def cond_value(self, field: Field, header: str | None) -> str | None:
        """What a configuration condition compares (the matcher's Facts protocol)."""
        if field is Field.URL:
            return self.path
        if field is Field.HOST:
            return self.authority
        if field is Field.REQUEST_HEADER:
            return self.header(header or "")
        if field is Field.REMOTE_IP:
            return self.remote_addr
        if field is Field.QUERY_STRING:
            return self.query or ""
        if field is Field.REQUEST_METHOD:
            return self.method
        if field is Field.SCHEME:
            return self.scheme
        return self.socket

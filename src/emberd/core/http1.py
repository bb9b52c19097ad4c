"""HTTP/1.x on a connection: drives the sans-IO parser, runs the pipeline, writes responses.

Theory of operation: one request at a time.  While a request is read and
answered, later pipelined bytes stay in the parser's buffer; once that
buffer holds more than a request head may, reading pauses until the
response is out (pipelining is bounded).  A request whose head is refused
(400, 414, 431, 501, 505) or whose body is too large (413) is answered and
the connection closed, as lighttpd does.

A response goes out as: the head, then its parts.  Bytes parts are written
directly; a small file (under 16 KiB, as lighttpd's small-response
optimisation) is read and sent in the same write as the head.  Larger file
parts go with sendfile(2) straight from the file to the socket when
``server.network-backend`` allows, the connection is plain TCP and the
transport has nothing queued; what the socket does not take right away is
read into a pooled chunk and queued, and sendfile resumes once the queue
has drained.  Without sendfile, files are read into pooled chunks one at a
time, never faster than the socket takes them.
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING

from ..http import h1
from ..http.dates import now as http_now
from ..http.message import BODY_BACKLOG, Deferred, FilePart, Part, Request, Response
from . import pipeline
from .body import Body, BodyError
from .runtime import Runtime

if TYPE_CHECKING:
    from .connection import Connection

SENDFILE_SEGMENT = 512 * 1024  # bytes per sendfile(2) call (lighttpd's mmap window)
SMALL_RESPONSE = 16 * 1024  # file bytes read into the head's write (lighttpd: < 16 KiB)
STREAM_QUEUE = 64 * 1024  # backend bytes queued for a slow client before the backend waits
TLS_RECORD = 16 * 1024  # the plaintext of one TLS record
_NO_LENGTH = frozenset((204, 304))


def _frame(part: Part) -> list[Part]:
    """A body part as chunked transfer coding (for parts a backend delivered whole)."""
    if isinstance(part, bytes):
        return [*h1.chunk_frame(part)] if part else []
    return [f"{part.length:x}\r\n".encode("ascii"), part, b"\r\n"]


class _Sink:
    """What a backend's Deferred response talks to."""

    __slots__ = ("_h1",)

    def __init__(self, h1: Http1) -> None:
        self._h1 = h1

    @property
    def paused(self) -> bool:
        return self._h1.stream_paused()

    def head(self, resp: Response) -> None:
        self._h1.stream_head(resp)

    def data(self, data: bytes) -> None:
        self._h1.stream_data(data)

    def end(self) -> None:
        self._h1.stream_end()

    def fail(self, status: int) -> None:
        self._h1.stream_fail(status)

    def want_body(self) -> None:
        self._h1.stream_want_body()


class Http1:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rt: Runtime = conn.server.runtime
        self.parser = h1.H1Parser(self.rt.max_head, self.rt.max_target)
        self.requests = 0
        self.req: Request | None = None
        self.resp: Response | None = None
        self.body: Body | None = None
        self._parts: deque[Part] = deque()
        self._sent = 0
        self._use_sendfile = self.rt.config["server.network-backend"] in (
            "sendfile", "linux-sendfile")
        self._close_after = False
        self._routed = False  # the current request went through route()
        self._deferred: Deferred | None = None  # a backend producing the response
        self._streaming = False  # more body will come from the backend
        self._chunked = False  # the streamed body goes out chunked
        self._finish_pending = False  # response out, request body still arriving
        self._body_waits = False  # reading stopped until the backend takes the body
        self._busy = False  # inside process(): no re-entry from callbacks
        self._handed_over = False  # the connection switched to HTTP/2 (h2c)
        conn.server.shared.stats.connections_h1 += 1

    # -- input ------------------------------------------------------------

    def data_received(self, data: memoryview) -> None:
        self.parser.feed(data)
        if self.req is not None and self.resp is None:
            self._read_deadline()
        self.process()

    def eof_received(self) -> None:
        self.parser.feed_eof()
        self.process()

    def _read_deadline(self) -> None:
        self.conn.set_deadline(self.rt.config["server.max-read-idle"], "reading a request")

    def process(self) -> None:
        if self._busy:
            return
        self._busy = True
        try:
            self._process()
        finally:
            self._busy = False

    def _process(self) -> None:
        conn = self.conn
        while not conn.closed and not self._handed_over:
            if self.req is not None and self.parser.request_done:
                # answering: later pipelined requests wait, in a bounded buffer
                if self.parser.buffered > self.rt.max_head:
                    conn.pause_reading()
                return
            ev = self.parser.next_event()
            if isinstance(ev, h1.RequestHead):
                self._start(ev)
            elif isinstance(ev, h1.BodyData):
                self._body_data(ev.data)
            elif isinstance(ev, h1.BodyEnd):
                self._body_end()
            elif isinstance(ev, h1.Rejected):
                self._reject(ev.status, ev.reason)
            elif isinstance(ev, h1.Closed):
                conn.close()
                return
            else:
                return

    def _start(self, head: h1.RequestHead) -> None:
        conn = self.conn
        self.rt = rt = conn.server.runtime  # a reload applies from the next request on
        self.requests += 1
        rt.stats.requests += 1
        req = rt.requests.acquire(head.method, head.target, head.version, head.headers)
        req.scheme = "https" if conn.tls else "http"
        req.remote_addr, req.remote_port = conn.remote_addr, conn.remote_port
        req.local_addr, req.local_port = conn.local_addr, conn.local_port
        req.socket = conn.token
        if conn.tls:
            conn.annotate(req)  # SSL_* variables, a client certificate's user
        req.keep_alive = head.keep_alive
        req.content_length = head.content_length
        self.req = req
        if self._upgrade_h2c(head, req):
            return
        self._read_deadline()
        early = pipeline.prepare(rt, req)
        if early is not None:
            self._close_after = head.content_length != 0 or head.chunked
            self._respond(early)
            return
        conf = req.conf
        limit = conf["server.max-request-size"] * 1024
        if head.content_length is None and not head.chunked:
            return  # no body: BodyEnd follows
        if limit and head.content_length is not None and head.content_length > limit:
            self._log_body_refused(req, head.content_length, limit)
            self._close_after = True
            self._respond(pipeline.error(413))
            return
        self.body = req.body = Body(
            rt.pool, rt.stats, memory_max=conf["emberd.body-memory-max"], max_size=limit,
            upload_dirs=rt.upload_dirs, temp_file_size=rt.temp_file_size)
        if head.expect_continue and head.version == "1.1":
            conn.write(h1.CONTINUE)
        if conf["server.stream-request-body"]:
            self._route()  # a backend gets the body as it arrives

    def _upgrade_h2c(self, head: h1.RequestHead, req: Request) -> bool:
        """``Upgrade: h2c`` (RFC 7540 3.2), when the server.h2c feature flag allows it."""
        features = self.rt.features
        if not (features["server.h2c"] and features["server.h2proto"]) or self.conn.tls:
            return False
        upgrade = req.header("upgrade")
        settings = req.header("http2-settings")
        tokens = {t.strip().lower() for t in (req.header("connection") or "").split(",")}
        if (upgrade is None or "h2c" not in {t.strip().lower() for t in upgrade.split(",")}
                or settings is None or not {"upgrade", "http2-settings"} <= tokens
                or head.chunked or head.content_length or head.version != "1.1"):
            return False  # ignored: the request is answered over HTTP/1.1
        from .http2 import Http2  # h2 is imported when a client first asks for HTTP/2

        # the upgrade headers are not passed on (lighttpd's h2c smuggling fix)
        req.headers = [(k, v) for k, v in req.headers
                       if k not in ("upgrade", "http2-settings", "connection")]
        req.version, req.protocol = "2.0", "HTTP/2.0"
        self.req = None
        conn = self.conn
        conn.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                   b"Upgrade: h2c\r\n\r\n")
        rest = bytes(self.parser.buffer)
        self.rt.stats.connections_h1 -= 1
        conn.driver = driver = Http2(conn, req, settings.encode("latin-1"))
        self._handed_over = True
        if rest:
            driver.data_received(memoryview(rest))
        return True

    def _log_body_refused(self, req: Request, size: int, limit: int) -> None:
        self.rt.log("request", f"request body of {size} bytes is over server.max-request-size "
                    f"({limit // 1024} KiB) -> 413: {req.method} {req.target}")

    def _body_data(self, data: bytes) -> None:
        body = self.body
        if body is None:
            return  # a body we decided not to keep (the response is already on its way)
        try:
            body.append(data)
        except BodyError as exc:
            req = self.req
            assert req is not None
            self.rt.log("request", f"{exc} -> {exc.status}: {req.method} {req.target}")
            self._drop_body()
            self._close_after = True
            if self.resp is None:
                self._abort_deferred()
                self._respond(pipeline.error(exc.status))
            return
        deferred = self._deferred
        if deferred is not None:
            deferred.more_body()
            if (self.req is not None and self.req.conf["server.stream-request-body"] == 2
                    and deferred.body_backlog() > BODY_BACKLOG):
                self._body_waits = True
                self.conn.pause_reading()

    def stream_want_body(self) -> None:
        if self._body_waits:
            self._body_waits = False
            self.conn.resume_reading()

    def _drop_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None
            if self.req is not None:
                self.req.body = None

    def _body_end(self) -> None:
        if self.body is not None:
            self.body.done = True
        if not self._routed:
            self._route()
        elif self._deferred is not None:
            self._deferred.more_body()
        if self._finish_pending:
            self._finish_pending = False
            self._response_done()

    def _route(self) -> None:
        req = self.req
        if req is None or self.resp is not None:
            return  # answered before the body ended (an error)
        self._routed = True
        rt = self.rt
        try:
            resp = pipeline.route(rt, req)
        except Exception as exc:  # a bug in a module must not kill the connection loop
            import traceback

            rt.log("pipeline", f"{req.method} {req.target}: {exc!r}\n"
                   + "".join(traceback.format_exc()))
            resp = pipeline.error(500)
        if isinstance(resp, Deferred):
            self._deferred = resp
            resp.start(_Sink(self))
            return
        if self.body is not None and not self.body.done:
            self._drop_body()  # nothing reads it: what is still to come is dropped
        self._send(req, pipeline.finish(rt, req, resp))

    def _abort_deferred(self) -> None:
        if self._deferred is not None:
            self._deferred.abort()
            self._deferred = None
        self._streaming = False

    # -- a backend's response (Deferred) ----------------------------------------

    def stream_head(self, resp: Response) -> None:
        req = self.req
        if req is None or self.resp is not None:
            return
        rt = self.rt
        resp = pipeline.finish(rt, req, resp, backend=True)
        if resp.status >= 400 and req.conf["server.error-intercept"]:
            self._abort_deferred()  # the error document replaces the backend's body
            self._send(req, resp)
            return
        length = resp.header("content-length")
        self._streaming = True
        if length is None and req.method != "HEAD" and resp.status not in _NO_LENGTH:
            if req.version == "1.1" and req.conf["server.protocol-http11"]:
                self._chunked = True
                resp.headers.append(("Transfer-Encoding", "chunked"))
                resp.parts = [p for part in resp.parts for p in _frame(part)]
            else:
                self._close_after = True  # the end of the body is the end of the connection
        self._send(req, resp, framed=True)

    def stream_data(self, data: bytes) -> None:
        req = self.req
        if req is None or self.resp is None or req.method == "HEAD" or \
                self.resp.status in _NO_LENGTH:
            return
        self._parts.extend(h1.chunk_frame(data) if self._chunked else (data,))
        self._pump()

    def stream_end(self) -> None:
        if self.resp is None:
            return
        self._deferred = None
        if self._chunked:
            self._parts.append(h1.LAST_CHUNK)
            self._chunked = False
        self._streaming = False
        self._pump()

    def stream_fail(self, status: int) -> None:
        self._deferred = None
        self._streaming = False
        if self.resp is None:
            self._respond(pipeline.error(status))
            return
        self.rt.log("response", "backend failed after its response started; closing")
        self.conn.abort()

    def stream_paused(self) -> bool:
        return self.conn.paused or sum(len(p) for p in self._parts) > STREAM_QUEUE

    def _reject(self, status: int, reason: str) -> None:
        conn = self.conn
        if not status:
            self.rt.log("request", f"{reason} -> connection closed (client {conn.remote_addr})")
            conn.close()
            return
        self.rt.log("request", f"{reason} -> {status} (client {conn.remote_addr})")
        if self.req is None:
            self.req = self.rt.requests.acquire("GET", "", "1.1", [])
            self.req.remote_addr = conn.remote_addr
            self.req.conf = self.rt.config.values
            self.requests += 1
        self._close_after = True
        self._drop_body()
        self._abort_deferred()
        if self.resp is not None:  # a backend's response is under way: it cannot be replaced
            conn.close()
            return
        self._respond(pipeline.error(status))

    def _respond(self, resp: Response) -> None:
        req = self.req
        assert req is not None
        self._send(req, pipeline.finish(self.rt, req, resp))

    # -- output -----------------------------------------------------------

    def _keep_alive(self, req: Request) -> bool:
        # a client that half-closed still gets answers to every request it sent;
        # the connection closes when the parser reports nothing more (Closed)
        if self._close_after or not req.keep_alive or self.conn.server.stopping:
            return False
        conf = req.conf
        limit: int = conf["server.max-keep-alive-requests"]
        return limit > 0 and self.requests < limit and conf["server.max-keep-alive-idle"] > 0

    def _send(self, req: Request, resp: Response, framed: bool = False) -> None:
        """Write the head and start the body; ``framed``: the headers say how it ends."""
        conn = self.conn
        self.resp = resp
        req.keep_alive = keep = self._keep_alive(req)
        conf = req.conf
        version = "1.1" if req.version == "1.1" and conf["server.protocol-http11"] else "1.0"
        status = resp.status
        tag = conf["server.tag"]
        extra = "".join((
            f"Content-Length: {resp.body_length()}\r\n"
            if status not in _NO_LENGTH and not framed else "",
            f"Date: {http_now()}\r\n",
            f"Server: {tag}\r\n" if tag else "",
            "" if keep and version == "1.1" else
            "Connection: keep-alive\r\n" if keep else "Connection: close\r\n",
        ))
        try:
            head = h1.response_head(version, status, resp.headers, extra)
        except ValueError as exc:
            self.rt.log("response", f"{exc} -> 500")
            resp.close()
            resp = self.resp = pipeline.error(500)
            resp.parts = [b""]
            head = h1.response_head(version, 500, [], "Content-Length: 0\r\n"
                                    "Connection: close\r\n")
            req.keep_alive = False
        req.bytes_out = len(head)
        self.rt.stats.count_response(status)
        if req.method == "HEAD" or status in _NO_LENGTH:
            resp.close()
        parts = deque(resp.parts)
        # the head, bytes parts and small files go out in one write
        first = [head]
        room = SMALL_RESPONSE
        while parts:
            part = parts[0]
            if isinstance(part, bytes):
                first.append(part)
            elif part.length <= room:
                data = os.pread(part.file.fd, part.length, part.offset)
                if len(data) != part.length:
                    self._truncated()
                    return
                first.append(data)
                room -= part.length
            else:
                break
            parts.popleft()
        self._sent = sum(len(p) for p in first[1:])
        conn.write(b"".join(first) if len(first) > 1 else head)
        self._parts = parts
        conn.set_deadline(self.rt.config["server.max-write-idle"], "writing a response")
        self._pump()

    def resume(self) -> None:
        self._pump()
        if self._deferred is not None and not self.conn.closed:
            self._deferred.resume()

    def _pump(self) -> None:
        conn = self.conn
        parts = self._parts
        while parts and not conn.paused and not conn.closed:
            part = parts[0]
            if isinstance(part, bytes):
                conn.write(part)
                self._sent += len(part)
                parts.popleft()
            elif not (self._sendfile(part) or self._read_into_chunk(part)):
                return
        if not parts and not conn.paused and not conn.closed and not self._streaming:
            self._response_done()

    def _sendfile(self, part: FilePart) -> bool:
        """sendfile(2) as much of ``part`` as the socket takes now; False if nothing went.

        Only while the transport has nothing queued (it owns the socket's
        write side otherwise); what the socket does not take goes through the
        transport as a chunk, and sendfile resumes once that has drained.
        """
        conn = self.conn
        fd = conn.sendfile_fd
        if fd < 0 or conn.write_buffered or not self._use_sendfile:
            return False
        try:
            n = os.sendfile(fd, part.file.fd, part.offset, min(part.length, SENDFILE_SEGMENT))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self.rt.log("response", f"sendfile: {exc.strerror}")
            conn.abort()
            return True
        if n == 0:
            self._truncated()
            return True
        part.offset += n
        part.length -= n
        self._sent += n
        conn.count_out(n)
        if not part.length:
            self._parts.popleft()
        return True

    def _read_into_chunk(self, part: FilePart) -> bool:
        """Send the next chunk-sized piece of a file part; False if that failed."""
        if self.conn.tls:
            return self._read_record(part)
        pool = self.rt.pool
        chunk = pool.acquire()
        want = min(len(chunk.mem), part.length)
        try:
            n = os.preadv(part.file.fd, [chunk.mem[:want]], part.offset)
        except OSError as exc:
            n = -1
            self.rt.log("response", f"reading a file: {exc.strerror}")
        if n <= 0:
            pool.release(chunk)
            self._truncated()
            return False
        chunk.end = n
        self._advance(part, n)
        self.conn.write_chunk(chunk)
        return True

    def _read_record(self, part: FilePart) -> bool:
        """On TLS, a whole record's worth (16 KiB) at a time: it is encrypted at once, and
        records of the chunk size (1 KiB on the device) would cost many times the CPU."""
        try:
            block = os.pread(part.file.fd, min(TLS_RECORD, part.length), part.offset)
        except OSError as exc:
            self.rt.log("response", f"reading a file: {exc.strerror}")
            block = b""
        if not block:
            self._truncated()
            return False
        self._advance(part, len(block))
        self.conn.write(block)
        return True

    def _advance(self, part: FilePart, n: int) -> None:
        """``n`` bytes of ``part`` are on their way: the part is done when none are left."""
        part.offset += n
        part.length -= n
        self._sent += n
        if not part.length:
            self._parts.popleft()

    def _truncated(self) -> None:
        """The file got shorter than promised: the response cannot be completed."""
        self.rt.log("response", "file shrank while it was sent; closing the connection")
        self.conn.abort()

    def _response_done(self) -> None:
        req, resp = self.req, self.resp
        assert req is not None and resp is not None
        if not self.parser.request_done and req.keep_alive:
            self._finish_pending = True  # the rest of the request body is still coming
            return
        req.bytes_out += self._sent
        for hook in self.rt.hooks["request_done"]:
            hook(req, resp, self._sent)
        resp.close()
        self._drop_body()
        self.req = self.resp = None
        self._parts = deque()
        self._routed = False
        self._abort_deferred()
        keep = req.keep_alive
        self.rt.requests.release(req)
        conn = self.conn
        if not keep:
            conn.close()
            return
        self._close_after = False
        self.parser.next_request()
        conn.set_deadline(self.rt.config["server.max-keep-alive-idle"], "idle (keep-alive)")
        conn.resume_reading()
        self.process()

    # -- end ----------------------------------------------------------------

    def reloaded(self) -> None:
        """A new configuration: the next request on this connection uses it."""

    def graceful_close(self) -> None:
        """Shutting down: close now if idle, else after the current response."""
        if self.req is None and self.parser.idle:
            self.conn.close()
        else:
            self._close_after = True
            if self.req is not None:
                self.req.keep_alive = False

    def timed_out(self) -> None:
        conn = self.conn
        if self.rt.config["debug.log-timeouts"]:
            self.rt.log("connection", f"timeout while {conn.timeout_reason} "
                        f"(client {conn.remote_addr})")
        if self.req is not None and self.resp is None and not self.parser.idle:
            # a request that stopped arriving: lighttpd answers 408 only if nothing was sent
            self._close_after = True
            self._respond(pipeline.error(408))
            conn.close()
            return
        conn.abort()

    def close(self) -> None:
        self._abort_deferred()
        if self.resp is not None:
            self.resp.close()
            self.resp = None
        if self.req is not None:
            self.rt.requests.release(self.req)
            self.req = None
        self._parts = deque()
        self._drop_body()
        self.conn.server.shared.stats.connections_h1 -= 1

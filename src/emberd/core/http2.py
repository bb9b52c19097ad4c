"""HTTP/2 on a connection: streams through the shared pipeline, one sender loop.

Theory of operation:

* Input is fed to the sans-IO session (``http/h2.py``) one pooled chunk at
  a time; the events it returns open streams, fill request bodies and end
  them.  Request DATA is acknowledged (WINDOW_UPDATE) once it is stored in
  the body -- the client can send no faster than emberd stores -- and at
  once for streams whose body is being discarded.
* A complete request runs through the same pipeline as HTTP/1.1; the
  response head goes out as HEADERS and its parts are queued on the stream.
* One sender loop (``_pump``) serves the streams that have data, one DATA
  frame each per pass (round robin), sized by the stream's flow-control
  window, the peer's frame size and the pool's chunk size; file data is read
  into a pooled chunk per frame.  A stream without window waits for a
  WINDOW_UPDATE (or a larger initial window in SETTINGS) without holding up
  the others.  Output is flushed once per pass, and the loop stops while the
  socket is not taking it.
* Floods: when more than 64 KiB of output wait for the socket (PING and
  SETTINGS acknowledgements a client does not read), reading stops until
  the socket has taken them, as lighttpd does.
* Shutting down, reloading, ``h2.max-requests-per-connection``: a GOAWAY
  with the last stream id is sent; streams in flight finish, later ones are
  refused, and the connection closes when none is left.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from typing import TYPE_CHECKING

import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from ..http.dates import now as http_now
from ..http.h2 import Abuse, H2Session, Limits
from ..http.message import BODY_BACKLOG, Deferred, Part, Request, Response
from . import pipeline
from .body import Body, BodyError
from .runtime import Runtime

if TYPE_CHECKING:
    from .connection import Connection

OUTPUT_BOUND = 64 * 1024  # output waiting for the socket above which reading stops
STREAM_QUEUE = 64 * 1024  # backend bytes queued on a stream before the backend waits
_NO_LENGTH = frozenset((204, 304))
# headers HTTP/2 forbids (RFC 9113 8.2.2)
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding",
                         "upgrade"))


class Stream:
    __slots__ = ("body", "complete", "deferred", "discard", "id", "offset", "parts", "req",
                 "resp", "routed", "sent", "streaming", "unacked")

    def __init__(self, sid: int, req: Request) -> None:
        self.id = sid
        self.req = req
        self.resp: Response | None = None
        self.body: Body | None = None
        self.parts: deque[Part] = deque()
        self.offset = 0  # into a bytes part at the head of ``parts``
        self.sent = 0
        self.complete = False  # the request (head and body) has arrived
        self.discard = False  # request body bytes are acknowledged and dropped
        self.routed = False
        self.deferred: Deferred | None = None  # a backend producing the response
        self.streaming = False  # more body will come from the backend
        self.unacked = 0  # request body bytes whose window is held back for the backend

    def queued(self) -> int:
        return sum(len(p) for p in self.parts) - self.offset


class _Sink:
    """What a backend's Deferred response on a stream talks to."""

    __slots__ = ("_h2", "_st")

    def __init__(self, h2: Http2, st: Stream) -> None:
        self._h2 = h2
        self._st = st

    @property
    def paused(self) -> bool:
        return self._h2.stream_paused(self._st)

    def head(self, resp: Response) -> None:
        self._h2.stream_head(self._st, resp)

    def data(self, data: bytes) -> None:
        self._h2.stream_data(self._st, data)

    def end(self) -> None:
        self._h2.stream_end(self._st)

    def fail(self, status: int) -> None:
        self._h2.stream_fail(self._st, status)

    def want_body(self) -> None:
        self._h2.stream_want_body(self._st)


class Http2:
    def __init__(self, conn: Connection, upgrade: Request | None = None,
                 settings_header: bytes = b"") -> None:
        self.conn = conn
        self.rt: Runtime = conn.server.runtime
        self.sess = H2Session(Limits.from_config(self.rt.config.values))
        self.streams: dict[int, Stream] = {}
        self.ready: deque[int] = deque()
        self.blocked: set[int] = set()
        self.started = 0  # streams opened on this connection
        self.highest = 0
        self.closing = False
        self._read_paused = False
        self._bad_creds = False  # a GOAWAY went out after invalid credentials
        self._max_requests: int = self.rt.config["h2.max-requests-per-connection"]
        stats = self.rt.stats
        stats.connections_h2 += 1
        if upgrade is None:
            self.sess.start()
        else:
            self.sess.start_upgrade(settings_header)
            self._open(1, upgrade)
            self.streams[1].complete = True
            self._dispatch(self.streams[1])
        self._after_input()

    # -- input ------------------------------------------------------------------

    def data_received(self, data: memoryview) -> None:
        try:
            events = self.sess.receive(data)
        except Abuse as exc:
            self._fail(exc.code, exc.reason)
            return
        except h2.exceptions.ProtocolError as exc:
            self.rt.log("http2", f"protocol error from {self.conn.remote_addr}: {exc}")
            self._flush()  # h2 has queued its GOAWAY
            self._close_all()
            return
        for ev in events:
            self._event(ev)
        self._after_input()

    def eof_received(self) -> None:
        self._close_all()

    def _after_input(self) -> None:
        self._pump()
        self._flush()
        self._update_deadline()

    def _event(self, ev: h2.events.Event) -> None:
        if isinstance(ev, h2.events.RequestReceived):
            self._request(ev)
        elif isinstance(ev, h2.events.DataReceived):
            self._data(ev)
        elif isinstance(ev, h2.events.StreamEnded):
            st = self.streams.get(ev.stream_id or 0)
            if st is not None and not st.complete:
                st.complete = True
                if st.body is not None:
                    st.body.done = True
                if not st.routed and not st.discard:
                    self._dispatch(st)
                elif st.deferred is not None:
                    st.deferred.more_body()
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.get(ev.stream_id or 0)
            if st is not None:
                self._drop(st)
        elif isinstance(ev, h2.events.WindowUpdated):
            if not ev.stream_id:
                self.ready.extend(self.blocked)
                self.blocked.clear()
            elif ev.stream_id in self.blocked:
                self.blocked.discard(ev.stream_id)
                self.ready.append(ev.stream_id)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            if h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in ev.changed_settings:
                self.ready.extend(self.blocked)  # h2 sends no WindowUpdated for this
                self.blocked.clear()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closing = True  # the client is leaving: finish what is in flight

    def _request(self, ev: h2.events.RequestReceived) -> None:
        sid = ev.stream_id
        assert sid is not None
        h2conn = self.sess.conn
        if self.closing or len(self.streams) >= self.sess.limits.max_concurrent_streams:
            # beyond SETTINGS_MAX_CONCURRENT_STREAMS (sent before our SETTINGS arrived):
            # a stream error (RFC 9113 5.1.2), the connection goes on
            h2conn.reset_stream(sid, ErrorCodes.REFUSED_STREAM)
            return
        self.highest = max(self.highest, sid)
        self.started += 1
        method = path = authority = ""
        headers: list[tuple[str, str]] = []
        size = 0
        for name_b, value_b in ev.headers or ():
            name = bytes(name_b).decode("latin-1")
            value = bytes(value_b).decode("latin-1")
            size += len(name) + len(value) + 4
            if name[0] != ":":
                headers.append((name, value))
            elif name == ":method":
                method = value
            elif name == ":path":
                path = value
            elif name == ":authority":
                authority = value
        if authority and not any(k == "host" for k, _ in headers):
            headers.append(("host", authority))
        target = path.encode("latin-1").decode("utf-8", "surrogateescape")
        req = self.rt.requests.acquire(method, target, "2.0", headers)
        st = self._open(sid, req)
        if self._max_requests and self.started >= self._max_requests:
            self._goaway()
        if ev.stream_ended:
            st.complete = True
        if size > self.rt.max_head:
            self.rt.log("http2", f"request headers of {size} bytes are over "
                        "server.max-request-field-size -> 431")
            self._early(st, 431)
        elif method == "CONNECT":
            self._early(st, 405)
        elif st.complete:
            self._dispatch(st)
        else:
            self._start_body(st)

    def _open(self, sid: int, req: Request) -> Stream:
        conn = self.conn
        rt = self.rt
        rt.stats.requests += 1
        req.scheme = "https" if conn.tls else "http"
        req.remote_addr, req.remote_port = conn.remote_addr, conn.remote_port
        req.local_addr, req.local_port = conn.local_addr, conn.local_port
        req.socket = conn.token
        if conn.tls:
            conn.annotate(req)
        st = self.streams[sid] = Stream(sid, req)
        return st

    def _early(self, st: Stream, status: int) -> None:
        """Answer before the body: the rest of it will be discarded."""
        st.discard = True
        req = st.req
        pipeline.prepare(self.rt, req)
        self._respond(st, pipeline.finish(self.rt, req, pipeline.error(status)))

    def _start_body(self, st: Stream) -> None:
        rt = self.rt
        req = st.req
        early = pipeline.prepare(rt, req)
        if early is not None:
            st.discard = True
            self._respond(st, pipeline.finish(rt, req, early))
            return
        conf = req.conf
        limit = conf["server.max-request-size"] * 1024
        length = req.header("content-length")
        if limit and length is not None and length.isdigit() and int(length) > limit:
            rt.log("request", f"request body of {length} bytes is over "
                   f"server.max-request-size ({limit // 1024} KiB) -> 413: {req.target}")
            self._early(st, 413)
            return
        if length is not None and length.isdigit():
            req.content_length = int(length)
        st.body = req.body = Body(rt.pool, rt.stats, memory_max=conf["emberd.body-memory-max"],
                                  max_size=limit, upload_dirs=rt.upload_dirs,
                                  temp_file_size=rt.temp_file_size)
        if conf["server.stream-request-body"]:
            self._dispatch(st)  # a backend gets the body as it arrives

    def _data(self, ev: h2.events.DataReceived) -> None:
        sid = ev.stream_id or 0
        length = ev.flow_controlled_length or 0
        st = self.streams.get(sid)
        if st is not None and st.body is not None and not st.discard and ev.data:
            try:
                st.body.append(ev.data)
            except BodyError as exc:
                self.rt.log("request", f"{exc} -> {exc.status}: {st.req.target}")
                self._close_body(st)
                st.discard = True
                if st.resp is None:
                    self._abort_deferred(st)
                    self._respond(st, pipeline.finish(self.rt, st.req,
                                                      pipeline.error(exc.status)))
            else:
                deferred = st.deferred
                if deferred is not None:
                    deferred.more_body()
                    if (length and st.req.conf["server.stream-request-body"] == 2
                            and deferred.body_backlog() > BODY_BACKLOG):
                        st.unacked += length  # the client waits for the backend
                        return
        if length:
            # stored (or discarded): hand the window back
            self.sess.conn.acknowledge_received_data(length, sid)

    # -- responses ----------------------------------------------------------------

    def _dispatch(self, st: Stream) -> None:
        rt = self.rt
        req = st.req
        st.routed = True
        try:
            resp = (pipeline.prepare(rt, req) if not req.conf else None) \
                or pipeline.route(rt, req)
        except Exception as exc:  # a bug in a module must not kill the connection
            import traceback

            rt.log("pipeline", f"{req.method} {req.target}: {exc!r}\n"
                   + traceback.format_exc())
            resp = pipeline.error(500)
        if isinstance(resp, Deferred):
            st.deferred = resp
            resp.start(_Sink(self, st))
            return
        if st.body is not None and not st.complete:
            self._close_body(st)  # nothing reads it: acknowledge and drop the rest
            st.discard = True
        self._respond(st, pipeline.finish(rt, req, resp))

    # -- a backend's response (Deferred) ----------------------------------------------

    def stream_head(self, st: Stream, resp: Response) -> None:
        if st.id not in self.streams or st.resp is not None:
            return
        req = st.req
        resp = pipeline.finish(self.rt, req, resp, backend=True)
        if resp.status >= 400 and req.conf["server.error-intercept"]:
            self._abort_deferred(st)
        else:
            st.streaming = True
        self._respond(st, resp, framed=st.streaming)
        self._after_input()

    def stream_data(self, st: Stream, data: bytes) -> None:
        if st.id not in self.streams or st.resp is None or not data:
            return
        if st.req.method == "HEAD" or st.resp.status in _NO_LENGTH:
            return
        st.parts.append(data)
        if st.id not in self.ready and st.id not in self.blocked:
            self.ready.append(st.id)
        self._after_input()

    def stream_end(self, st: Stream) -> None:
        st.deferred = None
        if st.id not in self.streams:
            return
        st.streaming = False
        if not st.parts:
            self.sess.conn.send_data(st.id, b"", end_stream=True)
            self._finished(st)
        self._after_input()

    def stream_fail(self, st: Stream, status: int) -> None:
        st.deferred = None
        st.streaming = False
        if st.id not in self.streams:
            return
        if st.resp is None:
            self._respond(st, pipeline.finish(self.rt, st.req, pipeline.error(status)))
        else:
            self.rt.log("http2", "backend failed after its response started; resetting "
                        f"stream {st.id}")
            self._reset(st, ErrorCodes.INTERNAL_ERROR)
        self._after_input()

    def stream_want_body(self, st: Stream) -> None:
        if st.unacked and st.id in self.streams:
            self.sess.conn.acknowledge_received_data(st.unacked, st.id)
            st.unacked = 0
            self._after_input()

    def stream_paused(self, st: Stream) -> bool:
        return (self.conn.paused or st.queued() > STREAM_QUEUE or st.id in self.blocked)

    def _abort_deferred(self, st: Stream) -> None:
        if st.deferred is not None:
            st.deferred.abort()
            st.deferred = None
        st.streaming = False

    def _respond(self, st: Stream, resp: Response, framed: bool = False) -> None:
        """HEADERS, then the body parts; ``framed``: a backend streams the body, length unknown."""
        st.resp = resp
        req = st.req
        status = resp.status
        headers: list[tuple[bytes, bytes]] = [(b":status", str(status).encode())]
        for k, v in resp.headers:
            low = k.lower()
            if low not in _HOP_BY_HOP:
                headers.append((low.encode("latin-1"), v.encode("latin-1", "replace")))
        if status not in _NO_LENGTH and not framed:
            headers.append((b"content-length", str(resp.body_length()).encode()))
        headers.append((b"date", http_now().encode()))
        tag = req.conf["server.tag"] if req.conf else self.rt.config["server.tag"]
        if tag:
            headers.append((b"server", tag.encode("latin-1", "replace")))
        self.rt.stats.count_response(status)
        if req.method == "HEAD" or status in _NO_LENGTH:
            resp.close()
        h2conn = self.sess.conn
        if req.method == "HEAD" or status in _NO_LENGTH:
            self._abort_deferred(st)  # no body will be sent: let the backend go
        try:
            h2conn.send_headers(st.id, headers, end_stream=not resp.parts and not st.streaming)
        except h2.exceptions.ProtocolError as exc:
            # a response for a connection the client has closed (GOAWAY): nothing to say
            if not self.conn.closed and not self.sess.closed_by_peer:
                self.rt.log("http2", f"cannot send response headers: {exc}")
            self._drop(st)
            return
        if resp.parts:
            st.parts = deque(resp.parts)
            self.ready.append(st.id)
        elif not st.streaming:
            self._finished(st)

    def resume(self) -> None:
        if self._read_paused:
            self._read_paused = False
            self.conn.resume_reading()
        self._pump()
        self._flush()
        for st in list(self.streams.values()):
            if st.deferred is not None and not self.stream_paused(st):
                st.deferred.resume()

    def _pump(self) -> None:
        """Round robin over streams with data: one frame each per pass."""
        conn = self.conn
        h2conn = self.sess.conn
        while self.ready and not conn.paused and not conn.closed:
            for _ in range(len(self.ready)):
                sid = self.ready.popleft()
                st = self.streams.get(sid)
                if st is None or not st.parts:
                    if st is not None and st.deferred is not None:
                        st.deferred.resume()
                    continue
                window = h2conn.local_flow_control_window(sid)
                if window <= 0:
                    self.blocked.add(sid)
                    continue
                # a whole frame at a time: frames of the chunk size (1 KiB on the device)
                # cost 5x the CPU on large files; h2 copies the data into its output anyway
                room = min(window, h2conn.max_outbound_frame_size)
                part = st.parts[0]
                if isinstance(part, bytes):
                    data = memoryview(part)[st.offset : st.offset + room]
                    st.offset += len(data)
                    last_of_part = st.offset >= len(part)
                    self._send(st, data, last_of_part)
                else:
                    block = os.pread(part.file.fd, min(room, part.length), part.offset)
                    if not block:
                        self.rt.log("http2", "file shrank while it was sent")
                        self._reset(st, ErrorCodes.INTERNAL_ERROR)
                        continue
                    part.offset += len(block)
                    part.length -= len(block)
                    self._send(st, memoryview(block), not part.length)
            self._flush()

    def _send(self, st: Stream, data: memoryview, last_of_part: bool) -> None:
        if last_of_part:
            st.parts.popleft()
            st.offset = 0
        end = not st.parts and not st.streaming
        self.sess.conn.send_data(st.id, data, end_stream=end)
        st.sent += len(data)
        if end:
            self._finished(st)
        elif st.parts:
            self.ready.append(st.id)
        elif st.deferred is not None:
            st.deferred.resume()  # all sent: the backend may deliver more

    def _finished(self, st: Stream) -> None:
        """The whole response is in h2's output: log it, free the stream."""
        req = st.req
        resp = st.resp
        assert resp is not None
        req.bytes_out = st.sent
        for hook in self.rt.hooks["request_done"]:
            hook(req, resp, st.sent)
        if not st.complete:
            # answered before the body ended: tell the client to stop sending
            self.sess.conn.reset_stream(st.id, ErrorCodes.NO_ERROR)
        else:
            self.sess.stream_done(st.id)
        if not req.keep_alive and self.rt.features.get("auth.http-goaway-invalid-creds"):
            self._invalid_creds()  # (mod_auth) before the drop: the last stream closes it
        self._drop(st)

    def _invalid_creds(self) -> None:
        """lighttpd's h2_send_goaway_delayed(): GOAWAY after invalid credentials, so that
        a password guesser must reconnect; a second time on this connection ends it."""
        if self._bad_creds:
            self._fail(ErrorCodes.ENHANCE_YOUR_CALM, "invalid credentials again after GOAWAY")
        else:
            self._bad_creds = True
            self._goaway()

    def _reset(self, st: Stream, code: ErrorCodes) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.sess.conn.reset_stream(st.id, code)
        self._drop(st)

    def _close_body(self, st: Stream) -> None:
        if st.body is not None:
            st.body.close()
            st.body = None
            st.req.body = None

    def _drop(self, st: Stream) -> None:
        if self.streams.pop(st.id, None) is None:
            return
        self._abort_deferred(st)
        if st.unacked:  # the connection's window must not shrink with the stream
            self.sess.conn.acknowledge_received_data(st.unacked, st.id)
            st.unacked = 0
        self.blocked.discard(st.id)
        if st.resp is not None:
            st.resp.close()
        self._close_body(st)
        st.parts.clear()
        self.rt.requests.release(st.req)
        if self.closing and not self.streams:
            self._flush()
            self.conn.close()

    # -- output, ending ------------------------------------------------------------

    def _flush(self) -> None:
        data = self.sess.data_to_send()
        if data:
            self.conn.write(data)
        if self.conn.write_buffered > OUTPUT_BOUND and not self._read_paused:
            self._read_paused = True  # a client that does not read: stop reading it
            self.conn.pause_reading()

    def _goaway(self, code: ErrorCodes = ErrorCodes.NO_ERROR, debug: bytes = b"") -> None:
        if self.sess.goaway_sent is None:
            self._flush()
            self.conn.write(self.sess.goaway(self.highest, code, debug))
        self.closing = True

    def _fail(self, code: ErrorCodes, reason: str) -> None:
        self.rt.log("http2", f"{reason} (client {self.conn.remote_addr}) -> GOAWAY {code.name}")
        self._goaway(code, reason.encode("ascii", "replace")[:128])
        self._close_all()

    def _close_all(self) -> None:
        for st in list(self.streams.values()):
            self._drop(st)
        self._flush()
        self.conn.close()

    def _update_deadline(self) -> None:
        conn = self.conn
        cfg = self.rt.config
        if not self.streams:
            conn.set_deadline(cfg["server.max-keep-alive-idle"], "idle (HTTP/2)")
        elif any(not st.complete for st in self.streams.values()):
            conn.set_deadline(cfg["server.max-read-idle"], "reading a request (HTTP/2)")
        else:
            conn.set_deadline(cfg["server.max-write-idle"], "writing a response (HTTP/2)")

    def timed_out(self) -> None:
        conn = self.conn
        if self.rt.config["debug.log-timeouts"]:
            self.rt.log("connection", f"timeout while {conn.timeout_reason} "
                        f"(client {conn.remote_addr})")
        if self.streams:
            self._close_all()
            conn.abort()
        else:
            self._goaway()
            self._close_all()

    def reloaded(self) -> None:
        """A new configuration (and maybe new h2.* settings): let the client reconnect."""
        self.graceful_close()

    def graceful_close(self) -> None:
        self._goaway()
        if not self.streams:
            self._close_all()
        else:
            self._flush()

    def close(self) -> None:
        for st in list(self.streams.values()):
            self._drop(st)
        self.rt.stats.connections_h2 -= 1

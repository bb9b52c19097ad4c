"""The application side of FastCGI: a server that runs a handler for each request.

Theory of operation:

* Each connection is served by one task that reads records.  Requests on a
  connection come one at a time (FCGI_MPXS_CONNS = 0): a BEGIN_REQUEST for
  another id while one is active is refused with CANT_MPX_CONN, other roles
  than responder with UNKNOWN_ROLE.
* When the PARAMS stream ends the handler starts, as a task of its own,
  with a ``Request``.  STDIN records feed the request's body; the
  connection task stops reading while more than ``BODY_QUEUE`` bytes wait
  for the handler, so a handler that is slow to store an upload holds back
  the web server (and, through it, the client) instead of filling memory.
* The handler returns a ``Reply``; it goes out as STDOUT records (a CGI head
  and the body) and END_REQUEST.  Without FCGI_KEEP_CONN the connection
  closes after it.
* ABORT_REQUEST, or the web server closing the connection, while the
  handler still reads the body makes ``read()`` raise ``Aborted``: the
  handler cleans up (removes a partial upload) in its usual error path.
* GET_VALUES is answered; any other management record gets UNKNOWN_TYPE.
  Anything that is not FastCGI closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from . import records as r

BODY_QUEUE = 64 * 1024  # request body bytes waiting for the handler
MAX_PARAMS = 256 * 1024  # a PARAMS stream longer than this is not a web server's
MAX_CONNS = 1024  # reported through GET_VALUES (advisory: connections are served as they come)


class Aborted(Exception):
    """The web server gave up on the request (the client went away)."""


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    after: Callable[[], None] | None = None  # run once the reply has been handed over


class Request:
    """One request: its CGI environment and its body as it arrives."""

    def __init__(self, params: dict[str, str]) -> None:
        self.params = params
        self._pieces: list[bytes] = []
        self._queued = 0
        self._ended = False
        self._aborted = False
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()

    @property
    def content_length(self) -> int:
        value = self.params.get("CONTENT_LENGTH", "")
        return int(value) if value.isdigit() else 0

    async def read(self) -> bytes:
        """The next piece of the body; b"" at its end; Aborted if the request was abandoned."""
        while not self._pieces:
            if self._aborted:
                raise Aborted("the web server abandoned the request")
            if self._ended:
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        piece = self._pieces.pop(0)
        self._queued -= len(piece)
        if self._queued <= BODY_QUEUE:
            self._taken.set()
        return piece

    async def drain(self) -> None:
        """Read and drop the rest of the body."""
        while await self.read():
            pass

    # -- the connection's side -------------------------------------------------------

    async def _feed(self, data: bytes) -> None:
        if not data:
            self._ended = True
        else:
            self._pieces.append(data)
            self._queued += len(data)
        self._arrived.set()
        while self._queued > BODY_QUEUE and not self._aborted:
            self._taken.clear()
            await self._taken.wait()

    def _abort(self) -> None:
        self._aborted = True
        self._arrived.set()
        self._taken.set()


Handler = Callable[[Request], Awaitable[Reply]]


def _head(reply: Reply) -> bytes:
    lines = [f"Status: {reply.status}"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    if reply.body:
        lines.append(f"Content-Length: {len(reply.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")


class Connection:
    def __init__(self, handler: Handler, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, log: Callable[[str], None]) -> None:
        self.handler = handler
        self.reader = reader
        self.writer = writer
        self.log = log
        self.request_id = 0  # the active request, 0: none
        self.keep = False
        self.params = bytearray()
        self.req: Request | None = None
        self.task: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        try:
            while True:
                head = await self.reader.readexactly(r.HEADER_LEN)
                if head[0] != r.VERSION:
                    raise r.FcgiError(f"record version {head[0]}")
                length = (head[4] << 8) | head[5]
                content = await self.reader.readexactly(length + head[6])
                if not await self._record(head[1], (head[2] << 8) | head[3],
                                          content[:length]):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except r.FcgiError as exc:
            self.log(f"not FastCGI from the web server: {exc}")
        finally:
            if self.req is not None:
                self.req._abort()
            if self.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
            self.writer.close()

    async def _record(self, rtype: int, rid: int, content: bytes) -> bool:
        """Handle one record; False when the connection is to close."""
        if rid == 0:
            if rtype == r.GET_VALUES:
                self._get_values(content)
            else:
                self.writer.write(r.unknown_type(rtype))
            return True
        if rtype == r.BEGIN_REQUEST:
            begin = r.parse_begin(content)
            if self.request_id:
                self.writer.write(r.end_request(rid, 0, r.CANT_MPX_CONN))
            elif begin.role != r.RESPONDER:
                self.writer.write(r.end_request(rid, 0, r.UNKNOWN_ROLE))
                return begin.keep_conn
            else:
                self.request_id, self.keep = rid, begin.keep_conn
                self.params = bytearray()
            return True
        if rid != self.request_id:
            return True  # a record of a request that is over: ignored
        if rtype == r.PARAMS:
            if content:
                self.params += content
                if len(self.params) > MAX_PARAMS:
                    raise r.FcgiError(f"PARAMS longer than {MAX_PARAMS} bytes")
            else:
                params = {k.decode("latin-1"): v.decode("utf-8", "surrogateescape")
                          for k, v in r.decode_pairs(bytes(self.params))}
                self.params = bytearray()
                self.req = Request(params)
                self.task = asyncio.get_running_loop().create_task(self._run(self.req, rid))
        elif rtype == r.STDIN:
            if self.req is None:
                raise r.FcgiError("STDIN before the end of PARAMS")
            await self.req._feed(content)
        elif rtype == r.ABORT_REQUEST:
            if self.req is not None:
                self.req._abort()
            else:
                self._end(rid)
        elif rtype != r.DATA:
            raise r.FcgiError(f"record type {rtype} from a web server")
        return True

    async def _run(self, req: Request, rid: int) -> None:
        try:
            reply = await self.handler(req)
        except Aborted:
            reply = None
        except Exception as exc:  # a bug must not take the connection down silently
            import traceback

            self.log(f"handler failed: {exc!r}\n{traceback.format_exc()}")
            reply = Reply(500, [("Content-Type", "application/json")],
                          b'{"error":"internal error","status":500}')
        if reply is not None:
            self.writer.write(b"".join(r.encode_stream(r.STDOUT, rid, _head(reply) +
                                                       reply.body)))
        self._end(rid)
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()
        if reply is not None and reply.after is not None:
            reply.after()
        if not self.keep:
            self.writer.close()

    def _end(self, rid: int) -> None:
        self.writer.write(r.encode(r.STDOUT, rid) + r.end_request(rid))
        if self.req is not None:
            self.req._abort()  # a body nobody reads any more must not hold the reader
        self.request_id = 0
        self.req = None
        self.task = None

    def _get_values(self, content: bytes) -> None:
        known = {b"FCGI_MAX_CONNS": str(MAX_CONNS).encode(),
                 b"FCGI_MAX_REQS": str(MAX_CONNS).encode(), b"FCGI_MPXS_CONNS": b"0"}
        asked = [name for name, _ in r.decode_pairs(content)]
        answer = r.encode_pairs((n, known[n]) for n in asked if n in known)
        self.writer.write(r.encode(r.GET_VALUES_RESULT, 0, answer))


def listening_stdin() -> socket.socket | None:
    """fd 0 when it is a listening socket (the FastCGI way of starting an application)."""
    try:
        sock = socket.socket(fileno=os.dup(0))
    except OSError:
        return None
    try:
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return sock
    except OSError:
        pass
    sock.close()
    return None


async def serve(sock: socket.socket, handler: Handler, log: Callable[[str], None],
                backlog: int = 1024) -> None:
    """Serve FastCGI on a listening socket until cancelled (asyncio listens again, with
    ``backlog``: its default of 100 is too few for a burst of HTTP/2 streams)."""

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # at shutdown the connection ends quietly (Python 3.11's streams log a cancelled
        # connection task as an error)
        with contextlib.suppress(asyncio.CancelledError):
            await Connection(handler, reader, writer, log).serve()

    if sock.family == socket.AF_UNIX:
        server = await asyncio.start_unix_server(connected, sock=sock, limit=BODY_QUEUE,
                                                 backlog=backlog)
    else:
        server = await asyncio.start_server(connected, sock=sock, limit=BODY_QUEUE,
                                            backlog=backlog)
    async with server:
        await server.serve_forever()

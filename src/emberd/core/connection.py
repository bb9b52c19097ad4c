"""A client connection: asyncio transport glue, pooled buffers, timeouts.

Theory of operation:

* Receiving.  The connection is an ``asyncio.BufferedProtocol``: the event
  loop asks ``get_buffer()`` for memory to ``recv_into`` and gets a chunk
  from the pool; ``buffer_updated()`` hands the bytes to the protocol
  (HTTP/1.1, later HTTP/2), which copies what it keeps, and the chunk goes
  back to the pool.  An idle connection holds no buffer at all.

* Choosing the protocol.  The first bytes decide: the HTTP/2 client
  preface means HTTP/2 (prior knowledge), anything else HTTP/1.x.  The
  decision waits while the bytes so far are a prefix of the preface, so a
  preface split across reads is recognised; the server picks the driver.

* Sending.  Write buffer limits are (0, 0): the transport reports
  ``pause_writing`` as soon as anything stays queued and ``resume_writing``
  when its buffer is empty again.  Producers only produce while not paused,
  so at most one write's leftover is queued per connection.  Chunks passed
  to ``write()`` are recycled only once the transport no longer holds them:
  Python >= 3.12 queues the caller's buffer instead of copying it, and a
  chunk reused too early would corrupt what is still to be sent.  Bytes the
  transport has finished with are ``written - get_write_buffer_size()``;
  chunks that end before that point are released.

* Timeouts.  Each connection has a deadline for its current state (reading
  a request, writing a response, idle between requests); the server checks
  deadlines once a second, as lighttpd does, instead of arming a timer per
  event.

* TLS.  On a listener with ``ssl.engine`` the connection puts a TLS
  channel (``emberd.tls.channel``, sans-IO) between the socket and the
  driver.  Reads are capped at 16 KiB of ciphertext (the library's input
  ring holds 32 KiB); each read is given to the channel, and once the
  handshake is over the same pooled chunk receives the plaintext, piece by
  piece, for the driver -- so TLS adds no buffer of emberd's own.  ALPN
  picks the driver (``h2`` HTTP/2, anything else HTTP/1.1) where plain
  TCP looks at the first bytes.  Writes are encrypted at once into records
  of at most 16 KiB, so a chunk goes back to the pool as soon as it is
  written, and sendfile(2) is never used.  ``ssl.handshake-timeout``
  bounds the handshake; a failure ends the connection with a log line
  and, where the library produced one, an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

from .chunk import Chunk

if TYPE_CHECKING:
    from ..http.message import Request
    from ..tls.channel import TlsChannel
    from ..tls.endpoint import Endpoint
    from .server import Server

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# GOAWAY, stream 0, last stream 0, PROTOCOL_ERROR (RFC 9113 6.8), without importing h2
GOAWAY_PROTOCOL_ERROR = bytes.fromhex("000008070000000000" "00000000" "00000001")
TLS_READ = 16 * 1024  # ciphertext read at once on TLS (emberd.tls.channel.FEED_MAX)
# the answer to plain HTTP on a TLS port (nginx answers the same way)
PLAIN_HTTP_ON_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n"
                     b"Connection: close\r\n\r\nThis port speaks HTTPS.\n")



class Reading:
    """Pausing and resuming the reading of a protocol's transport (once it is not closed)."""

    transport: asyncio.Transport | None
    closed: bool

    def pause_reading(self) -> None:
        self._set_reading(False)

    def resume_reading(self) -> None:
        self._set_reading(True)

    def _set_reading(self, on: bool) -> None:
        transport = self.transport
        # asyncio refuses to pause a paused transport
        if not self.closed and transport is not None and transport.is_reading() != on:
            if on:
                transport.resume_reading()
            else:
                transport.pause_reading()

class Driver(Protocol):
    """What a protocol implementation offers to its connection."""

    def data_received(self, data: memoryview) -> None: ...
    def eof_received(self) -> None: ...
    def resume(self) -> None: ...
    def graceful_close(self) -> None: ...
    def reloaded(self) -> None: ...
    def timed_out(self) -> None: ...
    def close(self) -> None: ...


class Connection(Reading, asyncio.BufferedProtocol):
    def __init__(self, server: Server, token: str, tls: Endpoint | None = None) -> None:
        self.server = server
        self.token = token  # the listener, as $SERVER["socket"] compares it
        self.tls = tls is not None
        self.endpoint = tls
        self.channel: TlsChannel | None = None
        self._peer_eof = False  # TLS: the driver was told the client has finished
        self.transport: asyncio.Transport | None = None
        self.driver: Driver | None = None
        self.remote_addr = ""
        self.remote_port = 0
        self.local_addr = ""
        self.local_port = 0
        self._chunk: Chunk | None = None
        self._first = bytearray()  # bytes seen before the protocol is known
        self._flight: deque[tuple[Chunk, int]] = deque()  # (chunk, written mark at its end)
        self._written = 0
        self.paused = False
        self.closed = False
        self.sendfile_fd = -1  # the socket, for sendfile(2) on plain TCP
        self.deadline = 0.0
        self.timeout_reason = ""

    # -- asyncio protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=0, low=0)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if isinstance(peer, tuple):
            self.remote_addr, self.remote_port = peer[0], peer[1]
        elif peer:
            self.remote_addr = str(peer)
        if isinstance(sock, tuple):
            self.local_addr, self.local_port = sock[0], sock[1]
        raw = transport.get_extra_info("socket")
        if raw is not None and raw.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if raw is not None and not self.tls:
            self.sendfile_fd = raw.fileno()
        rt = self.server.runtime
        if self.endpoint is not None:
            from ..tls.channel import TlsChannel  # pure Python: no TLS library yet

            self.channel = TlsChannel(self.endpoint, self.remote_addr)
            self.set_deadline(self.endpoint.handshake_timeout, "the TLS handshake")
        else:
            self.set_deadline(rt.config["server.max-read-idle"], "reading the first request")
        self.server.connection_opened(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._chunk is None:
            self._chunk = self.server.shared.pool.acquire()
        if self.channel is not None:
            return self._chunk.mem[:TLS_READ]
        return self._chunk.mem

    def buffer_updated(self, nbytes: int) -> None:
        chunk = self._chunk
        assert chunk is not None
        self._chunk = None
        self.server.shared.stats.bytes_in += nbytes
        try:
            if self.channel is not None:
                self._tls_received(chunk.mem, nbytes)
                return
            data = chunk.mem[:nbytes]
            if self.driver is not None:
                self.driver.data_received(data)
            else:
                self._choose_protocol(data)
        finally:
            self.server.shared.pool.release(chunk)

    def eof_received(self) -> bool:
        if self.driver is None:
            if self.channel is not None and self.channel.opening and self.channel.started:
                self.server.runtime.log("tls", f"connection closed during the TLS handshake "
                                        f"(client {self.remote_addr})")
            self.close()
            return False
        if not self._peer_eof:
            self._peer_eof = self.channel is not None
            self.driver.eof_received()
        return True  # keep the write side open: answer after a half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.sendfile_fd = -1
        self.channel = None
        if self.driver is not None:
            self.driver.close()
            self.driver = None
        pool = self.server.shared.pool
        if self._chunk is not None:
            pool.release(self._chunk)
            self._chunk = None
        while self._flight:
            pool.release(self._flight.popleft()[0])
        self.server.connection_closed(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._reclaim()
        self.touch_write()
        if self.driver is not None and not self.closed:
            self.driver.resume()

    # -- protocol choice -----------------------------------------------------

    def _choose_protocol(self, data: memoryview) -> None:
        first = self._first
        first += data
        prefix = bytes(first[: len(PREFACE)])
        if PREFACE.startswith(prefix) and len(prefix) < len(PREFACE):
            return  # could still be the HTTP/2 preface
        if (prefix != PREFACE and prefix.startswith(PREFACE[:16])
                and self.server.runtime.features["server.h2proto"]):
            # an HTTP/2 client whose preface is broken: not an HTTP/1.1 request
            self.server.runtime.log("http2", f"invalid connection preface from "
                                    f"{self.remote_addr} -> GOAWAY PROTOCOL_ERROR")
            self.write(GOAWAY_PROTOCOL_ERROR)
            self.close()
            return
        self.driver = driver = self.server.driver_for(self, prefix == PREFACE)
        self._first = bytearray()
        driver.data_received(memoryview(first))

    # -- TLS -------------------------------------------------------------------

    def annotate(self, req: Request) -> None:
        """Give a request what the TLS handshake established (drivers call this for each
        request on a TLS connection): SSL_PROTOCOL, SSL_CIPHER, SSL_TLS_SNI, and with
        ssl.verifyclient.* the SSL_CLIENT_* variables and the certificate's user."""
        channel = self.channel
        if channel is not None and channel.info is not None:
            channel.info.annotate(req)

    def _tls_received(self, mem: memoryview, nbytes: int) -> None:
        """Ciphertext in ``mem[:nbytes]``; ``mem`` then receives the plaintext."""
        from ..tls.errors import TlsClosed, TlsFailure

        channel = self.channel
        assert channel is not None
        try:
            channel.receive(mem[:nbytes])
            if channel.opening:
                done = channel.handshake()
                self._tls_send(channel.take_output())
                if not done or self.closed:
                    return
                self._tls_opened()
            while not self.closed and self.driver is not None:
                n = channel.read_into(mem)
                if not n:
                    break
                self.driver.data_received(mem[:n])
        except TlsClosed:
            if self.driver is not None and not self._peer_eof:
                self._peer_eof = True
                self.driver.eof_received()
        except TlsFailure as exc:
            self._tls_failed(exc)

    def _tls_opened(self) -> None:
        """The handshake is over: ALPN chooses the driver (``h2``: HTTP/2)."""
        channel = self.channel
        assert channel is not None
        rt = self.server.runtime
        self.set_deadline(rt.config["server.max-read-idle"], "reading the first request")
        self.driver = self.server.driver_for(self, channel.alpn == "h2")

    def _tls_failed(self, exc: Exception) -> None:
        from ..tls.errors import NotTls

        self.server.runtime.log("tls", f"{exc} (client {self.remote_addr}); closing")
        if isinstance(exc, NotTls) and exc.http and self.transport is not None:
            self._written += len(PLAIN_HTTP_ON_TLS)
            self.transport.write(PLAIN_HTTP_ON_TLS)
        elif self.channel is not None:
            self._tls_send(self.channel.take_output())  # the alert, if the library made one
        self.close()

    def _tls_send(self, records: list[bytes]) -> None:
        """Write ciphertext (it is never reused: the transport may keep it)."""
        if not records or self.transport is None:
            return
        n = sum(len(r) for r in records)
        self._written += n
        self.server.shared.stats.bytes_out += n
        if len(records) == 1:
            self.transport.write(records[0])
        else:
            self.transport.writelines(records)

    # -- writing ---------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Write bytes the caller will not reuse (the transport may keep them)."""
        if self.closed or self.transport is None:
            return
        if self.channel is not None:
            from ..tls.errors import TlsFailure

            try:
                self._tls_send(self.channel.encrypt(data))
            except TlsFailure as exc:
                self.server.runtime.log("tls", f"{exc} (client {self.remote_addr}); closing")
                self.abort()
            return
        self._written += len(data)
        self.server.shared.stats.bytes_out += len(data)
        self.transport.write(data)

    def count_out(self, n: int) -> None:
        """Bytes sent past the transport (sendfile)."""
        self.server.shared.stats.bytes_out += n
        self.touch_write()

    def write_chunk(self, chunk: Chunk) -> None:
        """Write a chunk's data; the chunk returns to the pool once sent."""
        if self.closed or self.transport is None:
            self.server.shared.pool.release(chunk)
            return
        if self.channel is not None:  # encrypted at once: the chunk is free again
            try:
                self.write(chunk.data())
            finally:
                self.server.shared.pool.release(chunk)
            return
        n = len(chunk)
        self._written += n
        self.server.shared.stats.bytes_out += n
        self._flight.append((chunk, self._written))
        self.transport.write(chunk.data())
        self._reclaim()

    def _reclaim(self) -> None:
        """Release written chunks the transport no longer holds."""
        if not self._flight or self.transport is None:
            return
        done = self._written - self.transport.get_write_buffer_size()
        pool = self.server.shared.pool
        flight = self._flight
        while flight and flight[0][1] <= done:
            pool.release(flight.popleft()[0])

    @property
    def write_buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport else 0

    # -- state, timeouts ---------------------------------------------------------

    def set_deadline(self, seconds: int, reason: str) -> None:
        self.deadline = time.monotonic() + seconds if seconds else 0.0
        self.timeout_reason = reason

    def touch_write(self) -> None:
        if self.timeout_reason.startswith("writing"):
            rt = self.server.runtime
            self.set_deadline(rt.config["server.max-write-idle"], self.timeout_reason)

    def check_deadline(self, now: float) -> None:
        if self.deadline and now > self.deadline and not self.closed:
            if self.driver is not None:
                self.driver.timed_out()
            else:
                if self.channel is not None:
                    self.server.runtime.log("tls", f"timeout during {self.timeout_reason} "
                                            f"(client {self.remote_addr}); closing")
                self.abort()

    def close(self) -> None:
        """Close after what is queued has been sent (with TLS: after close_notify)."""
        if self.transport is not None and not self.closed:
            if self.channel is not None:
                self._tls_send(self.channel.close_notify())
            self.closed = True
            self.sendfile_fd = -1
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is queued."""
        if self.transport is not None:
            self.closed = True
            self.sendfile_fd = -1
            self.transport.abort()

"""A connection's TLS channel: ciphertext in and out, plaintext for the HTTP driver.

Theory of operation.  The channel is sans-IO: the connection hands it the
bytes it received and writes the bytes it returns; it never touches a
socket or the event loop.  A channel goes through four phases::

    HELLO ──ClientHello complete──> HANDSHAKE ──handshake done──> OPEN ──> CLOSED
      │ not TLS, plain HTTP            │ alert, timeout                 │ close_notify,
      └────────────> CLOSED <──────────┘                                │ bad record
                                       CLOSED <─────────────────────────┘

* HELLO: nothing of the TLS library exists yet.  Every byte goes through
  the record scanner (``records.py``) and the ClientHello reader
  (``hello.py``), and is held (at most one ClientHello, 16 KiB).  Plain
  HTTP, garbage or a truncated hello end here, having cost no more than
  that.  Once the ClientHello is complete, the endpoint picks the context
  for the name it asks for (SNI) and the library session is created; the
  held bytes become its first input.
* HANDSHAKE: ``handshake()`` runs the library until it needs more input;
  the flights it produces are collected by ``take_output()``.  The
  connection enforces ``ssl.handshake-timeout`` meanwhile.
* OPEN: ``read_into()`` decrypts into the caller's (pooled) buffer, one
  call per piece, until nothing is left; ``encrypt()`` turns plaintext into
  records of at most 16 KiB.  A handshake record now is renegotiation, and
  ends the channel.
* CLOSED: ``close_notify()`` returns the alert to send; errors end here too.

Input reaches the library at most ``FEED_MAX`` bytes at a time, and only
after what it had was consumed: Mbed TLS' input ring holds 32 KiB, so a
bigger read (a large ``server.chunkqueue-chunk-sz``, or the held
ClientHello plus what followed it) waits in a backlog that ``handshake()``
and ``read_into()`` feed from.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from . import identity
from .errors import TlsFailure
from .hello import VERSION_NAMES, ClientHello, HelloReader
from .records import RecordError, RecordScanner
from .settings import VERSIONS, version_number

if TYPE_CHECKING:
    from .endpoint import Context, Endpoint, Session
    from .identity import TlsInfo

FEED_MAX = 16 * 1024  # ciphertext given to the library at once (its ring holds 32 KiB)
RECORD_MAX = 16 * 1024  # plaintext per record (RFC 8446 5.1: 2^14)


class Phase(Enum):
    HELLO = "hello"
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSED = "closed"


class TlsChannel:
    __slots__ = ("_backlog", "_context", "_endpoint", "_held", "_reader", "_remote",
                 "_scanner", "_session", "alpn", "hello", "info", "phase")

    def __init__(self, endpoint: Endpoint, remote_addr: str) -> None:
        self._endpoint = endpoint
        self._remote = remote_addr
        self._scanner = RecordScanner()
        self._reader: HelloReader | None = HelloReader()
        self._held = bytearray()
        self._backlog = b""
        self._session: Session | None = None
        self._context: Context | None = None
        self.phase = Phase.HELLO
        self.hello: ClientHello | None = None
        self.alpn: str | None = None
        self.info: TlsInfo | None = None

    # -- input ------------------------------------------------------------------

    def receive(self, data: memoryview | bytes) -> None:
        """Ciphertext from the peer; the caller may reuse ``data`` afterwards."""
        hello = None
        try:
            if self._reader is not None:  # HELLO: it tells plain HTTP from garbage
                hello = self._reader.feed(data)
            self._scanner.scan(data)
        except RecordError as exc:
            self.phase = Phase.CLOSED
            raise TlsFailure(str(exc)) from None
        except TlsFailure:
            self.phase = Phase.CLOSED
            raise
        if self.phase is Phase.HELLO:
            self._held += data
            if hello is not None:
                self._start(hello)
            return
        session = self._session
        if session is None or self.phase is Phase.CLOSED:
            return
        if self._backlog or len(data) > FEED_MAX:
            self._backlog += bytes(data)
        else:
            session.receive(data)

    def _start(self, hello: ClientHello) -> None:
        self.hello = hello
        self._reader = None
        self._context = ctx = self._endpoint.context_for(hello.server_name, self._remote)
        self._session = ctx.session()
        self._backlog, self._held = bytes(self._held), bytearray()
        self.phase = Phase.HANDSHAKE

    def _pull(self) -> bool:
        """Feed the next piece of the backlog; False if there is none."""
        if not self._backlog or self._session is None:
            return False
        piece, self._backlog = self._backlog[:FEED_MAX], self._backlog[FEED_MAX:]
        self._session.receive(piece)
        return True

    # -- handshake --------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the client sent anything (a bare TCP connect is a probe, not a handshake)."""
        return bool(self._held) or self._session is not None

    @property
    def opening(self) -> bool:
        return self.phase is Phase.HELLO or self.phase is Phase.HANDSHAKE

    def handshake(self) -> bool:
        """Run the handshake on what has arrived; True once it is complete."""
        session = self._session
        if self.phase is Phase.OPEN:
            return True
        if session is None:
            return False
        try:
            while not session.handshake():
                if not self._pull():
                    return False
            self._opened(session)
        except TlsFailure as exc:
            self.phase = Phase.CLOSED
            raise TlsFailure(self._explain(str(exc))) from None
        return True

    def _opened(self, session: Session) -> None:
        ctx = self._context
        assert ctx is not None
        self.phase = Phase.OPEN
        self._scanner.handshake_over = True
        version = session.version()
        self.alpn = session.alpn()
        if self.alpn == "h2" and version in VERSIONS and \
                version_number(version) < version_number("TLSv1.2"):
            raise TlsFailure(f"ALPN h2 over {version}: HTTP/2 needs TLS 1.2 or later "
                             "(RFC 9113 9.2)")
        self.info = identity.describe(
            ctx.settings, protocol=version, cipher=session.cipher(),
            server_name=self.hello.server_name if self.hello else None,
            peer_der=session.peer_certificate(), verified=session.peer_verified(),
            authorities=ctx.authorities, chain=session.verified_chain())

    def _explain(self, reason: str) -> str:
        """A failed handshake's reason, with what the ClientHello offered when that explains it."""
        hello, ctx = self.hello, self._context
        if hello is None or ctx is None:
            return reason
        lowest = ctx.settings.min_version
        if lowest in VERSIONS and hello.max_version < version_number(lowest):
            return (f"{reason}: the client offers {hello.version_name} at most, the minimum is "
                    f"{VERSION_NAMES.get(version_number(lowest), lowest)}")
        return reason

    # -- data ----------------------------------------------------------------------------

    def read_into(self, view: memoryview) -> int:
        """Plaintext into ``view``; 0 when nothing more can be decrypted now.

        Raises TlsClosed at the peer's close_notify, TlsFailure on a bad record.
        """
        session = self._session
        if session is None or self.phase is not Phase.OPEN:
            return 0
        try:
            while True:
                n = session.read_into(view)
                if n:
                    return n
                if not self._pull():
                    return 0
        except Exception:
            self.phase = Phase.CLOSED
            raise

    def encrypt(self, data: memoryview | bytes) -> list[bytes]:
        """The records carrying ``data`` (TlsFailure if the session cannot send)."""
        session = self._session
        if session is None or self.phase is not Phase.OPEN:
            raise TlsFailure("TLS session not open")
        view = memoryview(data)
        for start in range(0, len(view), RECORD_MAX):
            session.write(view[start:start + RECORD_MAX])
        return session.take_output()

    def take_output(self) -> list[bytes]:
        """Ciphertext waiting to go out (handshake flights, alerts)."""
        return self._session.take_output() if self._session is not None else []

    def close_notify(self) -> list[bytes]:
        """The close_notify alert (nothing unless the channel is open)."""
        session = self._session
        if session is None or self.phase is not Phase.OPEN:
            self.phase = Phase.CLOSED
            return []
        self.phase = Phase.CLOSED
        session.close_notify()
        return session.take_output()

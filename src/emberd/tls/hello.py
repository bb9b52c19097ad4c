"""The client's first flight: is it TLS, and which host name does it ask for?

Theory of operation: the certificate a server presents depends on the host
name the client sends in the ClientHello's server_name extension (SNI,
RFC 6066 3).  python-mbedtls 2.10 does not implement its ``sni_callback``
(setting one raises NotImplementedError), so emberd reads the ClientHello
itself, before any TLS library object exists, and then creates the session
from the context configured for that name.  The same path serves the
stdlib backend, so both choose certificates the same way.

``HelloReader.feed()`` collects the handshake bytes of the first records
(a ClientHello may span records) up to ``MAX_HELLO`` and returns the parsed
``ClientHello`` once it is complete.  It also tells plain HTTP sent to a
TLS port apart from other garbage, so that the former gets an answer a
person can read.  The bytes themselves are kept by the caller and handed to
the TLS library unchanged.

Parsed (RFC 8446 4.1.2; RFC 5246 7.4.1.2 is the same up to extensions)::

    struct {
        ProtocolVersion legacy_version;
        Random random;                              /* 32 bytes */
        opaque legacy_session_id<0..32>;
        CipherSuite cipher_suites<2..2^16-2>;
        opaque legacy_compression_methods<1..2^8-1>;
        Extension extensions<8..2^16-1>;            /* absent in old clients */
    } ClientHello;

Of the extensions only server_name (0), application_layer_protocol_negotiation
(16) and supported_versions (43) are read.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import NotTls, TlsFailure
from .records import HANDSHAKE, MAX_RECORD

# The largest ClientHello accepted.  Real ones are 200 bytes to 2 KiB (a
# post-quantum key share adds about 1.2 KiB); 16 KiB is one full record.
MAX_HELLO = 2**14

CLIENT_HELLO = 1
EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 0, 16, 43

VERSION_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
                 0x0304: "TLS 1.3"}

# What an HTTP/1.x request line starts with (lighttpd's methods are longer; these suffice).
_HTTP_STARTS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ",
                b"CONNECT ", b"TRACE ", b"PRI * ", b"PROPFIND ", b"QUERY ")


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None  # lower case, as sent; None without SNI
    max_version: int  # the highest version offered (0x0303 is TLS 1.2)
    alpn: tuple[str, ...]  # protocols offered, in the client's order

    @property
    def version_name(self) -> str:
        return VERSION_NAMES.get(self.max_version, f"0x{self.max_version:04x}")


class HelloReader:
    """Accumulates the first handshake message; ``feed()`` returns it once complete."""

    __slots__ = ("_first", "_msg", "_need", "_record")

    def __init__(self) -> None:
        self._first = True  # the first header decides whether this is TLS at all
        self._record = bytearray()  # the current record: header, then fragment bytes
        self._msg = bytearray()  # handshake bytes gathered from the records so far
        self._need = 0  # fragment bytes of the current record still to come

    def feed(self, data: memoryview | bytes) -> ClientHello | None:
        pos, end = 0, len(data)
        rec = self._record
        while pos < end:
            if len(rec) < 5:
                take = min(5 - len(rec), end - pos)
                rec += data[pos:pos + take]
                pos += take
                if len(rec) < 5:
                    break
                self._need = self._check_header(rec)
                continue
            take = min(self._need, end - pos)
            self._msg += data[pos:pos + take]
            pos += take
            self._need -= take
            if len(self._msg) > MAX_HELLO + 4:
                raise TlsFailure(f"ClientHello larger than {MAX_HELLO} bytes")
            if not self._need:
                del rec[:]
                hello = self._complete()
                if hello is not None:
                    return hello
        return None

    def _check_header(self, rec: bytearray) -> int:
        first = bytes(rec[:5])
        if self._first:
            self._first = False
            if first[0] != HANDSHAKE:
                if any(first.startswith(s[:5]) for s in _HTTP_STARTS):
                    raise NotTls("plain HTTP sent to the TLS port", http=True)
                if first[0] & 0x80:
                    raise NotTls("SSLv2-style ClientHello (no TLS 1.2 client sends one)")
                raise NotTls(f"not a TLS handshake (first byte 0x{first[0]:02x})")
        if first[0] != HANDSHAKE:
            raise TlsFailure(f"record of type {first[0]} inside the ClientHello")
        if first[1] != 3:
            raise NotTls(f"not a TLS record (version byte {first[1]})")
        length = (first[3] << 8) | first[4]
        if not 0 < length <= MAX_RECORD:
            raise TlsFailure(f"invalid TLS record length {length} in the ClientHello")
        return length

    def _complete(self) -> ClientHello | None:
        msg = self._msg
        if len(msg) < 4:
            return None
        if msg[0] != CLIENT_HELLO:
            raise TlsFailure(f"handshake message {msg[0]} where a ClientHello belongs")
        length = (msg[1] << 16) | (msg[2] << 8) | msg[3]
        if length > MAX_HELLO:
            raise TlsFailure(f"ClientHello of {length} bytes (at most {MAX_HELLO} accepted)")
        if len(msg) < 4 + length:
            return None
        return parse_client_hello(bytes(msg[4:4 + length]))


def parse_client_hello(body: bytes) -> ClientHello:
    """The fields emberd needs from a ClientHello body (without its 4-byte header)."""
    try:
        return _parse(memoryview(body))
    except IndexError:
        raise TlsFailure("truncated ClientHello") from None


def _u16(b: memoryview, i: int) -> int:
    return (b[i] << 8) | b[i + 1]


def _parse(b: memoryview) -> ClientHello:
    legacy = _u16(b, 0)
    i = 2 + 32
    i += 1 + b[i]  # session id
    i += 2 + _u16(b, i)  # cipher suites
    i += 1 + b[i]  # compression methods
    name: str | None = None
    alpn: tuple[str, ...] = ()
    versions: list[int] = []
    if i + 2 <= len(b):
        end = i + 2 + _u16(b, i)
        if end > len(b):
            raise IndexError
        i += 2
        while i + 4 <= end:
            etype, elen = _u16(b, i), _u16(b, i + 2)
            data = b[i + 4:i + 4 + elen]
            if len(data) != elen:
                raise IndexError
            if etype == EXT_SERVER_NAME:
                name = _server_name(data)
            elif etype == EXT_ALPN:
                alpn = _alpn(data)
            elif etype == EXT_SUPPORTED_VERSIONS and elen:
                versions = [_u16(data, j) for j in range(1, data[0], 2)]
            i += 4 + elen
    # GREASE values (RFC 8701) look like 0x?a?a and mean nothing
    real = [v for v in versions if (v & 0x0F0F) != 0x0A0A]
    return ClientHello(name, max(real) if real else legacy, alpn)


def _server_name(data: memoryview) -> str | None:
    # ServerNameList: uint16 length, then (uint8 type, uint16 length, name)*
    i, end = 2, 2 + _u16(data, 0)
    while i + 3 <= end:
        ntype, nlen = data[i], _u16(data, i + 1)
        raw = bytes(data[i + 3:i + 3 + nlen])
        if ntype == 0:
            try:
                text = raw.decode("ascii").lower().rstrip(".")
            except UnicodeDecodeError:
                return None
            ok = text and all(c.isalnum() or c in "-._" for c in text)
            return text if ok else None
        i += 3 + nlen
    return None


def _alpn(data: memoryview) -> tuple[str, ...]:
    out: list[str] = []
    i, end = 2, 2 + _u16(data, 0)
    while i < end:
        n = data[i]
        out.append(bytes(data[i + 1:i + 1 + n]).decode("latin-1"))
        i += 1 + n
    return tuple(out)

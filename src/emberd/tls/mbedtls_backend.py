"""The Mbed TLS backend: python-mbedtls' ``TLSWrappedBuffer``, driven sans-IO.

Theory of operation.  A ``TLSWrappedBuffer`` owns two 32 KiB rings: the
input ring takes ciphertext (``receive_from_network``), the output ring
receives what Mbed TLS writes (``peek_outgoing``/``consume_outgoing``).
Mbed TLS itself has a 16 KiB record buffer each way.  Observed behaviour
shapes the rules this module keeps:

* ``receive_from_network`` raises BufferError when the input ring would
  overflow: the channel feeds at most ``FEED_MAX`` bytes at a time and
  drains (handshake steps or reads until WantReadError, which Mbed TLS only
  reports once the ring is empty) before feeding more.
* ``do_handshake()`` performs one step and raises WantWriteError whenever
  output is waiting and WantReadError when input is missing -- or when the
  output ring is full (the BIO callback answers a full ring with WANT_READ),
  so a WantReadError after which output was drained is retried.  The
  handshake is over when ``_handshake_state`` is HANDSHAKE_OVER (a further
  ``do_handshake()`` raises ValueError).
* ``read(n)`` drops decrypted bytes when a partial record follows; only
  ``readinto()`` is used.
* ``write()`` of more than the output ring holds fails part-way with
  unknown progress: writes are at most one record (16 KiB), and the ring is
  drained after each, so a record always fits.
* Every fatal error resets the Mbed TLS session (python-mbedtls calls
  ``mbedtls_ssl_session_reset``): nothing can be written afterwards, so a
  failure ends the connection.
* python-mbedtls cannot configure ``MBEDTLS_SSL_VERIFY_NONE`` on a server
  (``validate_certificates=False`` means VERIFY_OPTIONAL): the server always
  sends a CertificateRequest.  Clients without a certificate answer with an
  empty one; without ``ssl.verifyclient.activate`` whatever a client sends
  is ignored.
* Renegotiation is disabled by python-mbedtls
  (``mbedtls_ssl_conf_renegotiation(0)``); the record scanner ends such
  attempts before Mbed TLS sees them.

Imported only when a listener uses this backend: python-mbedtls maps its
libraries (the PyPI wheel: about 1 MB of Mbed TLS in three shared objects)
and never OpenSSL.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mbedtls import exceptions as mbed_exc
from mbedtls import pk, tls, x509

from .ciphers import SUITES, Suite
from .credentials import Credentials
from .errors import TlsClosed, TlsFailure, TlsSetupError
from .settings import TlsSettings

NAME = "mbedtls"
RING = 32 * 1024  # each TLSWrappedBuffer ring (python-mbedtls' TLS_BUFFER_CAPACITY)
FEED_MAX = 16 * 1024  # ciphertext handed to the input ring at once
RECORD_MAX = 16 * 1024  # plaintext per write(): one TLS record

_VERSIONS = {"TLSv1": tls.TLSVersion.TLSv1, "TLSv1.1": tls.TLSVersion.TLSv1_1,
             "TLSv1.2": tls.TLSVersion.TLSv1_2}
_VERSION_TEXT = {tls.TLSVersion.TLSv1: "TLSv1", tls.TLSVersion.TLSv1_1: "TLSv1.1",
                 tls.TLSVersion.TLSv1_2: "TLSv1.2", tls.TLSVersion.TLSv1_3: "TLSv1.3"}
_ALPN = {"h2": tls.NextProtocol.H2, "http/1.1": tls.NextProtocol.HTTP1}
# python-mbedtls' own handshake state names are in tls.HandshakeStep
_OVER: Any = tls.HandshakeStep.HANDSHAKE_OVER  # (the stubs type the members as int)
_OPENSSL_NAMES = {s.mbedtls: s.openssl for s in SUITES}


def version() -> str:
    from mbedtls import version as v

    return str(v.version)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, mbed_exc.TLSError):
        msg = exc.msg or str(exc)
        err = _code(exc)
        return f"{msg} (Mbed TLS error -0x{err:04X})" if err else msg
    return str(exc) or type(exc).__name__


def _code(exc: mbed_exc.TLSError) -> int:
    return int(getattr(exc, "err", 0) or 0)


def _private_key(pem: bytes) -> Any:
    key = pk.RSA.from_buffer(pem)
    if key.name == b"EC":
        return pk.ECC.from_buffer(pem)
    return key


class MbedtlsContext:
    """One certificate set's ServerContext; ``session()`` starts a connection's session."""

    backend = NAME

    def __init__(self, settings: TlsSettings, creds: Credentials) -> None:
        self.settings = settings
        self.authorities = creds.authorities
        problems: list[str] = []
        try:
            chain = tuple(x509.CRT.from_DER(c.der) for c in creds.chain)
        except mbed_exc.TLSError as exc:
            raise TlsSetupError([f"ssl.pemfile {settings.pemfile}: {_reason(exc)}"]) from None
        try:
            key = _private_key(creds.key_pem)
        except (mbed_exc.TLSError, ValueError) as exc:
            raise TlsSetupError([f"private key in {creds.key_file}: {_reason(exc)}"]) from None
        if not pk.check_pair(chain[0].subject_public_key, key):
            problems.append(f"the private key in {creds.key_file} does not match the "
                            f"certificate in {settings.pemfile} ({creds.chain[0].subject_text()})")
        for i in range(len(chain) - 1):
            try:
                ok = chain[i + 1].verify(chain[i])
            except (mbed_exc.TLSError, ValueError, TypeError):
                continue  # a signature algorithm python-mbedtls cannot check here
            if not ok:
                problems.append(f"ssl.pemfile {settings.pemfile}: bad chain: the signature of "
                                f"certificate {i + 1} does not verify with certificate {i + 2}")
        suites = self._suites(settings.suites())
        if not suites:
            problems.append(f'ssl.cipher-list "{settings.cipher_list}": none of its suites is '
                            "available in this Mbed TLS build")
        if settings.min_version == "TLSv1.3":
            problems.append('ssl.openssl.ssl-conf-cmd MinProtocol "TLSv1.3": Mbed TLS 2.28 has no '
                            'TLS 1.3 (use ssl.backend = "openssl" for TLS 1.3)')
        if problems:
            raise TlsSetupError(problems)
        store = None
        if settings.verify_client:
            store = tls.TrustStore()
            for c in creds.authorities:
                store.add(x509.CRT.from_DER(c.der))
        lowest = _VERSIONS.get(settings.min_version, tls.TLSVersion.MINIMUM_SUPPORTED)
        highest = _VERSIONS.get(settings.max_version, tls.TLSVersion.MAXIMUM_SUPPORTED)
        conf = tls.TLSConfiguration(
            certificate_chain=(chain, key),
            ciphers=suites,
            inner_protocols=tuple(_ALPN[p] for p in settings.alpn),
            # python-mbedtls defaults to TLS 1.0; lighttpd and RFC 9325 want 1.2
            lowest_supported_version=lowest,
            highest_supported_version=highest,
            trust_store=store,
            # True: VERIFY_REQUIRED; False: VERIFY_OPTIONAL (see the module notes)
            validate_certificates=settings.verify_client and settings.enforce,
        )
        self._context = tls.ServerContext(conf)

    @staticmethod
    def _suites(suites: tuple[Suite, ...]) -> tuple[str, ...]:
        available = set(tls.ciphers_available())
        return tuple(s.mbedtls for s in suites if s.mbedtls in available)

    def session(self) -> MbedtlsSession:
        return MbedtlsSession(self._context.wrap_buffers())


class MbedtlsSession:
    """One connection's TLS state; ciphertext out is collected by ``take_output()``."""

    __slots__ = ("_buf", "_out")

    def __init__(self, buf: tls.TLSWrappedBuffer) -> None:
        self._buf = buf
        self._out: list[bytes] = []

    def receive(self, data: memoryview | bytes) -> None:
        try:
            self._buf.receive_from_network(data)  # type: ignore[arg-type]
        except BufferError:
            raise TlsFailure("TLS input ring full") from None

    def _drain(self) -> int:
        buf = self._buf
        n = len(buf._output_buffer)
        if n:
            self._out.append(buf.peek_outgoing(n))
            buf.consume_outgoing(n)
        return n

    def take_output(self) -> list[bytes]:
        self._drain()
        out, self._out = self._out, []
        return out

    def handshake(self) -> bool:
        """Advance the handshake; True once it is over, False while input is needed."""
        buf = self._buf
        while buf._handshake_state is not _OVER:
            try:
                buf.do_handshake()
            except tls.WantWriteError:
                self._drain()
            except tls.WantReadError:
                if not self._drain():
                    return False
            except mbed_exc.TLSError as exc:
                self._drain()  # the alert Mbed TLS sent before giving up
                raise TlsFailure(_reason(exc)) from None
            except (ValueError, BufferError) as exc:
                raise TlsFailure(_reason(exc)) from None
        self._drain()
        return True

    def read_into(self, view: memoryview) -> int:
        """Decrypted bytes into ``view``; 0 when nothing more is available for now."""
        try:
            return self._buf.readinto(view, len(view))  # type: ignore[arg-type]
        except tls.WantReadError:
            return 0
        except tls.WantWriteError:
            self._drain()
            return 0
        except tls.RaggedEOF:
            raise TlsClosed() from None
        except mbed_exc.TLSError as exc:
            if _code(exc) == 0x7880:  # MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY
                raise TlsClosed() from None
            self._drain()
            raise TlsFailure(_reason(exc)) from None

    def write(self, data: memoryview | bytes) -> None:
        """Encrypt at most one record's worth (RECORD_MAX bytes)."""
        try:
            self._buf.write(data)  # type: ignore[arg-type]
        except (mbed_exc.TLSError, BufferError) as exc:
            raise TlsFailure(f"cannot send: {_reason(exc)}") from None
        self._drain()

    def close_notify(self) -> None:
        with contextlib.suppress(mbed_exc.TLSError):
            self._buf.shutdown()
        self._drain()

    def alpn(self) -> str | None:
        proto = self._buf.negotiated_protocol()
        return str(proto) if proto else None

    def version(self) -> str:
        negotiated: Any = self._buf.negotiated_tls_version()
        return _VERSION_TEXT.get(negotiated, "")

    def cipher(self) -> str:
        name = self._buf.cipher()
        if not name:
            return ""
        text = name if isinstance(name, str) else bytes(name).decode("ascii", "replace")
        return _OPENSSL_NAMES.get(text, text)

    def peer_certificate(self) -> bytes | None:
        der = self._buf.getpeercert(binary_form=True)
        return bytes(der) if der else None

    def peer_verified(self) -> bool:
        return bool(self._buf._verified)  # type: ignore[attr-defined]

    def verified_chain(self) -> list[bytes] | None:
        return None  # python-mbedtls does not expose the client's chain


def make_context(settings: TlsSettings, creds: Credentials) -> MbedtlsContext:
    """The library context for one certificate set (TlsSetupError if it cannot be)."""
    return MbedtlsContext(settings, creds)

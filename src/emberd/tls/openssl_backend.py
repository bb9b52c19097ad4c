"""The stdlib backend (``ssl.backend = "openssl"``): ``ssl.SSLObject`` over two MemoryBIOs.

For builds without python-mbedtls, and for TLS 1.3.  The session has the
same shape as the Mbed TLS one: ciphertext in through the incoming BIO
(at most ``FEED_MAX`` at a time, drained before more is fed), handshake
until ``do_handshake()`` stops asking for input, plaintext out with
``read(n, buffer)`` into a pooled chunk, writes of at most one record with
the outgoing BIO emptied after each.

Differences from the Mbed TLS backend, all from the ``ssl`` module's API:

* TLS 1.3 is available (and then ``ssl.cipher-list`` applies to TLS 1.2
  only; TLS 1.3 uses OpenSSL's default suites);
* without ``ssl.verifyclient.activate`` no CertificateRequest is sent;
* with ``ssl.verifyclient.activate`` a certificate that does not verify
  fails the handshake even when ``ssl.verifyclient.enforce`` is off (Python
  offers no verify callback); a client sending none gets
  ``SSL_CLIENT_VERIFY=NONE``;
* the client's chain is visible from Python 3.13 on, so
  ``ssl.verifyclient.depth`` is then counted exactly.

Importing this module loads OpenSSL (``libssl``, about 10 MB of RSS): emberd's
command line keeps ``ssl`` out of the process (``keep_ssl_out``), and this
module lifts that block, since choosing this backend is asking for it.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from .credentials import Credentials
from .errors import TlsClosed, TlsFailure, TlsSetupError
from .settings import TlsSettings


def _import_ssl() -> Any:
    # emberd.cli.keep_ssl_out() installs a meta path finder refusing "ssl"
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not (type(f).__name__ == "_NoSSL"
                                and type(f).__module__ == "emberd.cli")]
    import ssl

    return ssl


ssl = _import_ssl()

NAME = "openssl"
FEED_MAX = 16 * 1024
RECORD_MAX = 16 * 1024
_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
             "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def version() -> str:
    return str(ssl.OPENSSL_VERSION)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    lib = getattr(exc, "library", None)
    if reason:
        return f"{reason} ({lib})" if lib else str(reason)
    return str(exc) or type(exc).__name__


class OpensslContext:
    backend = NAME

    def __init__(self, settings: TlsSettings, creds: Credentials) -> None:
        self.settings = settings
        self.authorities = creds.authorities
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        problems: list[str] = []
        try:
            ctx.load_cert_chain(settings.pemfile, settings.privkey or None)
        except ssl.SSLError as exc:
            what = ("the private key does not match the certificate"
                    if "MISMATCH" in str(exc).upper() else _reason(exc))
            problems.append(f"ssl.pemfile {settings.pemfile}"
                            + (f" / ssl.privkey {settings.privkey}" if settings.privkey else "")
                            + f": {what}")
        except OSError as exc:
            problems.append(f"ssl.pemfile {settings.pemfile}: {exc.strerror or exc}")
        try:
            ctx.set_ciphers(":".join(s.openssl for s in settings.suites()))
        except ssl.SSLError as exc:
            problems.append(f'ssl.cipher-list "{settings.cipher_list}": {_reason(exc)}')
        try:
            ctx.minimum_version = _VERSIONS.get(settings.min_version,
                                                ssl.TLSVersion.MINIMUM_SUPPORTED)
            ctx.maximum_version = _VERSIONS.get(settings.max_version,
                                                ssl.TLSVersion.MAXIMUM_SUPPORTED)
        except (ValueError, ssl.SSLError) as exc:
            problems.append(f"ssl.openssl.ssl-conf-cmd MinProtocol/MaxProtocol: {_reason(exc)}")
        if settings.verify_client:
            try:
                ctx.load_verify_locations(settings.ca_file)
            except (ssl.SSLError, OSError) as exc:
                problems.append(f"ssl.ca-file {settings.ca_file}: {_reason(exc)}")
            ctx.verify_mode = ssl.CERT_REQUIRED if settings.enforce else ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE
        if problems:
            raise TlsSetupError(problems)
        ctx.set_alpn_protocols(list(settings.alpn))
        ctx.options |= (ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
                        | ssl.OP_NO_COMPRESSION)
        self._context = ctx

    def session(self) -> OpensslSession:
        return OpensslSession(self._context)


class OpensslSession:
    __slots__ = ("_in", "_obj", "_out")

    def __init__(self, ctx: Any) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._obj = ctx.wrap_bio(self._in, self._out, server_side=True)

    def receive(self, data: memoryview | bytes) -> None:
        self._in.write(data)

    def take_output(self) -> list[bytes]:
        data = self._out.read()
        return [data] if data else []

    def handshake(self) -> bool:
        try:
            self._obj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        except ssl.SSLError as exc:
            raise TlsFailure(_reason(exc)) from None
        return True

    def read_into(self, view: memoryview) -> int:
        try:
            n = int(self._obj.read(len(view), view))
        except ssl.SSLWantReadError:
            return 0
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            raise TlsClosed() from None
        except ssl.SSLError as exc:
            raise TlsFailure(_reason(exc)) from None
        if not n:  # the stdlib's answer to close_notify (no data raises SSLWantReadError)
            raise TlsClosed()
        return n

    def write(self, data: memoryview | bytes) -> None:
        try:
            self._obj.write(data)
        except ssl.SSLError as exc:
            raise TlsFailure(f"cannot send: {_reason(exc)}") from None

    def close_notify(self) -> None:
        with contextlib.suppress(ssl.SSLError):
            self._obj.unwrap()

    def alpn(self) -> str | None:
        proto = self._obj.selected_alpn_protocol()
        return str(proto) if proto else None

    def version(self) -> str:
        return str(self._obj.version() or "")

    def cipher(self) -> str:
        info = self._obj.cipher()
        return str(info[0]) if info else ""

    def peer_certificate(self) -> bytes | None:
        der = self._obj.getpeercert(binary_form=True)
        return bytes(der) if der else None

    def peer_verified(self) -> bool:
        # OpenSSL fails the handshake when a presented certificate does not verify
        return self.peer_certificate() is not None

    def verified_chain(self) -> list[bytes] | None:
        get = getattr(self._obj, "get_verified_chain", None)  # Python >= 3.13
        if get is None:
            return None
        chain = get()
        return [bytes(c.public_bytes(ssl._ssl.ENCODING_DER)) for c in chain] if chain else None


def make_context(settings: TlsSettings, creds: Credentials) -> OpensslContext:
    """The library context for one certificate set (TlsSetupError if it cannot be)."""
    return OpensslContext(settings, creds)

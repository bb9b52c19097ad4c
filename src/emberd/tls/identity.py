"""What a finished handshake tells the request: protocol, cipher, the client's certificate.

lighttpd's mod_openssl gives backends ``HTTPS=on`` and, with
``ssl.verifyclient.activate``, the client certificate as CGI variables
(``https_add_ssl_client_entries()``):

* ``SSL_CLIENT_VERIFY``: ``SUCCESS``, ``NONE`` (no certificate) or
  ``FAILED:<reason>`` (only seen without ``ssl.verifyclient.enforce``);
* ``SSL_CLIENT_S_DN`` and ``SSL_CLIENT_I_DN`` in OpenSSL's one-line form,
  ``SSL_CLIENT_S_DN_<attr>`` for each subject attribute (``..._CN``,
  ``..._O``), ``SSL_CLIENT_M_SERIAL`` (hex);
* ``SSL_CLIENT_CERT`` (PEM) with ``ssl.verifyclient.exportcert``;
* ``REMOTE_USER`` from the variable named by ``ssl.verifyclient.username``
  (e.g. ``SSL_CLIENT_S_DN_CN``) and ``AUTH_TYPE=SSL_CLIENT_VERIFY``, when
  the certificate verified.

Plus ``SSL_PROTOCOL``, ``SSL_CIPHER`` and ``SSL_TLS_SNI`` for every TLS
request (``HTTPS=on`` comes from ``req.scheme``).

``ssl.verifyclient.depth`` limits the issuers above the client's
certificate.  Mbed TLS itself allows 8 intermediates; neither
python-mbedtls nor the stdlib before Python 3.13 shows the chain the client
sent, so the depth is counted through the CA file: a path that leaves it
(an intermediate only the client had) counts as too deep when the limit is
below lighttpd's default of 9, and as acceptable otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from . import certificates
from .errors import TlsFailure

if TYPE_CHECKING:
    from ..http.message import Request
    from .settings import TlsSettings

DEFAULT_DEPTH = 9  # lighttpd's ssl.verifyclient.depth


@dataclass(slots=True)
class TlsInfo:
    """The TLS facts of a connection, added to each of its requests."""

    env: dict[str, str] = field(default_factory=dict)
    user: str = ""

    def annotate(self, req: Request) -> None:
        req.env.update(self.env)
        if self.user:
            req.user = self.user
            req.env["AUTH_TYPE"] = "SSL_CLIENT_VERIFY"


def describe(settings: TlsSettings, *, protocol: str, cipher: str, server_name: str | None,
             peer_der: bytes | None, verified: bool, authorities: list[certificates.Certificate],
             chain: list[bytes] | None = None) -> TlsInfo:
    """The TlsInfo of a finished handshake; TlsFailure if an enforced check fails."""
    env = {"SSL_PROTOCOL": protocol, "SSL_CIPHER": cipher}
    if server_name:
        env["SSL_TLS_SNI"] = server_name
    info = TlsInfo(env)
    if not settings.verify_client:
        return info
    if peer_der is None:
        if settings.enforce:
            raise TlsFailure("the client sent no certificate (ssl.verifyclient.enforce)")
        env["SSL_CLIENT_VERIFY"] = "NONE"
        return info
    try:
        cert = certificates.parse(peer_der)
    except certificates.CertificateError as exc:
        raise TlsFailure(f"unreadable client certificate: {exc}") from None
    problem = None if verified else "certificate not trusted by ssl.ca-file"
    if problem is None:
        n = len(chain) - 1 if chain else certificates.depth(cert, authorities)
        if n is None and settings.depth < DEFAULT_DEPTH:
            problem = ("chain depth unknown (an intermediate is missing from ssl.ca-file) and "
                       f"ssl.verifyclient.depth is {settings.depth}")
        elif n is not None and n > settings.depth:
            problem = f"chain depth {n} over ssl.verifyclient.depth {settings.depth}"
    if problem is not None and settings.enforce:
        raise TlsFailure(f"client certificate {cert.subject_text()} refused: {problem}")
    env["SSL_CLIENT_VERIFY"] = "SUCCESS" if problem is None else f"FAILED:{problem}"
    env["SSL_CLIENT_S_DN"] = cert.subject_text()
    for attr, value in cert.subject:
        env[f"SSL_CLIENT_S_DN_{attr}"] = value
    env["SSL_CLIENT_I_DN"] = cert.issuer_text()
    env["SSL_CLIENT_M_SERIAL"] = f"{cert.serial:X}"
    if settings.export_cert:
        env["SSL_CLIENT_CERT"] = cert.pem()
    if problem is None and settings.username:
        info.user = env.get(settings.username, "")
    return info

"""From ``ssl.*`` directives to the TLS settings of one listener (or one SNI name).

Where the directives may be written follows lighttpd's mod_openssl:

* ``ssl.engine``, ``ssl.cipher-list``, ``ssl.openssl.ssl-conf-cmd``,
  ``ssl.handshake-timeout`` belong to a listener: global or
  ``$SERVER["socket"] == "..."`` (the schema's socket scope enforces it);
* the certificate keys (``ssl.pemfile``, ``ssl.privkey``, ``ssl.ca-file``,
  ``ssl.verifyclient.*``) may also sit in ``$HTTP["host"]`` blocks (and
  ``$HTTP["remoteip"]``, ``$HTTP["scheme"]``): those are decided during the
  handshake, from the name the client asks for (SNI) and its address.  In
  any other condition they could never apply, so start-up refuses them.

``TlsSettings`` is a frozen, hashable value: endpoints keep one library
context per distinct settings, so ten host blocks sharing one certificate
share one context.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config.conditions import Field
from . import ciphers

if TYPE_CHECKING:
    from ..config.settings import ServerConfig

CERT_KEYS = ("ssl.pemfile", "ssl.privkey", "ssl.ca-file", "ssl.verifyclient.activate",
             "ssl.verifyclient.enforce", "ssl.verifyclient.depth", "ssl.verifyclient.username",
             "ssl.verifyclient.exportcert")
# conditions the handshake can decide (the client's name, address, and the listener)
HANDSHAKE_FIELDS = frozenset((Field.HOST, Field.REMOTE_IP, Field.SCHEME, Field.SERVER_SOCKET))

# protocol versions by OpenSSL's MinProtocol/MaxProtocol names, oldest first
VERSIONS = ("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_VERSION_BY_LOWER = {v.lower(): v for v in VERSIONS} | {"none": "None", "tlsv1.0": "TLSv1"}
DEFAULT_MIN = "TLSv1.2"


def protocol_version(value: str) -> str:
    """For the schema: MinProtocol/MaxProtocol in OpenSSL's spelling (any case)."""
    canon = _VERSION_BY_LOWER.get(value.strip().lower())
    if canon is None:
        raise ValueError(f'"{value}" is not a protocol version (TLSv1.2, TLSv1.3, ...; '
                         '"None" for no limit)')
    if canon == "SSLv3":
        raise ValueError("SSL 3.0 is never offered (RFC 7568)")
    return canon


def version_number(name: str) -> int:
    """0x0303 for TLSv1.2."""
    return 0x0300 + VERSIONS.index(name)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    backend: str  # "mbedtls" or "openssl"
    pemfile: str
    privkey: str  # "": the key is in pemfile
    ca_file: str  # CAs for client certificates
    verify_client: bool  # ssl.verifyclient.activate
    enforce: bool
    depth: int
    username: str  # DN field that becomes REMOTE_USER (e.g. SSL_CLIENT_S_DN_CN)
    export_cert: bool
    cipher_list: str
    min_version: str  # "None" or a VERSIONS entry
    max_version: str  # "None" or a VERSIONS entry
    alpn: tuple[str, ...]  # offered in this order (h2 first when HTTP/2 is on)

    def suites(self) -> tuple[ciphers.Suite, ...]:
        return ciphers.select(self.cipher_list)


def settings_from(values: Mapping[str, Any]) -> TlsSettings:
    """The settings a values dict (global, socket or per-request overlay) describes."""
    cmd: Mapping[str, str] = values["ssl.openssl.ssl-conf-cmd"]
    h2 = values["server.feature-flags"]["server.h2proto"]
    return TlsSettings(
        backend=values["ssl.backend"],
        pemfile=values["ssl.pemfile"],
        privkey=values["ssl.privkey"],
        ca_file=values["ssl.ca-file"],
        verify_client=values["ssl.verifyclient.activate"],
        enforce=values["ssl.verifyclient.enforce"],
        depth=values["ssl.verifyclient.depth"],
        username=values["ssl.verifyclient.username"],
        export_cert=values["ssl.verifyclient.exportcert"],
        cipher_list=cmd.get("CipherString") or values["ssl.cipher-list"] or ciphers.DEFAULT,
        min_version=cmd.get("MinProtocol") or DEFAULT_MIN,
        max_version=cmd.get("MaxProtocol") or "None",
        alpn=("h2", "http/1.1") if h2 else ("http/1.1",),
    )


def where(config: ServerConfig, key: str, value: Any) -> str:
    """``file:line:col`` of the assignment that gave ``key`` this value ("" if default)."""
    for v, loc in config.assigned(key):
        if v == value and loc is not None:
            return str(loc)
    return ""


def misplaced(config: ServerConfig) -> Iterator[str]:
    """Certificate keys in conditions the handshake cannot decide (as error lines)."""
    tree = config.tree
    for cb in config.blocks[1:]:
        keys = [k for k in CERT_KEYS if k in cb.values]
        if not keys:
            continue
        bad = _undecidable(config, cb.index)
        if bad is None:
            continue
        for key in keys:
            a = tree.blocks[cb.index].values[key]
            yield (f"{a.loc}: {key} in a block under {bad}: the certificate is chosen during "
                   'the handshake, where only $HTTP["host"] (SNI), $HTTP["remoteip"], '
                   '$HTTP["scheme"] and $SERVER["socket"] are known')


def _undecidable(config: ServerConfig, index: int) -> str | None:
    """The text of a condition on the path to block ``index`` the handshake cannot decide."""
    blocks = config.blocks
    todo = [index]
    seen: set[int] = set()
    while todo:
        i = todo.pop()
        if i <= 0 or i in seen:
            continue
        seen.add(i)
        b = blocks[i]
        c = b.condition
        if c is not None and c.field not in HANDSHAKE_FIELDS:
            return c.text()
        todo += [b.parent, b.prev]
    return None


def sni_blocks(config: ServerConfig) -> list[int]:
    """Blocks that set certificate keys under a condition other than the socket's."""
    out = []
    for cb in config.blocks[1:]:
        if not any(k in cb.values for k in CERT_KEYS):
            continue
        c = cb.condition
        if c is None or c.field is not Field.SERVER_SOCKET or cb.parent != 0:
            out.append(cb.index)
    return out


def overlay(config: ServerConfig, token: str, index: int) -> dict[str, Any] | None:
    """Settings as block ``index`` and its parents would give them on listener ``token``;
    None when a ``$SERVER["socket"]`` condition on the way rules the listener out."""
    blocks = config.blocks
    path = []
    i = index
    while i > 0:
        path.append(blocks[i])
        i = blocks[i].parent
    values = config.for_socket(token)
    for b in reversed(path):
        c = b.condition
        if c is not None and c.field is Field.SERVER_SOCKET and not c.matches(token)[0]:
            return None
        values.update(b.values)
    return values

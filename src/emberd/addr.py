"""Host names and IP networks as lighttpd compares them.

Used by configuration conditions (``$HTTP["host"]``, ``$HTTP["remote-ip"]``,
``$SERVER["socket"]``) and by the HTTP layer for the request authority.  The
``ipaddress`` module is avoided on purpose: ``socket`` is imported by the
server anyway and this is all the arithmetic that is needed.
"""

from __future__ import annotations

import contextlib
import functools
import socket
from dataclasses import dataclass


def _split_port(text: str) -> tuple[str, int | None] | None:
    """Split ``host[:port]``; None if the port is not a valid number."""
    host, sep, port_text = text.partition(":")
    if not sep or port_text == "":
        return host, None  # lighttpd ignores a stray colon at the end
    try:
        port = int(port_text, 0)  # lighttpd's strtol(..., 0): decimal, octal, hex
    except ValueError:
        return None
    if not 0 < port <= 65535:
        return None
    return host, port


def normalize_host(value: str, scheme_port: int = 0) -> str | None:
    """Canonical form of a Host value, or None when it cannot be one.

    IP literals are rewritten canonically (``[::0001]`` -> ``[::1]``,
    ``127.1`` -> ``127.0.0.1``), names are lowercased, and a port equal to
    ``scheme_port`` is dropped, as ``http_request_host_normalize()`` does.
    """
    if not value:
        return None
    text = value.lower()
    if text[0] != "[":
        if text[0] == ":":
            return None
        split = _split_port(text)
        if split is None:
            return None
        host, port = split
        if host[:1].isdigit():
            with contextlib.suppress(OSError):  # else a name like 3com.com
                host = socket.inet_ntoa(socket.inet_aton(host))
    else:
        end = text.find("]")
        if end <= 1:
            return None
        rest = text[end + 1 :]
        port = None
        if rest:
            if rest[0] != ":":
                return None
            split = _split_port("x" + rest)
            if split is None:
                return None
            port = split[1]
        inner, _, zone = text[1:end].partition("%")
        try:
            canon = socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, inner))
        except OSError:
            return None
        host = f"[{canon}{'%' + zone if zone else ''}]"
    if port is not None and port != scheme_port:
        return f"{host}:{port}"
    return host


def parse_ip(text: str) -> tuple[int, int] | None:
    """``(bits, value)`` for an IPv4 (32) or IPv6 (128) address; None if invalid.

    IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``) are returned as IPv4 so
    that an IPv4 network matches clients on a dual-stack socket.
    """
    text = text.strip("[]")
    try:
        if ":" in text:
            raw = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
            if raw[:12] == b"\0" * 10 + b"\xff\xff":
                return 32, int.from_bytes(raw[12:], "big")
            return 128, int.from_bytes(raw, "big")
        return 32, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        return None


@dataclass(frozen=True, slots=True)
class Network:
    """An address with a prefix length (``10.0.0.0/8``, ``::1``)."""

    bits: int
    value: int
    prefix: int

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        parsed = parse_ip(address)
        if parsed is None or parsed[0] != self.bits:
            return False
        shift = self.bits - self.prefix
        return (parsed[1] >> shift) == (self.value >> shift)

    def __str__(self) -> str:
        if self.bits == 32:
            addr = socket.inet_ntop(socket.AF_INET, self.value.to_bytes(4, "big"))
        else:
            addr = socket.inet_ntop(socket.AF_INET6, self.value.to_bytes(16, "big"))
        return addr if self.prefix == self.bits else f"{addr}/{self.prefix}"


def parse_network(text: str) -> Network | None:
    """Parse ``addr`` or ``addr/prefix`` (prefix 1..32 or 1..128); None if invalid."""
    addr, sep, prefix_text = text.partition("/")
    parsed = parse_ip(addr)
    if parsed is None:
        return None
    bits, value = parsed
    if not sep:
        return Network(bits, value, bits)
    if not prefix_text.isdigit():
        return None
    prefix = int(prefix_text)
    if not 0 < prefix <= bits:
        return None
    return Network(bits, value, prefix)


@functools.lru_cache(maxsize=64)  # a device sees few distinct Host values
def check_host(value: str) -> str | None:
    """A Host value as lighttpd's strict check accepts it, normalised; None if invalid.

    Names are labels of letters, digits and '-' (not first) separated by
    dots, one trailing dot allowed; IPv4 needs four numeric parts; IPv6 goes
    in brackets; an optional port is digits.
    """
    host = value.lower()
    if host.startswith("["):
        return normalize_host(host)
    name, sep, port = host.partition(":")
    if name.endswith("."):
        name = name[:-1]
    if not name or (sep and port and not port.isdigit()):
        return None
    labels = name.split(".")
    for label in labels:
        if not label or label[0] == "-" or not all(c.isalnum() or c == "-" for c in label):
            return None
        if not label.isascii():
            return None
    if labels[-1].isdigit() and (len(labels) != 4 or not all(x.isdigit() for x in labels)):
        return None
    return normalize_host(name + (f":{port}" if sep and port else ""))

"""Certificates made for the tests (trustme), and an in-memory TLS client (stdlib ssl).

``Files`` writes a CA and leaf certificates as emberd reads them: the chain
file (leaf first), the key file, and both in one file for ``ssl.pemfile``
alone.  ``MemoryClient`` is the client side of an in-memory pair: the test
moves bytes between it and emberd's TlsChannel, in whatever pieces it likes.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

from emberd.config.loader import load
from emberd.tls.channel import TlsChannel
from emberd.tls.endpoint import Endpoint, build_endpoints


@dataclass
class Leaf:
    chain: Path  # certificate and its chain, leaf first
    key: Path
    both: Path  # chain and key in one file


def write_leaf(directory: Path, name: str, leaf: trustme.LeafCert) -> Leaf:
    chain = b"".join(b.bytes() for b in leaf.cert_chain_pems)
    key = leaf.private_key_pem.bytes()
    out = Leaf(directory / f"{name}.crt", directory / f"{name}.key", directory / f"{name}.pem")
    out.chain.write_bytes(chain)
    out.key.write_bytes(key)
    out.both.write_bytes(chain + key)
    return out


class Pki:
    """A CA in ``directory`` issuing server and client certificates on demand."""

    def __init__(self, directory: Path, key_type: trustme.KeyType = trustme.KeyType.ECDSA,
                 name: str = "ca") -> None:
        self.dir = directory
        self.ca = trustme.CA(key_type=key_type, organization_name=f"emberd test {name}")
        self.ca_file = directory / f"{name}.crt"
        self.ca_file.write_bytes(self.ca.cert_pem.bytes())
        self.key_type = key_type

    def server(self, name: str, *hosts: str, not_before: dt.datetime | None = None,
               not_after: dt.datetime | None = None) -> Leaf:
        leaf = self.ca.issue_cert(*(hosts or ("localhost", "127.0.0.1")), common_name=name,
                                  key_type=self.key_type, not_before=not_before,
                                  not_after=not_after)
        return write_leaf(self.dir, name, leaf)

    def client(self, name: str) -> Leaf:
        leaf = self.ca.issue_cert(f"{name}@example.org", common_name=name,
                                  organization_name="Devices", key_type=self.key_type)
        return write_leaf(self.dir, name, leaf)


def endpoint(tmp_path: Path, conf: str, token: str = "127.0.0.1:443",
             log: list[str] | None = None) -> Endpoint:
    """The TLS endpoint of ``token`` in a configuration (document root preset)."""
    path = tmp_path / "emberd.conf"
    port = token.rsplit(":", 1)[1]
    path.write_text(f'server.document-root = "{tmp_path}"\nserver.bind = "127.0.0.1"\n'
                    f"server.port = {port}\n" + conf)
    config = load(str(path))
    sink = log if log is not None else []
    return build_endpoints(config, [token], lambda where, msg: sink.append(msg))[token]


class MemoryClient:
    """A stdlib TLS client on MemoryBIOs."""

    def __init__(self, cafile: Path | None, server_hostname: str | None = "localhost",
                 alpn: tuple[str, ...] = ("h2", "http/1.1"), cert: Leaf | None = None,
                 maximum: ssl.TLSVersion | None = None,
                 minimum: ssl.TLSVersion | None = None) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if cafile is not None:
            ctx.load_verify_locations(str(cafile))
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(list(alpn))
        if cert is not None:
            ctx.load_cert_chain(str(cert.chain), str(cert.key))
        if maximum is not None or minimum is not None:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            if minimum is not None:
                ctx.minimum_version = minimum
            if maximum is not None:
                ctx.maximum_version = maximum
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.done = False

    def step(self) -> bytes:
        """Advance the client handshake; returns what it wants to send."""
        if not self.done:
            try:
                self.obj.do_handshake()
                self.done = True
            except ssl.SSLWantReadError:
                pass
        return self.outgoing.read()

    def feed(self, records: list[bytes]) -> None:
        for r in records:
            self.incoming.write(r)

    def send(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self.outgoing.read()

    def recv_all(self) -> bytes:
        out = bytearray()
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                return bytes(out)
            if not chunk:
                return bytes(out)
            out += chunk


def pieces(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of ``size`` bytes (0: whole)."""
    if not size:
        return [data]
    return [data[i:i + size] for i in range(0, len(data), size)]


def handshake(client: MemoryClient, channel: TlsChannel, piece: int = 0,
              rounds: int = 20) -> None:
    """Run both sides until the client is done and the channel is open."""
    for _ in range(rounds):
        for p in pieces(client.step(), piece):
            channel.receive(p)
            if channel.opening:
                channel.handshake()
        client.feed(channel.take_output())
        if client.done and not channel.opening:
            client.step()
            return
    raise AssertionError("handshake did not finish")


def read_all(channel: TlsChannel, size: int = 1024) -> bytes:
    buf = memoryview(bytearray(size))
    out = bytearray()
    while True:
        n = channel.read_into(buf)
        if not n:
            return bytes(out)
        out += buf[:n]

"""The TLS channel with both backends, against the stdlib client over an in-memory wire.

Bytes are moved whole, byte by byte and in odd pieces, so records and
handshake messages arrive split at every possible place (the case in which
python-mbedtls' read(n) would lose data).
"""

from __future__ import annotations

import ssl

import pytest
import trustme

from emberd.tls.channel import FEED_MAX, TlsChannel
from emberd.tls.errors import NotTls, TlsClosed, TlsFailure

from .pki import MemoryClient, Pki, endpoint, handshake, pieces, read_all

BACKENDS = ["mbedtls", "openssl"]


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


def server_conf(pki: Pki, backend: str, extra: str = "") -> str:
    leaf = pki.server("localhost")
    return (f'ssl.engine = "enable"\nssl.backend = "{backend}"\n'
            f'ssl.pemfile = "{leaf.chain}"\nssl.privkey = "{leaf.key}"\n' + extra)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("piece", [0, 1, 7, 1000])
def test_handshake_alpn_and_data_in_pieces(tmp_path, pki, backend, piece):
    ep = endpoint(tmp_path, server_conf(pki, backend))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file)
    handshake(client, ch, piece)
    assert ch.alpn == "h2" and ch.hello is not None and ch.hello.server_name == "localhost"
    assert ch.info is not None and ch.info.env["SSL_TLS_SNI"] == "localhost"
    assert ch.info.env["SSL_PROTOCOL"] == ("TLSv1.2" if backend == "mbedtls" else "TLSv1.3")
    assert ch.info.env["SSL_CIPHER"]
    # client -> server: several records, delivered in pieces
    sent = b"".join(bytes([i]) * (3000 + i) for i in range(20))
    wire = b"".join(client.send(sent[i:i + 5000]) for i in range(0, len(sent), 5000))
    got = bytearray()
    for p in pieces(wire, piece):
        ch.receive(p)
        got += read_all(ch, 777)
    assert bytes(got) == sent
    # server -> client: records of at most 16 KiB of plaintext
    body = bytes(range(256)) * 300
    records = ch.encrypt(body)
    client.feed(records)
    assert client.recv_all() == body
    blob = b"".join(records)
    sizes = []
    while blob:
        n = int.from_bytes(blob[3:5], "big")
        sizes.append(n)
        blob = blob[5 + n:]
    assert len(sizes) >= 5 and max(sizes) <= 16384 + 256


@pytest.mark.parametrize("backend", BACKENDS)
def test_alpn_http1_and_none(tmp_path, pki, backend):
    ep = endpoint(tmp_path, server_conf(pki, backend))
    for offer, chosen in ((("http/1.1",), "http/1.1"), ((), None)):
        ch = TlsChannel(ep, "192.0.2.1")
        handshake(MemoryClient(pki.ca_file, alpn=offer), ch)
        assert ch.alpn == chosen


def test_h2_not_offered_without_h2proto(tmp_path, pki):
    ep = endpoint(tmp_path, server_conf(pki, "mbedtls")
                  + 'server.feature-flags = ( "server.h2proto" => "disable" )\n')
    ch = TlsChannel(ep, "192.0.2.1")
    handshake(MemoryClient(pki.ca_file), ch)
    assert ch.alpn == "http/1.1"


def test_a_large_read_waits_in_the_backlog(tmp_path, pki):
    ep = endpoint(tmp_path, server_conf(pki, "mbedtls"))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file)
    handshake(client, ch)
    data = b"x" * (5 * FEED_MAX)
    wire = client.send(data)
    assert len(wire) > 2 * 32 * 1024  # more than Mbed TLS' input ring holds
    ch.receive(wire)
    assert read_all(ch, 4096) == data


@pytest.mark.parametrize("backend", BACKENDS)
def test_close_notify_both_ways(tmp_path, pki, backend):
    ep = endpoint(tmp_path, server_conf(pki, backend))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file)
    handshake(client, ch)
    client.feed(ch.close_notify())
    assert client.obj.read(10) == b""  # the stdlib's answer to close_notify (no alert: WantRead)
    ch2 = TlsChannel(ep, "192.0.2.1")
    client2 = MemoryClient(pki.ca_file)
    handshake(client2, ch2)
    with pytest.raises(ssl.SSLWantReadError):
        client2.obj.unwrap()
    ch2.receive(client2.outgoing.read())
    with pytest.raises(TlsClosed):
        read_all(ch2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_tls_1_1_is_refused_with_an_alert(tmp_path, pki, backend):
    ep = endpoint(tmp_path, server_conf(pki, backend))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file, maximum=ssl.TLSVersion.TLSv1_1,
                          minimum=ssl.TLSVersion.TLSv1)
    with pytest.raises(TlsFailure, match=r"offers TLS 1\.1 at most, the minimum is TLS 1\.2"):
        handshake(client, ch)
    alert = b"".join(ch.take_output())
    assert alert[:1] == b"\x15"  # an alert record went out
    client.feed([alert])
    with pytest.raises(ssl.SSLError):
        client.step()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_min_protocol_can_be_lowered(tmp_path, pki):
    ep = endpoint(tmp_path, server_conf(
        pki, "mbedtls", 'ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "TLSv1.1" )\n'
                        'ssl.cipher-list = "ECDHE+AES:!SHA256:!SHA384"\n'))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file, maximum=ssl.TLSVersion.TLSv1_1,
                          minimum=ssl.TLSVersion.TLSv1, alpn=("http/1.1",))
    handshake(client, ch)
    assert ch.info is not None and ch.info.env["SSL_PROTOCOL"] == "TLSv1.1"


@pytest.mark.parametrize("backend", BACKENDS)
def test_renegotiation_garbage_and_oversized_records(tmp_path, pki, backend):
    ep = endpoint(tmp_path, server_conf(pki, backend))
    for bad, words in ((b"\x16\x03\x03\x00\x30" + b"\x01" * 0x30, "renegotiation"),
                       (b"\x99garbage", "garbage"),
                       (b"\x17\x03\x03\x48\x01", "oversized"),
                       (b"\x17\x03\x03\x00\x20" + b"\x00" * 0x20, None)):
        ch = TlsChannel(ep, "192.0.2.1")
        handshake(MemoryClient(pki.ca_file), ch)
        with pytest.raises(TlsFailure, match=words):
            ch.receive(bad)
            read_all(ch)
        assert not ch.opening and ch.phase.value == "closed"


def test_plain_http_and_truncated_hello(tmp_path, pki):
    ep = endpoint(tmp_path, server_conf(pki, "mbedtls"))
    with pytest.raises(NotTls) as exc:
        TlsChannel(ep, "192.0.2.1").receive(b"GET / HTTP/1.1\r\n")
    assert exc.value.http
    ch = TlsChannel(ep, "192.0.2.1")
    hello = MemoryClient(pki.ca_file).step()
    ch.receive(hello[: len(hello) // 2])
    assert not ch.handshake() and ch.opening and ch.take_output() == []


def test_sni_picks_the_certificate_of_the_host(tmp_path):
    a, b = Pki(tmp_path, name="ca-a"), Pki(tmp_path, name="ca-b")
    la, lb = a.server("a.example", "a.example"), b.server("b.example", "b.example")
    conf = (f'ssl.engine = "enable"\nssl.pemfile = "{la.both}"\n'
            f'$HTTP["host"] == "b.example" {{ ssl.pemfile = "{lb.both}" }}\n')
    ep = endpoint(tmp_path, conf)
    for name, pki in (("a.example", a), ("b.example", b), (None, a)):
        ch = TlsChannel(ep, "192.0.2.1")
        client = MemoryClient(pki.ca_file, server_hostname=name)
        if name is None:
            client.obj.context.check_hostname = False  # type: ignore[attr-defined]
        handshake(client, ch)
        assert client.done
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(MemoryClient(a.ca_file, server_hostname="b.example"), TlsChannel(ep, "x"))


# -- client certificates ----------------------------------------------------------------

def verify_conf(pki: Pki, backend: str, extra: str) -> str:
    return server_conf(pki, backend, f'ssl.ca-file = "{pki.ca_file}"\n'
                                     'ssl.verifyclient.activate = "enable"\n' + extra)


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_certificate_accepted(tmp_path, pki, backend):
    ep = endpoint(tmp_path, verify_conf(pki, backend, 'ssl.verifyclient.username = '
                                        '"SSL_CLIENT_S_DN_CN"\nssl.verifyclient.exportcert = "enable"\n'))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file, cert=pki.client("sensor-7"))
    handshake(client, ch)
    if backend == "openssl":  # TLS 1.3: the certificate comes with the client's Finished
        client.send(b"")
    info = ch.info
    assert info is not None
    env = info.env
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS" and env["SSL_CLIENT_S_DN_CN"] == "sensor-7"
    assert env["SSL_CLIENT_S_DN_O"] == "Devices" and "/O=emberd test ca" in env["SSL_CLIENT_I_DN"]
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    assert info.user == "sensor-7"


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_without_certificate_refused_when_enforced(tmp_path, pki, backend):
    ep = endpoint(tmp_path, verify_conf(pki, backend, ""))
    ch = TlsChannel(ep, "192.0.2.1")
    client = MemoryClient(pki.ca_file)
    with pytest.raises((TlsFailure, ssl.SSLError)):
        handshake(client, ch)
        client.feed(ch.take_output())
        client.send(b"x")
        ch.receive(client.outgoing.read())
        read_all(ch)


@pytest.mark.parametrize("backend", BACKENDS)
def test_client_without_certificate_passes_when_not_enforced(tmp_path, pki, backend):
    ep = endpoint(tmp_path, verify_conf(pki, backend, 'ssl.verifyclient.enforce = "disable"\n'))
    ch = TlsChannel(ep, "192.0.2.1")
    handshake(MemoryClient(pki.ca_file), ch)
    assert ch.info is not None and ch.info.env["SSL_CLIENT_VERIFY"] == "NONE"
    assert "SSL_CLIENT_S_DN" not in ch.info.env and ch.info.user == ""


def test_client_certificate_from_another_ca_mbedtls(tmp_path, pki):
    other = Pki(tmp_path, name="other")
    ep = endpoint(tmp_path, verify_conf(pki, "mbedtls", ""))
    with pytest.raises((TlsFailure, ssl.SSLError)):
        handshake(MemoryClient(pki.ca_file, cert=other.client("intruder")), TlsChannel(ep, "x"))
    lax = endpoint(tmp_path, verify_conf(pki, "mbedtls", 'ssl.verifyclient.enforce = "disable"\n'))
    ch = TlsChannel(lax, "x")
    handshake(MemoryClient(pki.ca_file, cert=other.client("intruder")), ch)
    assert ch.info is not None and ch.info.env["SSL_CLIENT_VERIFY"].startswith("FAILED:")
    assert ch.info.user == ""


def test_client_certificate_depth(tmp_path):
    pki = Pki(tmp_path)
    mid = pki.ca.create_child_ca()
    leaf = mid.issue_cert("deep@example.org", common_name="deep")
    from .pki import write_leaf

    cert = write_leaf(tmp_path, "deep", leaf)
    cas = tmp_path / "cas.pem"
    cas.write_bytes(pki.ca.cert_pem.bytes() + mid.cert_pem.bytes())
    base = server_conf(pki, "mbedtls", f'ssl.ca-file = "{cas}"\n'
                                       'ssl.verifyclient.activate = "enable"\n')
    ok = endpoint(tmp_path, base + "ssl.verifyclient.depth = 2\n")
    ch = TlsChannel(ok, "x")
    handshake(MemoryClient(pki.ca_file, cert=cert), ch)
    assert ch.info is not None and ch.info.env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    shallow = endpoint(tmp_path, base + "ssl.verifyclient.depth = 1\n")
    with pytest.raises(TlsFailure, match=r"chain depth 2 over ssl\.verifyclient\.depth 1"):
        handshake(MemoryClient(pki.ca_file, cert=cert), TlsChannel(shallow, "x"))


def test_rsa_certificates(tmp_path):
    pki = Pki(tmp_path, key_type=trustme.KeyType.RSA)
    ep = endpoint(tmp_path, server_conf(pki, "mbedtls"))
    ch = TlsChannel(ep, "x")
    handshake(MemoryClient(pki.ca_file), ch)
    assert ch.info is not None and ch.info.env["SSL_CIPHER"].startswith("ECDHE-RSA-")

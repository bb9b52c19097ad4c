"""Reading the ClientHello: SNI, versions, ALPN; plain HTTP and garbage told apart.

ClientHellos come from the stdlib's TLS client (OpenSSL), fed whole, byte by
byte and with the next bytes behind them.
"""

from __future__ import annotations

import ssl

import pytest

from emberd.tls.errors import NotTls, TlsFailure
from emberd.tls.hello import MAX_HELLO, HelloReader, parse_client_hello


def client_hello(name: str | None = "Device.Example", alpn=("h2", "http/1.1"),
                 maximum: ssl.TLSVersion | None = None) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if maximum is not None:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = maximum
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


@pytest.mark.parametrize("step", [0, 1, 2, 5, 7])
def test_sni_alpn_and_version_fed_in_pieces(step):
    data = client_hello()
    reader = HelloReader()
    step = step or len(data)
    found = None
    for i in range(0, len(data), step):
        found = reader.feed(data[i:i + step])
        if found is not None:
            assert i + step >= len(data)  # complete exactly at the end
    assert found is not None
    assert found.server_name == "device.example"
    assert found.alpn == ("h2", "http/1.1")
    assert found.max_version == 0x0304 and found.version_name == "TLS 1.3"


def test_trailing_bytes_do_not_confuse_the_reader():
    hello = HelloReader().feed(client_hello(None, ()) + b"\x17\x03\x03\x00\x05hello")
    assert hello is not None and hello.server_name is None and hello.alpn == ()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_1_1_client_is_recognised():
    data = client_hello(maximum=ssl.TLSVersion.TLSv1_1)
    hello = HelloReader().feed(data)
    assert hello is not None and hello.max_version == 0x0302 and hello.version_name == "TLS 1.1"


def test_hello_split_across_two_records():
    data = client_hello()
    body = data[5:]
    split = b"".join(b"\x16\x03\x01" + len(part).to_bytes(2, "big") + part
                     for part in (body[:100], body[100:]))
    hello = HelloReader().feed(split)
    assert hello is not None and hello.server_name == "device.example"


@pytest.mark.parametrize("first", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"POST /api HTTP/1.1\r\n",
                                   b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"])
def test_plain_http_is_recognised(first):
    with pytest.raises(NotTls) as exc:
        HelloReader().feed(first)
    assert exc.value.http


@pytest.mark.parametrize("first, words", [
    (b"\x80\x2e\x01\x00\x02", "SSLv2"),
    (b"\x00\x00\x00\x00\x00", "not a TLS handshake"),
    (b"\x16\x09\x01\x00\x10", "not a TLS record"),
    (b"\x16\x03\x01\xff\xff", "invalid TLS record length"),
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "where a ClientHello belongs"),
])
def test_garbage_is_refused(first, words):
    with pytest.raises(TlsFailure, match=words) as exc:
        HelloReader().feed(first)
    assert not getattr(exc.value, "http", False)


def test_oversized_hello_is_refused():
    body = b"\x01" + (MAX_HELLO + 1).to_bytes(3, "big")
    with pytest.raises(TlsFailure, match="ClientHello"):
        HelloReader().feed(b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body)


def test_truncated_hello_body_is_an_error():
    with pytest.raises(TlsFailure, match="truncated"):
        parse_client_hello(b"\x03\x03" + b"r" * 20)


def test_incomplete_hello_waits():
    data = client_hello()
    assert HelloReader().feed(data[:-1]) is None

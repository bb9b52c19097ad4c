"""Certificates read without a TLS library: fields, chains, depth, PEM edge cases."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
import trustme

from emberd.tls import certificates as c


@pytest.fixture
def ca():
    return trustme.CA(organization_name="Acme Devices")


def test_fields_match_what_openssl_reads(ca, tmp_path):
    leaf = ca.issue_cert("device.example", common_name="device.example",
                         organization_name="Acme")
    pem = leaf.cert_chain_pems[0].bytes()
    (tmp_path / "leaf.pem").write_bytes(pem)
    cert = c.load_certificates(pem)[0]
    theirs = ssl._ssl._test_decode_cert(str(tmp_path / "leaf.pem"))  # type: ignore[attr-defined]
    assert cert.serial == int(theirs["serialNumber"], 16)
    assert ("CN", "device.example") in cert.subject and ("O", "Acme") in cert.subject
    assert cert.subject_text().endswith("/CN=device.example")
    assert cert.issuer_der == c.load_certificates(ca.cert_pem.bytes())[0].subject_der
    assert not cert.ca and not cert.self_issued
    assert c.load_certificates(ca.cert_pem.bytes())[0].ca
    assert cert.validity_problem() is None
    assert cert.pem().encode() == pem


def test_validity_problems(ca):
    now = dt.datetime.now(dt.UTC)
    old = ca.issue_cert("a", not_before=now - dt.timedelta(days=30),
                        not_after=now - dt.timedelta(days=1))
    cert = c.load_certificates(old.cert_chain_pems[0].bytes())[0]
    assert "expired on" in (cert.validity_problem() or "")
    assert "not valid before" in (cert.validity_problem(now - dt.timedelta(days=60)) or "")


def test_chain_order_and_depth(ca):
    mid = ca.create_child_ca()
    leaf = mid.issue_cert("device.example")
    chain = [c.parse(ssl.PEM_cert_to_DER_cert(p.bytes().decode()))
             for p in leaf.cert_chain_pems]
    assert len(chain) == 2 and c.chain_problem(chain) is None
    assert "chain must go leaf first" in (c.chain_problem(chain[::-1]) or "")
    root = c.load_certificates(ca.cert_pem.bytes())[0]
    assert c.depth(chain[0], [root, chain[1]]) == 2
    assert c.depth(chain[0], [root]) is None  # the intermediate only the client has
    assert c.depth(chain[1], [root]) == 1


def test_non_ca_issuer_is_a_bad_chain(ca):
    a = ca.issue_cert("a.example")
    leaf = c.load_certificates(a.cert_chain_pems[0].bytes())[0]
    fake = c.Certificate(leaf.der, 1, leaf.subject, leaf.subject, leaf.subject_der,
                         leaf.issuer_der, leaf.not_before, leaf.not_after, False)
    assert "is not a CA" in (c.chain_problem([leaf, fake]) or "")


def test_pem_problems():
    with pytest.raises(c.CertificateError, match="without its END"):
        c.pem_blocks(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(c.CertificateError, match="base64"):
        c.pem_blocks(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
    with pytest.raises(c.CertificateError):
        c.parse(b"\x30\x03\x02\x01\x01")
    with pytest.raises(c.CertificateError, match="truncated"):
        c.parse(b"\x30\x82\x10\x00")
    assert c.load_certificates(b"just text\n") == []
    assert c.encrypted_key(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not c.encrypted_key(b"-----BEGIN PRIVATE KEY-----")

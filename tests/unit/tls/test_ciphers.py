"""ssl.cipher-list: OpenSSL's syntax mapped to the suites both backends know."""

from __future__ import annotations

import re
import subprocess

import pytest

from emberd.tls import ciphers


def names(text: str) -> list[str]:
    return [s.openssl for s in ciphers.select(text)]


def test_default_is_ecdhe_with_aead_only():
    chosen = ciphers.select(ciphers.DEFAULT)
    assert chosen and all(s.aead and "kECDHE" in s.tags for s in chosen)
    assert names(ciphers.DEFAULT) == [
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"]


def test_same_order_as_openssl_for_the_default():
    out = subprocess.run(["openssl", "ciphers", "-tls1_2", ciphers.DEFAULT],
                         capture_output=True, text=True, check=True).stdout.strip()
    ours = set(names(ciphers.DEFAULT))
    theirs = [n for n in out.split(":") if not n.startswith("TLS_")]
    assert set(theirs) == ours


def test_operators():
    assert names("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256") == [
        "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"]
    # "-" removes, a later term may add again; "!" removes for good
    assert names("AESGCM:-aRSA:ECDHE-RSA-AES128-GCM-SHA256") == [
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256"]
    assert "ECDHE-RSA-AES128-GCM-SHA256" not in names(
        "AESGCM:!aRSA:ECDHE-RSA-AES128-GCM-SHA256")
    # "+" moves to the end
    assert names("ECDHE+AESGCM:+AES256")[-2:] == ["ECDHE-ECDSA-AES256-GCM-SHA384",
                                                  "ECDHE-RSA-AES256-GCM-SHA384"]
    assert names("AES128-SHA AES256-SHA,@STRENGTH") == ["AES256-SHA", "AES128-SHA"]
    assert names("HIGH:!aNULL:!MD5:!RC4:!3DES:!kRSA:!kDHE:!SHA1:!SHA256:!SHA384:@SECLEVEL=2")


def test_mbedtls_names_are_accepted():
    assert names("TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256") == [
        "ECDHE-ECDSA-CHACHA20-POLY1305"]


@pytest.mark.parametrize("text, words", [
    ("EECDH+AESGCM:BOGUS", 'unknown cipher suite or alias "BOGUS"'),
    ("EECDH+FOO", 'alias "FOO" in "EECDH+FOO"'),
    ("TLS_AES_128_GCM_SHA256", "TLS 1.3 suite"),
    ("PSK:CAMELLIA", "selects no cipher suite"),
    ("@FOO", "unknown cipher-list command"),
    ("EECDH++AES", "malformed"),
])
def test_errors(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        ciphers.select(text)


def test_every_suite_exists_in_both_libraries():
    from mbedtls import tls

    available = set(tls.ciphers_available())
    assert {s.mbedtls for s in ciphers.SUITES} <= available
    out = subprocess.run(["openssl", "ciphers", "ALL:@SECLEVEL=0"], capture_output=True,
                         text=True, check=True).stdout.strip().split(":")
    assert {s.openssl for s in ciphers.SUITES} <= set(out)

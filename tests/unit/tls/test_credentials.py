"""Start-up checks of certificate files: fatal errors name the file; dates only warn."""

from __future__ import annotations

import datetime as dt

import pytest

from emberd.tls import endpoint as endpoint_module
from emberd.tls.errors import TlsSetupError

from .pki import Pki, endpoint

BACKENDS = ["mbedtls", "openssl"]


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


def tls(backend: str, pemfile, privkey=None, extra: str = "") -> str:
    key = f'ssl.privkey = "{privkey}"\n' if privkey else ""
    return f'ssl.engine = "enable"\nssl.backend = "{backend}"\nssl.pemfile = "{pemfile}"\n' \
           + key + extra


def problems(tmp_path, conf: str) -> str:
    with pytest.raises(TlsSetupError) as exc:
        endpoint(tmp_path, conf)
    return str(exc.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_key_that_does_not_match(tmp_path, pki, backend):
    a, b = pki.server("a"), pki.server("b")
    text = problems(tmp_path, tls(backend, a.chain, b.key))
    assert str(a.chain) in text and ("does not match" in text)
    assert f"emberd.conf:6:1: ssl.pemfile {a.chain}" in text or "emberd.conf:6:1: the private key" in text  # where it was configured


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreadable_missing_and_empty_files(tmp_path, pki, backend):
    leaf = pki.server("a")
    missing = tmp_path / "missing.pem"
    assert f"ssl.pemfile {missing}: cannot read it" in problems(tmp_path, tls(backend, missing))
    assert f"ssl.privkey {missing}: cannot read it" in problems(
        tmp_path, tls(backend, leaf.chain, missing))
    assert f"ssl.pemfile {leaf.chain}: no private key in it (set ssl.privkey" in problems(
        tmp_path, tls(backend, leaf.chain))
    assert f"ssl.pemfile {leaf.key}: no certificate in it" in problems(
        tmp_path, tls(backend, leaf.key))
    assert "needs ssl.ca-file" in problems(
        tmp_path, tls(backend, leaf.both, extra='ssl.verifyclient.activate = "enable"\n'))
    assert f"ssl.ca-file {leaf.key}: no certificate in it" in problems(
        tmp_path, tls(backend, leaf.both, extra=f'ssl.ca-file = "{leaf.key}"\n'
                                                 'ssl.verifyclient.activate = "enable"\n'))


def test_encrypted_key(tmp_path, pki):
    leaf = pki.server("a")
    enc = tmp_path / "enc.key"
    enc.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n"
                   "-----END ENCRYPTED PRIVATE KEY-----\n")
    assert "is encrypted" in problems(tmp_path, tls("mbedtls", leaf.chain, enc))


def test_chain_in_the_wrong_order(tmp_path, pki):
    mid = pki.ca.create_child_ca()
    leaf = mid.issue_cert("localhost")
    pems = [p.bytes() for p in leaf.cert_chain_pems]
    bad = tmp_path / "bad.pem"
    bad.write_bytes(pems[1] + pems[0] + leaf.private_key_pem.bytes())
    text = problems(tmp_path, tls("mbedtls", bad))
    assert f"ssl.pemfile {bad}: bad chain" in text
    good = tmp_path / "good.pem"
    good.write_bytes(pems[0] + pems[1] + leaf.private_key_pem.bytes())
    assert endpoint(tmp_path, tls("mbedtls", good)).default is not None


@pytest.mark.parametrize("backend", BACKENDS)
def test_expired_and_future_certificates_only_warn(tmp_path, pki, backend):
    now = dt.datetime.now(dt.UTC)
    for when, words in (((now - dt.timedelta(days=9), now - dt.timedelta(days=1)), "expired"),
                        ((now + dt.timedelta(days=1), now + dt.timedelta(days=9)),
                         "not valid before")):
        leaf = pki.server(f"dated-{words[:3]}", not_before=when[0], not_after=when[1])
        log: list[str] = []
        ep = endpoint(tmp_path, tls(backend, leaf.both), log=log)
        assert ep.default is not None
        assert any(words in line and "serving it anyway" in line and str(leaf.both) in line
                   for line in log), log


def test_every_problem_is_listed(tmp_path, pki):
    leaf = pki.server("a")
    conf = tls("mbedtls", tmp_path / "nope.pem") + \
        f'$HTTP["host"] == "b.example" {{ ssl.pemfile = "{tmp_path / "nope2.pem"}" }}\n' + \
        f'$HTTP["url"] =^ "/x" {{ ssl.pemfile = "{leaf.both}" }}\n'
    text = problems(tmp_path, conf)
    assert "nope.pem" in text and "nope2.pem" in text and '$HTTP["host"] == "b.example"' in text
    assert '$HTTP["url"] =^ "/x"' in text


def test_missing_library_is_named(tmp_path, pki, monkeypatch):
    def missing(name):
        raise ImportError(name)

    monkeypatch.setattr(endpoint_module, "backend", missing)
    leaf = pki.server("a")
    assert "python-mbedtls is not installed" in problems(tmp_path, tls("mbedtls", leaf.both))
    assert "this Python has no ssl module" in problems(tmp_path, tls("openssl", leaf.both))


def test_mbedtls_has_no_tls_1_3(tmp_path, pki):
    leaf = pki.server("a")
    text = problems(tmp_path, tls("mbedtls", leaf.both,
                                  extra='ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "TLSv1.3" )\n'))
    assert "Mbed TLS 2.28 has no TLS 1.3" in text


def test_sni_contexts_are_shared_and_built_at_start(tmp_path, pki):
    a, b = pki.server("a", "a.example"), pki.server("b", "b.example")
    conf = tls("mbedtls", a.both) + \
        f'$HTTP["host"] == "b.example" {{ ssl.pemfile = "{b.both}" }}\n' + \
        f'$HTTP["host"] == "c.example" {{ ssl.pemfile = "{b.both}" }}\n'
    ep = endpoint(tmp_path, conf)
    assert ep.context_for("b.example", "x") is ep.context_for("c.example", "x")
    assert ep.context_for("a.example", "x") is ep.default is ep.context_for(None, "x")

"""The ssl.* directives: types, defaults, refusals with file:line, misplaced keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from emberd.config.errors import ConfigError
from emberd.config.loader import load
from emberd.core.listeners import TlsListenError, tls_endpoints
from emberd.tls.settings import misplaced, settings_from


def conf(tmp_path: Path, text: str):
    path = tmp_path / "t.conf"
    path.write_text(f'server.document-root = "{tmp_path}"\n' + text)
    return load(str(path))


def test_defaults_and_port(tmp_path):
    c = conf(tmp_path, 'ssl.engine = "enable"\nssl.pemfile = "/x.pem"\n')
    assert c["server.port"] == 443
    s = settings_from(c.values)
    assert s.backend == "mbedtls" and s.min_version == "TLSv1.2" and s.max_version == "None"
    assert s.cipher_list == "EECDH+AESGCM:CHACHA20:!PSK:!DHE" and s.alpn == ("h2", "http/1.1")
    assert conf(tmp_path, "")["server.port"] == 80
    off = conf(tmp_path, 'server.feature-flags = ( "server.h2proto" => "disable" )\n')
    assert settings_from(off.values).alpn == ("http/1.1",)


def test_conf_cmd(tmp_path):
    c = conf(tmp_path, 'ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "tlsv1.3", '
                       '"CipherString" => "ECDHE+CHACHA20", "Options" => "x" )\n')
    s = settings_from(c.values)
    assert s.min_version == "TLSv1.3" and s.cipher_list == "ECDHE+CHACHA20"
    assert any('unknown key "Options"' in str(w) for w in c.warnings)


@pytest.mark.parametrize("line, words", [
    ('ssl.cipher-list = "EECDH+AESGCM:NOPE"', 'ssl.cipher-list: unknown cipher suite or alias "NOPE"'),
    ('ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "SSLv3" )', "SSL 3.0 is never offered"),
    ('ssl.openssl.ssl-conf-cmd = ( "MinProtocol" => "TLS1.2" )', "is not a protocol version"),
    ('ssl.honor-cipher-order = "disable"', "always prefers the server's cipher order"),
    ('ssl.disable-client-renegotiation = "disable"', "always refuses renegotiation"),
    ('ssl.backend = "gnutls"', '"gnutls" is not one of'),
    ('ssl.ca-crl-file = "/crl.pem"', "revocation lists are not checked"),
    ('ssl.stek-file = "/stek"', "not supported by emberd"),
    ('$HTTP["host"] == "a" { ssl.engine = "enable" }', "applies to a listening socket"),
    ('$HTTP["host"] == "a" { ssl.cipher-list = "HIGH" }', "applies to a listening socket"),
])
def test_refused_with_location(tmp_path, line, words):
    with pytest.raises(ConfigError) as exc:
        conf(tmp_path, line + "\n")
    assert words in str(exc.value) and "t.conf:2:" in str(exc.value)


def test_tls_modules_in_server_modules_are_accepted(tmp_path):
    c = conf(tmp_path, 'server.modules = ( "mod_openssl", "mod_mbedtls" )\n')
    assert c.module_names == ["mod_staticfile"]


def test_certificate_keys_only_where_the_handshake_can_decide(tmp_path):
    c = conf(tmp_path, '$HTTP["host"] == "a.example" { ssl.pemfile = "/a.pem" }\n'
                       '$HTTP["remoteip"] == "10.0.0.0/8" { ssl.verifyclient.activate = "enable" }\n'
                       '$SERVER["socket"] == ":8443" { $HTTP["host"] =~ "^b" {'
                       ' ssl.pemfile = "/b.pem" } }\n'
                       '$HTTP["url"] =^ "/admin" { ssl.verifyclient.activate = "enable" }\n'
                       '$HTTP["host"] == "c" { $HTTP["useragent"] =~ "x" { ssl.pemfile = "/c" } }\n')
    problems = list(misplaced(c))
    assert len(problems) == 2
    assert "t.conf:5:" in problems[0] and '$HTTP["url"] =^ "/admin"' in problems[0]
    assert "t.conf:6:" in problems[1] and "useragent" in problems[1]


def test_no_tls_listener_imports_nothing(tmp_path):
    c = conf(tmp_path, "")
    assert tls_endpoints(c, [":80"], lambda *a: None) == {}


def test_engine_without_pemfile_is_a_start_up_error(tmp_path):
    c = conf(tmp_path, 'ssl.engine = "enable"\n')
    with pytest.raises(TlsListenError, match=r"ssl\.pemfile is not set"):
        tls_endpoints(c, [":443"], lambda *a: None)


def test_a_build_without_tls_refuses_ssl_keys(tmp_path):
    """With emberd/tls/ left out (Buildroot's TLS choice "none"), ssl.* keys are errors and
    server.port stays 80 (run in a fresh interpreter: the schema is built at import)."""
    import subprocess
    import sys

    (tmp_path / "a.conf").write_text(f'server.document-root = "{tmp_path}"\n'
                                     'ssl.engine = "enable"\n')
    (tmp_path / "b.conf").write_text(f'server.document-root = "{tmp_path}"\n'
                                     'server.modules = ( "mod_openssl" )\n')
    (tmp_path / "c.conf").write_text(f'server.document-root = "{tmp_path}"\n')
    code = f"""
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "emberd.tls" or name.startswith("emberd.tls."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
from emberd.config.errors import ConfigError
from emberd.config.loader import load
for name in "ab":
    try:
        load("{tmp_path}/" + name + ".conf")
    except ConfigError as exc:
        print(exc)
print("port", load("{tmp_path}/c.conf")["server.port"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "ssl.engine: TLS support is not part of this build" in out
    assert "mod_openssl: TLS is not part of this build" in out
    assert "port 80" in out

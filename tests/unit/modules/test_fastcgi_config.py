"""fastcgi.server as lighttpd writes it: parsed once, every host key checked with file:line."""

from __future__ import annotations

import signal

import pytest

from emberd.config.errors import ConfigError, ConfigErrors
from emberd.config.loader import load

HEAD = 'server.document-root = "/srv"\nserver.modules = ( "mod_fastcgi" )\n'


def cfg(text: str):
    return load("t.conf", HEAD + text)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        cfg(text)
    err = exc.value
    return [str(e) for e in (err.errors if isinstance(err, ConfigErrors) else [err])]


def test_extension_and_prefix_entries_with_defaults():
    c = cfg('fastcgi.server = ( ".php" => ( "php" => ( "bin-path" => "/usr/bin/php-cgi",\n'
            '    "socket" => "/run/php.sock", "max-procs" => 1,\n'
            '    "bin-environment" => ( "A" => "1" ), "bin-copy-environment" => ( "PATH" ) ) ),\n'
            '  "/api/" => ( ( "host" => "127.0.0.1", "port" => 9000, "check-local" => "disable",\n'
            '    "keep-conn" => "disable", "x-sendfile" => "enable",\n'
            '    "x-sendfile-docroot" => ( "/var/www" ) ) ) )\n')
    php, api = c["fastcgi.server"]
    assert php.key == ".php" and api.key == "/api/"
    h = php.backends[0].host
    assert (h.label, h.socket, h.bin_path, h.min_procs, h.max_procs) == \
        ("php", "/run/php.sock", "/usr/bin/php-cgi", 1, 1)
    assert h.bin_environment == (("A", "1"),) and h.bin_copy_environment == ("PATH",)
    assert h.kill_signal == signal.SIGTERM and h.connect_timeout == 8 and h.keep_conn
    assert php.backends[0].check_local
    b = api.backends[0]
    assert (b.host.host, b.host.port, b.check_local, b.host.keep_conn) == \
        ("127.0.0.1", 9000, False, False)
    assert b.x_sendfile and b.x_sendfile_docroot == ("/var/www/",)
    assert b.host.bin_copy_environment is None  # absent: the whole environment
    assert c["fastcgi.balance"] == "fair"


def test_bin_path_defaults_to_localhost():
    c = cfg('fastcgi.server = ( ".php" => ( ( "bin-path" => "/x", "port" => 9000 ) ) )\n')
    assert c["fastcgi.server"][0].backends[0].host.host == "127.0.0.1"


@pytest.mark.parametrize("host, message", [
    ('"max_procs" => 2, "socket" => "/s"', 'unknown key "max_procs"'),
    ('"port" => 9000', 'needs "socket", or "host" and "port"'),
    ('"host" => "127.0.0.1"', 'needs "port"'),
    ('"socket" => "rel.sock"', "must be an absolute path"),
    ('"socket" => "/s", "mode" => "authorizer"', "authorizer\" is not supported"),
    ('"socket" => "/s", "upgrade" => "enable"', '"upgrade" is not supported'),
    ('"socket" => "/s", "max-procs" => 0', "out of range"),
    ('"socket" => "/s", "check-local" => "maybe"', '"check-local": expected "enable"'),
    ('"socket" => "/s", "x-sendfile-docroot" => ( "www" )', "must be absolute"),
])
def test_host_errors_name_the_line(host, message):
    found = errors(f'\nfastcgi.server = ( ".php" => ( "php" => ( {host} ) ) )\n')
    assert len(found) == 1
    assert "t.conf:4" in found[0] and "fastcgi.server" in found[0] and message in found[0], found


def test_shape_errors():
    assert 'expected ( "label"' in errors('fastcgi.server = ( ".php" => ( "x" => "y" ) )\n')[0]
    assert "list of key => list" in errors('fastcgi.server = ( ".php" => "x" )\n')[0]


def test_balance_choices_and_map_extensions():
    assert "is not one of" in errors('fastcgi.balance = "random"\n')[0]
    c = cfg('fastcgi.map-extensions = ( ".php3" => ".php" )\n')
    assert c["fastcgi.map-extensions"] == {".php3": ".php"}


def test_conditional_entries():
    c = cfg('$HTTP["url"] =^ "/api/" {\n'
            '  fastcgi.server = ( "/api/" => ( ( "socket" => "/run/api.sock" ) ) )\n}\n')
    assert c["fastcgi.server"] == ()
    (value, loc), = c.assigned("fastcgi.server")
    assert value[0].backends[0].host.socket == "/run/api.sock" and loc.line == 4

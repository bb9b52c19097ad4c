"""Schema validation: types, ranges, scopes, defaults, modules and unknown keys."""

from __future__ import annotations

import pytest

from emberd.config import catalog
from emberd.config.directives import CORE, chunk_size
from emberd.config.errors import ConfigError, ConfigErrors
from emberd.config.loader import load
from emberd.config.schema import Directive, Scope, Type, ValueProblem, coerce, to_bool

ROOT = 'server.document-root = "/srv"\n'


def cfg(text: str):
    return load("t.conf", ROOT + text)


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        cfg(text)
    err = exc.value
    found = err.errors if isinstance(err, ConfigErrors) else [err]
    return [str(e) for e in found]


def warnings(text: str) -> list[str]:
    return [str(w) for w in cfg(text).warnings]


def test_every_core_directive_has_a_default_of_its_type():
    config = cfg("")
    for d in CORE:
        value = config[d.key]
        expected = {Type.BOOL: bool, Type.SHORT: int, Type.INT: int, Type.STRING: str,
                    Type.LIST: tuple, Type.KVSTRING: dict, Type.KVLIST: dict,
                    Type.KVANY: dict}[d.type]
        assert isinstance(value, expected), d.key
        assert d.doc and d.key.count(".") >= 1


def test_lighttpd_defaults():
    c = cfg("")
    assert c["server.port"] == 80
    assert c["server.max-request-field-size"] == 8192
    assert c["server.max-keep-alive-requests"] == 1000
    assert c["server.max-keep-alive-idle"] == 5
    assert c["server.max-read-idle"] == 60
    assert c["server.max-write-idle"] == 360
    assert c["server.chunkqueue-chunk-sz"] == 8192
    assert c["server.upload-temp-file-size"] == 1048576
    assert c["server.max-request-size"] == 0
    assert c["server.stream-request-body"] == 0
    assert c["server.feature-flags"]["server.h2proto"] is True
    assert c["server.feature-flags"]["server.h2c"] is False
    assert c["server.feature-flags"]["server.graceful-shutdown-timeout"] == 8
    assert c["server.http-parseopts"]["url-path-dotseg-remove"] is True
    assert c["mimetype.assign"][".html"] == "text/html"
    assert c["emberd.maintenance-interval"] == 64
    assert c["emberd.body-memory-max"] == 65536
    assert c["emberd.malloc-arena-max"] == 2


def test_derived_defaults():
    c = cfg("server.max-fds = 1000\n")
    assert c["server.max-connections"] == 100  # max-fds / 10 with HTTP/2
    assert c["emberd.request-pool-size"] == 100
    assert c["emberd.malloc-top-pad"] == 524288
    c = cfg('server.max-fds = 1000\nserver.feature-flags = ("server.h2proto" => "disable")\n')
    assert c["server.max-connections"] == 333  # / 3 without
    c = cfg("server.max-connections = 16\n")
    assert c["emberd.malloc-top-pad"] == 131072  # lighttpd's small-system top pad
    assert c["emberd.request-pool-size"] == 16


def test_upload_dirs_default_follows_tmpdir(monkeypatch):
    monkeypatch.setenv("TMPDIR", "/tmp/x")
    assert cfg("")["server.upload-dirs"] == ("/tmp/x",)
    monkeypatch.delenv("TMPDIR")
    assert cfg("")["server.upload-dirs"] == ("/var/tmp",)


@pytest.mark.parametrize(
    ("value", "size"),
    [(0, 8192), (1, 1024), (1024, 1024), (1025, 2048), (4096, 4096), (5000, 8192)],
)
def test_chunk_size_rounding(value, size):
    assert chunk_size(value) == size
    assert cfg(f"server.chunkqueue-chunk-sz = {value}\n")["server.chunkqueue-chunk-sz"] == size


@pytest.mark.parametrize(
    ("raw", "value"),
    [("enable", True), ("Enabled", True), ("TRUE", True), ("1", True), (1, True), (7, True),
     ("disable", False), ("disabled", False), ("False", False), ("0", False), (0, False),
     ("yes", None), ("", None)],
)
def test_booleans(raw, value):
    assert to_bool(raw) is value


def test_short_accepts_digit_strings_and_clamps_65536():
    assert cfg('server.port = "8080"\n')["server.port"] == 8080
    assert cfg("server.max-keep-alive-requests = 65536\n")["server.max-keep-alive-requests"] == 65535


def test_env_values_for_numbers(monkeypatch):
    monkeypatch.setenv("PORT", "8081")
    assert cfg("server.port = env.PORT\n")["server.port"] == 8081


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('server.port = "http"', 'server.port: expected an integer 0..65535, found string "http"'),
        ("server.port = 70000", "server.port: 70000 is out of range 0..65535"),
        ("server.max-fds = 16", "server.max-fds: 16 fds is out of range 32..1048576"),
        ("server.stream-request-body = 3", "server.stream-request-body: 3 is out of range 0..2"),
        ("server.tag = 5", 'server.tag: expected a string like server.tag = "...", found integer 5'),
        ('server.follow-symlink = "maybe"', 'expected "enable" or "disable", found string "maybe"'),
        ('server.modules = "mod_access"', "server.modules: expected a list of strings like"),
        ('server.modules = ( "k" => "v" )', "server.modules: expected a list of strings"),
        ('mimetype.assign = ( ".a", ".b" )', "mimetype.assign: expected a list of key => string"),
        ('server.feature-flags = ( "x" )', "server.feature-flags: expected a list of key => value"),
        ('server.feature-flags = ( "server.h2c" => "maybe" )',
         'server.feature-flags: "server.h2c": expected "enable" or "disable"'),
        ('server.event-handler = "kqueue"', '"kqueue" is not one of "linux-sysepoll"'),
        ('server.stat-cache-engine = "fam"', '"fam" is not one of'),
        ("server.max-worker = 4", "server.max-worker: 4 is out of range 0..0"),
        ("emberd.maintenance-interval = 0", "emberd.maintenance-interval: 0 s is out of range"),
        ("emberd.chunk-slab-size = 4096\nserver.chunkqueue-chunk-sz = 8192",
         "emberd.chunk-slab-size must be at least server.chunkqueue-chunk-sz"),
    ],
)
def test_value_errors_name_the_line(text, message):
    found = errors(text)
    assert any(message in e for e in found), found
    assert all(e.startswith("t.conf:") for e in found)


def test_all_errors_are_reported_in_file_order():
    found = errors('server.port = "x"\nserver.tag = 1\n$HTTP["url"] == "/" { server.port = 1 }\n')
    assert [e.split(": ")[0] for e in found] == ["t.conf:2:1", "t.conf:3:1", "t.conf:4:23"]


def test_document_root_is_required():
    with pytest.raises(ConfigError, match=r"server\.document-root is not set"):
        load("t.conf", "server.port = 80\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('$HTTP["url"] == "/" { server.port = 8080 }', "server.port applies to the whole server"),
        ('$HTTP["url"] == "/" { server.listen-backlog = 8 }',
         "server.listen-backlog applies to a listening socket"),
        ('$SERVER["socket"] != ":80" { server.listen-backlog = 8 }',
         "server.listen-backlog applies to a listening socket"),
    ],
)
def test_scope_errors(text, message):
    assert any(message in e for e in errors(text))


def test_socket_scope_in_a_socket_block_and_request_scope_anywhere():
    c = cfg('$SERVER["socket"] == ":81" { server.listen-backlog = 8\n'
            '  $HTTP["url"] =^ "/x" { server.max-request-size = 1 } }\n')
    assert c.blocks[1].values == {"server.listen-backlog": 8}
    assert c.blocks[2].values == {"server.max-request-size": 1}


def test_unknown_keys_are_warnings_with_a_hint():
    found = warnings('server.tagg = "x"\nfoo.bar = 1\n')
    assert found == ["t.conf:2:1: unknown config-key: server.tagg (ignored) (did you mean server.tag?)",
                     "t.conf:3:1: unknown config-key: foo.bar (ignored)"]


def test_variables_are_not_unknown_keys():
    assert warnings('var.x = 1\ny = "z"\n') == []


def test_unknown_feature_flag_is_a_warning():
    found = warnings('server.feature-flags = ( "server.nope" => "enable" )\n')
    assert 'unknown key "server.nope"' in found[0]


def test_feature_flags_merge_with_defaults():
    c = cfg('server.feature-flags += ( "server.h2c" => "enable" )\n'
            'server.feature-flags += ( "server.graceful-shutdown-timeout" => 3 )\n')
    ff = c["server.feature-flags"]
    assert (ff["server.h2c"], ff["server.graceful-shutdown-timeout"], ff["server.h2proto"]) == (
        True, 3, True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('cgi.assign = ( ".pl" => "/usr/bin/perl" )',
         "cgi.assign: mod_cgi is not supported by emberd (run the program as a FastCGI backend"),
        ('server.modules = ( "mod_cgi" )', "server.modules: mod_cgi is not supported by emberd"),
        ('server.modules = ( "mod_nope" )', "server.modules: unknown module mod_nope"),
        ('proxy.server = ( )', "proxy.server: mod_proxy is not supported by emberd"),
    ],
)
def test_unsupported_modules_are_fatal(text, message):
    assert any(message in e for e in errors(text))


def test_module_left_out_of_the_build(monkeypatch):
    # a module emberd implements whose file was deleted by a trimmed build
    fake = catalog.Component("mod_fake", ("fake.",), "emberd.modules.fake_missing")
    monkeypatch.setattr(catalog, "COMPONENTS", (*catalog.COMPONENTS, fake))
    monkeypatch.setattr(catalog, "_BY_NAME", {**catalog._BY_NAME, "mod_fake": fake})
    found = errors('server.modules = ( "mod_fake" )\nfake.key = 1\n')
    assert any("server.modules: mod_fake is not part of this build" in e for e in found)
    assert any("fake.key: mod_fake is not part of this build" in e for e in found)


def test_h2_module_name_is_accepted():
    assert cfg('server.modules = ( "mod_h2" )\n').module_names == ["mod_staticfile"]


def test_duplicate_module_is_a_warning():
    found = warnings('server.modules = ( "mod_h2", "mod_h2" )\n')
    assert "listed twice" in found[0]


def test_max_connections_reduced_to_a_tenth_of_max_fds():
    c = cfg("server.max-fds = 100\nserver.max-connections = 50\n")
    assert c["server.max-connections"] == 10
    assert "reducing server.max-connections (50)" in str(c.warnings[0])


def test_coerce_directly():
    d = Directive("x.y", Type.INT, Scope.REQUEST, 0, "doc", min=1, max=10, unit="s")
    assert coerce(d, "5", print) == 5
    with pytest.raises(ValueProblem, match=r"11 s is out of range 1\.\.10"):
        coerce(d, 11, print)

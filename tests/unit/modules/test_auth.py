"""mod_auth: auth.require as lighttpd writes it, Digest computations, nonces, the check itself.

The check runs on Requests made here, with the configuration loaded from
text and a small stand-in for the Runtime; the real server is exercised in
tests/integration/test_auth.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from pathlib import Path

import pytest

from emberd.config.errors import ConfigError, ConfigErrors
from emberd.config.loader import load
from emberd.http.message import Request, Response
from emberd.modules import auth
from emberd.modules.auth import (
    NONCE_FOREIGN,
    NONCE_OK,
    NONCE_STALE,
    Delayed,
    check_nonce,
    make_nonce,
    parse_params,
    response_digest,
)

HEAD = ('server.document-root = "/srv"\n'
        'server.modules = ( "mod_auth", "mod_authn_file" )\n')


def cfg(text: str, head: str = HEAD):
    return load("t.conf", head + text)


def errors(text: str, head: str = HEAD) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        cfg(text, head)
    err = exc.value
    return [str(e) for e in (err.errors if isinstance(err, ConfigErrors) else [err])]


def warnings(text: str) -> list[str]:
    return [str(w) for w in cfg(text).warnings]


BACKEND = 'auth.backend = "htpasswd"\nauth.backend.htpasswd.userfile = "/nonexistent/htpasswd"\n'


# -- configuration ---------------------------------------------------------------------------


def test_require_table_is_parsed_once_in_file_order():
    c = cfg(BACKEND.replace("htpasswd", "htdigest") +
            'auth.require = ( "/admin/" => ( "method" => "digest", "realm" => "R",\n'
            '    "require" => "user=a|user=b|group=ops", "algorithm" => "MD5|SHA-256",\n'
            '    "nonce_secret" => "s3", "userhash" => "enable" ),\n'
            '  "/" => ( "method" => "basic", "realm" => "", "require" => "valid-user" ) )\n')
    admin, root = c["auth.require"]
    assert (admin.prefix, admin.method, admin.realm) == ("/admin/", "digest", "R")
    assert admin.users == {"a", "b"} and admin.groups == {"ops"} and not admin.valid_user
    assert admin.algorithms == ("SHA-256", "MD5")  # the stronger challenge first
    assert admin.nonce_secret == b"s3" and admin.userhash
    assert (root.prefix, root.method, root.realm, root.valid_user) == ("/", "basic", "", True)
    assert root.algorithms == ("MD5",) and root.nonce_secret is None and not root.userhash


@pytest.mark.parametrize("entry, message", [
    ('"method" => "basic", "realm" => "R", "require" => "valid-user", "methd" => "x"',
     'unknown key "methd"'),
    ('"method" => "extern", "realm" => "R", "require" => "valid-user"',
     '"extern" is not supported by emberd'),
    ('"method" => "Basic", "realm" => "R", "require" => "valid-user"',
     'is not one of "basic" | "digest"'),
    ('"method" => "basic", "require" => "valid-user"', '"realm" is missing'),
    ('"realm" => "R", "require" => "valid-user"', '"method" is missing'),
    ('"method" => "basic", "realm" => "R", "require" => ""', '"require" is missing or empty'),
    ('"method" => "basic", "realm" => "R", "require" => "user"', 'missing "="'),
    ('"method" => "basic", "realm" => "R", "require" => "user="', 'nothing after "="'),
    ('"method" => "basic", "realm" => "R", "require" => "valid-user|user=a"',
     "valid-user cannot be combined"),
    ('"method" => "basic", "realm" => "R", "require" => "role=admin"', 'unknown rule "role"'),
    ('"method" => "digest", "realm" => "R", "require" => "valid-user", "algorithm" => "SHA-1"',
     '"SHA-1" is not a Digest algorithm'),
    ('"method" => "digest", "realm" => "R", "require" => "valid-user", '
     '"algorithm" => "SHA-512-256"', "emberd implements MD5 and SHA-256"),
    ('"method" => "basic", "realm" => "R", "require" => "valid-user", "userhash" => "maybe"',
     '"userhash": expected "enable"'),
    ('"method" => ( "basic" ), "realm" => "R", "require" => "valid-user"',
     '"method": expected a string'),
])
def test_require_errors_name_the_line(entry, message):
    found = errors(BACKEND + 'auth.backend.plain.userfile = "/p"\n\n'
                   f'auth.require = ( "/p/" => ( {entry} ) )\n')
    assert len(found) == 1, found
    assert "t.conf:7:" in found[0] and "auth.require" in found[0] and '"/p/"' in found[0]
    assert message in found[0], found


def test_require_shape_errors():
    assert "expected a list of key => list" in \
        errors(BACKEND + 'auth.require = ( "/p/" => "basic" )\n')[0]
    assert 'expected ( "method"' in \
        errors(BACKEND + 'auth.require = ( "/p/" => ( "basic", "R" ) )\n')[0]


def test_backend_must_be_one_of_the_file_backends():
    found = errors('auth.backend = "ldap"\n')
    assert "t.conf:3" in found[0] and '"ldap" is not supported by emberd' in found[0]
    assert '"htpasswd", "htdigest" or "plain"' in found[0]
    found = errors('auth.backend.ldap.hostname = "localhost"\n')
    assert "mod_authn_ldap is not supported by emberd" in found[0]


def test_cross_checks():
    # auth.require without any auth.backend
    found = errors('auth.require = ( "/p/" => ( "method" => "basic", "realm" => "R", '
                   '"require" => "valid-user" ) )\n')
    assert found == ['t.conf:3:1: auth.require: auth.backend is not set (use "htpasswd", '
                     '"htdigest" or "plain")']
    # a backend without its user file
    found = errors('auth.backend = "htdigest"\n')
    assert found == ['t.conf:3:1: auth.backend "htdigest" needs auth.backend.htdigest.userfile']
    # Digest with the only backend being htpasswd
    found = errors(BACKEND + 'auth.require = ( "/p/" => ( "method" => "digest", '
                   '"realm" => "R", "require" => "valid-user" ) )\n')
    assert len(found) == 1 and "t.conf:5" in found[0]
    assert '"method" => "digest" cannot work with auth.backend "htpasswd"' in found[0]


def test_htpasswd_backend_needs_mod_authn_file():
    found = errors(BACKEND, head='server.document-root = "/srv"\n'
                   'server.compat-module-load = "disable"\n'
                   'server.modules = ( "mod_auth" )\n')
    assert any('auth.backend "htpasswd" needs mod_authn_file' in e for e in found), found


def test_compat_module_load_adds_the_partner_module():
    c = cfg(BACKEND, head='server.document-root = "/srv"\nserver.modules = ( "mod_auth" )\n')
    assert "mod_authn_file" in c.module_names
    c = cfg(BACKEND, head='server.document-root = "/srv"\n'
            'server.modules = ( "mod_authn_file" )\n')
    assert c.module_names[0] == "mod_auth"


def test_warnings(tmp_path):
    found = warnings(BACKEND + 'auth.require = (\n'
                     '  "/a" => ( "method" => "basic", "realm" => "R", "require" => "valid-user" ),\n'
                     '  "/a/b" => ( "method" => "basic", "realm" => "R", "require" => "host=x" ),\n'
                     '  "c" => ( "method" => "basic", "realm" => "R", "require" => "valid-user" ) )\n')
    text = "\n".join(found)
    assert 't.conf:4:1: auth.backend.htpasswd.userfile: "/nonexistent/htpasswd" does not ' \
           "exist" in text and "emberd-passwd /nonexistent/htpasswd USER" in text
    assert '"/a/b" never matches: "/a" comes first' in text
    assert '"host=" rules are not implemented' in text
    assert '"c" never matches: URL paths start with "/"' in text


def test_feature_flags():
    c = cfg(BACKEND)
    flags = c["server.feature-flags"]
    assert flags["auth.delay-invalid-creds"] and flags["auth.http-goaway-invalid-creds"]
    c = cfg(BACKEND + 'server.feature-flags = ( "auth.delay-invalid-creds" => "disable" )\n')
    assert not c["server.feature-flags"]["auth.delay-invalid-creds"]


def test_conditional_require():
    c = cfg(BACKEND + '$HTTP["host"] == "a" {\n  auth.require = ( "/" => ( "method" => '
            '"basic", "realm" => "R", "require" => "user=x" ) )\n}\n')
    assert c["auth.require"] == ()
    (value, loc), = c.assigned("auth.require")
    assert value[0].users == {"x"} and loc.line == 6


# -- Digest -------------------------------------------------------------------------------


def test_rfc7616_example():
    """RFC 7616 3.9.1: Mufasa's request, in MD5 and SHA-256."""
    nonce = b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
    cnonce = b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    args = ("GET", b"/dir/index.html", nonce, b"00000001", cnonce, b"auth")
    for algorithm, expect in (
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")):
        a1 = auth.ha1(algorithm, b"Mufasa", b"http-auth@example.org", b"Circle of Life")
        assert response_digest(algorithm, a1, *args) == expect


@pytest.mark.parametrize("algorithm, h", [("MD5", hashlib.md5), ("SHA-256", hashlib.sha256)])
def test_digest_computed_independently(algorithm, h):
    def H(data: bytes) -> bytes:  # RFC notation
        return h(data).hexdigest().encode()

    a1 = H(b"jorg:Realm:pa:ss")
    a2 = H(b"POST:/x?y=1")
    assert auth.ha1(algorithm, b"jorg", b"Realm", b"pa:ss") == a1.decode()
    full = H(a1 + b":n1:0000000a:c1:auth:" + a2)
    assert response_digest(algorithm, a1.decode(), "POST", b"/x?y=1", b"n1", b"0000000a",
                           b"c1", b"auth") == full.decode()
    old = H(a1 + b":n1:" + a2)  # RFC 2069: no qop
    assert response_digest(algorithm, a1.decode(), "POST", b"/x?y=1", b"n1", b"", b"", b"") \
        == old.decode()
    sess_a1 = H(a1 + b":n1:c1")
    assert response_digest(algorithm, a1.decode(), "POST", b"/x?y=1", b"n1", b"0000000a",
                           b"c1", b"auth", sess=True) == \
        H(sess_a1 + b":n1:0000000a:c1:auth:" + a2).decode()
    assert auth.userhash(algorithm, b"jorg", b"Realm") == H(b"jorg:Realm").decode()


def test_parse_params():
    p = parse_params('username="Mufasa", realm="a \\"quoted\\" realm",nonce=abc ,  '
                     'uri="/dir/index.html", qop=auth, nc=00000001, cnonce="x,y", '
                     'response="0a"')
    assert p == {"username": "Mufasa", "realm": 'a "quoted" realm', "nonce": "abc",
                 "uri": "/dir/index.html", "qop": "auth", "nc": "00000001", "cnonce": "x,y",
                 "response": "0a"}
    assert parse_params('username="x", realm="unterminated') == {"username": "x"}
    assert parse_params("") == {}


def test_nonces():
    key = b"k"
    now = 1_700_000_000
    n = make_nonce(key, now, 0x1234)
    assert n.startswith(f"{now:x}:00001234:") and len(n.split(":")[2]) == 32
    assert check_nonce(key, n, now) == NONCE_OK
    assert check_nonce(key, n, now + auth.NONCE_TTL) == NONCE_OK
    assert check_nonce(key, n, now + auth.NONCE_TTL + 1) == NONCE_STALE  # expired
    assert check_nonce(key, n, now - 1) == NONCE_STALE  # from the future
    assert check_nonce(b"other", n, now) == NONCE_FOREIGN  # another secret
    ts, _, mac = n.split(":")
    assert check_nonce(key, f"{ts}:00001235:{mac}", now) == NONCE_FOREIGN  # tampered
    assert check_nonce(key, f"{now:x}:{mac}", now) == NONCE_FOREIGN  # lighttpd's layout
    assert check_nonce(key, "garbage", now) == NONCE_STALE  # as lighttpd: unreadable = stale


# -- the check ---------------------------------------------------------------------------------


class FakeRuntime:
    def __init__(self, config) -> None:  # type: ignore[no-untyped-def]
        self.config = config
        self.features = config["server.feature-flags"]
        self.logged: list[str] = []
        self.plugins = [cls(self) for cls in config.plugins]

    def log(self, where: str, message: str) -> None:
        self.logged.append(message)


@pytest.fixture
def site(tmp_path: Path):
    """check(path, authorization, method) -> Response | None, with users alice/secret."""
    import hashlib as _h

    (tmp_path / "htdigest").write_text(
        "alice:R:" + _h.md5(b"alice:R:secret").hexdigest() + "\n"
        "alice:R:" + _h.sha256(b"alice:R:secret").hexdigest() + "\n")
    (tmp_path / "plain").write_text("alice:secret\nbob:pw\n")
    (tmp_path / "groups").write_text("ops: bob\n")
    config = load("t.conf", HEAD + f'''
auth.backend = "htdigest"
auth.backend.htdigest.userfile = "{tmp_path}/htdigest"
auth.backend.plain.userfile = "{tmp_path}/plain"
auth.backend.plain.groupfile = "{tmp_path}/groups"
auth.require = ( "/d/" => ( "method" => "digest", "realm" => "R", "require" => "valid-user",
                            "algorithm" => "MD5|SHA-256" ),
                 "/ops/" => ( "method" => "basic", "realm" => "R", "require" => "group=ops" ),
                 "/b/" => ( "method" => "basic", "realm" => "R", "require" => "user=alice" ) )
$HTTP["url"] =^ "/ops/" {{ auth.backend = "plain" }}
$HTTP["url"] =^ "/missing/" {{
  auth.backend.htdigest.userfile = "{tmp_path}/nothing"
  auth.require = ( "/" => ( "method" => "basic", "realm" => "R", "require" => "valid-user" ) )
}}
''')
    rt = FakeRuntime(config)
    plugin = rt.plugins[0]

    def check(path: str, authorization: str | None = None, method: str = "GET",
              target: str | None = None) -> tuple[Request, Response | None]:
        headers = [("authorization", authorization)] if authorization else []
        req = Request(method, target or path, "1.1", headers)
        req.path = path
        req.remote_addr = "192.0.2.1"
        req.conf, req.match = config.for_request(req)
        return req, plugin.uri_clean(req)

    check.rt = rt  # type: ignore[attr-defined]
    return check


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def digest(challenge: str, user: str, password: str, uri: str, algorithm: str = "MD5",
           method: str = "GET", nonce: str | None = None) -> str:
    p = parse_params(challenge.removeprefix("Digest "))
    n = nonce or p["nonce"]
    a1 = auth.ha1(algorithm, user.encode(), p["realm"].encode(), password.encode())
    resp = response_digest(algorithm, a1, method, uri.encode(), n.encode(), b"00000001",
                           b"cn", b"auth")
    return (f'Digest username="{user}", realm="{p["realm"]}", nonce="{n}", uri="{uri}", '
            f'algorithm={algorithm}, qop=auth, nc=00000001, cnonce="cn", response="{resp}"')


def test_unprotected_paths_pass(site):
    req, resp = site("/public/x")
    assert resp is None and req.user == ""


def test_basic(site):
    _, resp = site("/b/x")
    assert resp is not None and resp.status == 401
    assert resp.header("www-authenticate") == 'Basic realm="R", charset="UTF-8"'
    # htdigest holds MD5 and SHA-256 lines: Basic checks against either
    req, resp = site("/b/x", basic("alice", "secret"))
    assert resp is None and req.user == "alice" and req.env["AUTH_TYPE"] == "Basic"
    req, resp = site("/b/x", basic("alice", "wrong"))
    assert isinstance(resp, Delayed) and resp.status == 401 and not req.keep_alive
    assert "password doesn't match for /b/x username: alice IP: 192.0.2.1" in \
        site.rt.logged[-1]
    _, resp = site("/b/x", "Basic %%%")
    assert resp is not None and resp.status == 400
    _, resp = site("/b/x", "Basic " + base64.b64encode(b"alice").decode())
    assert resp is not None and resp.status == 400


def test_groups(site):
    req, resp = site("/ops/x", basic("bob", "pw"))
    assert resp is None and req.user == "bob"
    req, resp = site("/ops/x", basic("alice", "secret"))  # right password, not in ops
    assert isinstance(resp, Delayed) and "not allowed" in site.rt.logged[-1]


def test_digest(site):
    _, resp = site("/d/x")
    assert resp is not None and resp.status == 401
    sha, md5 = resp.headers
    assert sha[1].startswith('Digest realm="R", charset="UTF-8", algorithm=SHA-256, nonce="')
    assert md5[1].startswith('Digest realm="R", charset="UTF-8", algorithm=MD5, nonce="')
    assert sha[1].endswith('", qop="auth"')
    for algorithm, challenge in (("SHA-256", sha[1]), ("MD5", md5[1])):
        req, resp = site("/d/x", digest(challenge, "alice", "secret", "/d/x", algorithm))
        assert resp is None and req.user == "alice" and req.env["AUTH_TYPE"] == "Digest"
    req, resp = site("/d/x", digest(md5[1], "alice", "bad", "/d/x"))
    assert isinstance(resp, Delayed) and not req.keep_alive
    req, resp = site("/d/x", digest(md5[1], "mallory", "secret", "/d/x"))
    assert isinstance(resp, Delayed) and "unknown user" in site.rt.logged[-1]
    # the digest is for another request-target: 400, as lighttpd
    _, resp = site("/d/x", digest(md5[1], "alice", "secret", "/d/y"))
    assert resp is not None and resp.status == 400
    # for the same target, but another method: a wrong password
    _, resp = site("/d/x", digest(md5[1], "alice", "secret", "/d/x", method="PUT"))
    assert isinstance(resp, Delayed)


def test_stale_and_foreign_nonces(site):
    _, resp = site("/d/x")
    assert resp is not None
    md5 = resp.headers[1][1]
    old = make_nonce(auth._PROCESS_SECRET, int(time.time()) - auth.NONCE_TTL - 5)
    req, resp = site("/d/x", digest(md5, "alice", "secret", "/d/x", nonce=old))
    assert resp is not None and resp.status == 401 and not isinstance(resp, Delayed)
    assert req.keep_alive  # not a failed login: the client retries with the new nonce
    (_, value), = resp.headers  # only the algorithm the client used
    assert "algorithm=MD5" in value and value.endswith(", stale=true")
    # expired and a wrong password: still only stale (lighttpd checks the age first)
    _, resp = site("/d/x", digest(md5, "alice", "bad", "/d/x", nonce=old))
    assert resp is not None and "stale=true" in resp.headers[0][1]
    # a nonce of another process (another secret): stale for the right password...
    foreign = make_nonce(b"another process", int(time.time()))
    _, resp = site("/d/x", digest(md5, "alice", "secret", "/d/x", nonce=foreign))
    assert resp is not None and "stale=true" in resp.headers[0][1]
    # ... and a failed login for a wrong one
    _, resp = site("/d/x", digest(md5, "alice", "bad", "/d/x", nonce=foreign))
    assert isinstance(resp, Delayed)


def test_missing_user_file_is_503_with_the_command(site):
    _, resp = site("/missing/x")
    assert resp is not None and resp.status == 503
    assert "create it with: emberd-passwd --digest REALM" in site.rt.logged[-1]
    assert "/nothing USER" in site.rt.logged[-1]
    _, resp = site("/missing/x", basic("alice", "secret"))
    assert resp is not None and resp.status == 503


def test_delayed_response_fires_later_and_cancels():
    class Sink:
        paused = False

        def __init__(self) -> None:
            self.events: list[tuple[str, float]] = []

        def head(self, resp: Response) -> None:
            self.events.append((f"head {resp.status} {resp.body_length()}", time.monotonic()))

        def data(self, data: bytes) -> None: ...

        def end(self) -> None:
            self.events.append(("end", time.monotonic()))

        def fail(self, status: int) -> None: ...

        def want_body(self) -> None: ...

    async def scenario() -> tuple[list[tuple[str, float]], list[tuple[str, float]], float]:
        fired, aborted = Sink(), Sink()
        start = time.monotonic()
        Delayed(Response(401, [], [b"body"]), 0.2).start(fired)
        d = Delayed(Response(401, [], [b"body"]), 0.1)
        d.start(aborted)
        d.abort()
        await asyncio.sleep(0.3)
        return fired.events, aborted.events, start

    fired, aborted, start = asyncio.run(scenario())
    assert [e for e, _ in fired] == ["head 401 4", "end"]
    assert fired[0][1] - start >= 0.2
    assert aborted == []


def test_crypt_hash_without_libcrypt_fails_closed(tmp_path, monkeypatch):
    from emberd.modules import authn_file

    (tmp_path / "htpasswd").write_text(
        "alice:$2y$05$blYkq9o5zWZrGUoPZdn./OcqMFHPzfqutb9VlktUb7zy73kIlAQ/S\n"
        "bob:$apr1$U..olpN8$uyYsPJhDno341D1Za13pW1\n")
    config = load("t.conf", HEAD + f'auth.backend = "htpasswd"\n'
                  f'auth.backend.htpasswd.userfile = "{tmp_path}/htpasswd"\n'
                  'auth.require = ( "/" => ( "method" => "basic", "realm" => "R", '
                  '"require" => "valid-user" ) )\n')
    monkeypatch.setattr(authn_file, "_crypt_fn", [None])
    rt = FakeRuntime(config)

    def check(authorization: str) -> Response | None:
        req = Request("GET", "/x", "1.1", [("authorization", authorization)])
        req.path = "/x"
        req.conf, req.match = config.for_request(req)
        return rt.plugins[0].uri_clean(req)

    assert isinstance(check(basic("alice", "password")), Delayed)
    assert any("needs crypt(3), but no crypt(3) library (libcrypt) was found: access refused"
               in line for line in rt.logged), rt.logged
    assert check(basic("bob", "password")) is None  # $apr1$ needs no library

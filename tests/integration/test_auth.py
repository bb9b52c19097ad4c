"""mod_auth with mod_authn_file in the real server: user files made by Debian's htpasswd and
htdigest (apache2-utils) and by emberd-passwd, real clients (curl), HTTP/1.1 and h2c.

Invalid credentials are answered one second late (auth.delay-invalid-creds);
the tests that wait for that are marked slow.
"""

from __future__ import annotations

import base64
import os
import pty
import select
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from h2.errors import ErrorCodes

from emberd.modules.auth import ha1, parse_params, response_digest
from tests.h2client import H2Client
from tests.helpers import EMBERD, get, wait_for

ROOT = Path(__file__).resolve().parents[2]
BACKEND = f"{sys.executable} {ROOT / 'tests' / 'fcgi_backend.py'}"
# one user per kind of htpasswd hash (htpasswd's flag, the user, the password)
HTPASSWD_USERS = [
    ("-B", "bcrypt", "b-pass"),
    ("-m", "apr1", "m-pass"),
    ("-s", "sha1", "s-pass"),
    ("-d", "des", "d-pass"),
    ("-2", "sha256crypt", "2-pass"),
    ("-5", "sha512crypt", "5-pass"),
]
PASSWD_SCRIPT = Path(sys.executable).parent / "emberd-passwd"


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def status_of(port: int, path: str, *args: str) -> tuple[str, str]:
    """curl's HTTP status and body for ``path`` (with extra curl arguments)."""
    r = curl("-w", "%{http_code}", *args, f"http://127.0.0.1:{port}{path}")
    return r.stdout[-3:], r.stdout[:-3]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def digest_header(challenge: str, user: str, password: str, uri: str,
                  method: str = "GET") -> str:
    """The Authorization a Digest client computes for one WWW-Authenticate challenge."""
    p = parse_params(challenge.removeprefix("Digest "))
    algorithm = p["algorithm"]
    a1 = ha1(algorithm, user.encode(), p["realm"].encode(), password.encode())
    resp = response_digest(algorithm, a1, method, uri.encode(), p["nonce"].encode(),
                           b"00000001", b"0a4f113b", b"auth")
    return (f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", '
            f'uri="{uri}", algorithm={algorithm}, qop=auth, nc=00000001, '
            f'cnonce="0a4f113b", response="{resp}"')


def htdigest(path: Path, realm: str, user: str, password: str) -> None:
    """Debian's htdigest, which reads the password from its terminal only."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: htdigest on the pseudo-terminal
        os.execvp("htdigest", ["htdigest", *([] if path.exists() else ["-c"]),
                               str(path), realm, user])
    out = b""
    answered = 0
    end = time.monotonic() + 20
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                data = os.read(fd, 1024)
            except OSError:
                break
            if not data:
                break
            out += data
            if out.lower().count(b"password:") > answered:
                answered += 1
                os.write(fd, password.encode() + b"\n")
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    assert status == 0, out


def passwd_command() -> list[str]:
    """The installed console script (``python -m emberd.passwd`` before reinstalling)."""
    if PASSWD_SCRIPT.exists():
        return [str(PASSWD_SCRIPT)]
    return [sys.executable, "-m", "emberd.passwd"]


def emberd_passwd(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    stdin = None if password is None else password + "\n"
    return subprocess.run([*passwd_command(), *([] if password is None else ["--stdin"]),
                           *args], input=stdin, capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    """htpasswd (every hash kind), htdigest (realm "digest realm"), plain and group files."""
    d = tmp_path / "users"
    d.mkdir()
    for flag, user, password in HTPASSWD_USERS:
        subprocess.run(["htpasswd", "-b", flag, *(["-c"] if flag == "-B" else []),
                        str(d / "htpasswd"), user, password], check=True, capture_output=True)
    htdigest(d / "htdigest", "digest realm", "dora", "d0ra pass")
    htdigest(d / "htdigest", "digest realm", "ed", "ed-pass")
    (d / "plain").write_text("sam:sam-pass\nbob:bob-pass\n")
    (d / "groups").write_text("ops: bob\n")
    return d


@pytest.fixture
def site(docroot: Path) -> Path:
    for sub in ("basic", "dig", "sha", "ops", "mine"):
        (docroot / sub).mkdir()
        (docroot / sub / "f.txt").write_text(f"{sub} content\n")
    return docroot


def config(users: Path, extra: str = "") -> str:
    return f'''
server.modules = ( "mod_auth", "mod_authn_file", "mod_indexfile", "mod_fastcgi",
                   "mod_staticfile" )
index-file.names = ( "index.html" )
auth.backend = "htpasswd"
auth.backend.htpasswd.userfile = "{users}/htpasswd"
auth.backend.htdigest.userfile = "{users}/htdigest"
auth.backend.plain.userfile = "{users}/plain"
auth.backend.plain.groupfile = "{users}/groups"
auth.require = ( "/basic/" => ( "method" => "basic", "realm" => "emberd",
                                "require" => "valid-user" ),
                 "/api" => ( "method" => "basic", "realm" => "api", "require" => "user=apr1" ),
                 "/mine/" => ( "method" => "basic", "realm" => "mine",
                               "require" => "user=bcrypt|user=sha1" ) )
$HTTP["url"] =^ "/dig/" {{
  auth.backend = "htdigest"
  auth.require = ( "/dig/" => ( "method" => "digest", "realm" => "digest realm",
                                "require" => "valid-user" ) )
}}
$HTTP["url"] =^ "/sha/" {{
  auth.backend = "plain"
  auth.require = ( "/sha/" => ( "method" => "digest", "realm" => "sha realm",
                                "require" => "valid-user", "algorithm" => "SHA-256" ) )
}}
$HTTP["url"] =^ "/ops/" {{
  auth.backend = "plain"
  auth.require = ( "/ops/" => ( "method" => "basic", "realm" => "ops",
                                "require" => "group=ops" ) )
}}
fastcgi.server = ( "/api" => ( "fake" => ( "bin-path" => "{BACKEND}",
                   "socket" => var.CWD + "/fake.sock", "max-procs" => 1,
                   "check-local" => "disable" ) ) )
''' + extra


@pytest.fixture
def srv(emberd, users, site):
    return emberd(config(users))


# -- challenges -----------------------------------------------------------------------------


def test_challenges_and_public_paths(srv):
    assert get(srv.port, "/index.html").status == 200
    r = get(srv.port, "/basic/f.txt")
    assert r.status == 401 and b"401 Unauthorized" in r.body
    assert r.all("www-authenticate") == ['Basic realm="emberd", charset="UTF-8"']
    assert r.header("content-type") == "text/html"
    r = get(srv.port, "/dig/f.txt")
    assert r.status == 401
    (challenge,) = r.all("www-authenticate")
    assert challenge.startswith('Digest realm="digest realm", charset="UTF-8", algorithm=MD5, '
                                'nonce="') and challenge.endswith('", qop="auth"')
    # another scheme than the one required: a challenge, not a failed login
    r = get(srv.port, "/basic/f.txt", {"Authorization": "Bearer x", "Connection": "keep-alive"})
    assert r.status == 401 and r.header("connection") is None  # kept
    # a directory of the protected prefix, and HEAD
    assert get(srv.port, "/basic/").status == 401
    assert get(srv.port, "/basic/f.txt", method="HEAD").status == 401


def test_h2c_challenge(srv):
    c = H2Client(srv.port)
    r = c.get("/sha/f.txt")
    assert r.status == 401
    assert r.headers["www-authenticate"].startswith('Digest realm="sha realm", charset="UTF-8", '
                                                    "algorithm=SHA-256, ")
    c.close()


# -- Basic ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, user, password", HTPASSWD_USERS)
def test_basic_with_every_htpasswd_hash(srv, flag, user, password):
    assert status_of(srv.port, "/basic/f.txt", "--basic", "-u", f"{user}:{password}") == \
        ("200", "basic content\n")


def test_basic_over_h2c_with_curl(srv):
    r = curl("--http2-prior-knowledge", "-u", "bcrypt:b-pass", "-w", "%{http_version} %{http_code}",
             f"http://127.0.0.1:{srv.port}/basic/f.txt")
    assert r.stdout == "basic content\n2 200"


def test_require_user_and_group(srv):
    assert status_of(srv.port, "/mine/f.txt", "-u", "sha1:s-pass")[0] == "200"
    assert status_of(srv.port, "/ops/f.txt", "-u", "bob:bob-pass")[0] == "200"


def test_remote_user_reaches_fastcgi(srv):
    assert get(srv.port, "/api/x?env").status == 401
    r = get(srv.port, "/api/x?env", {"Authorization": basic("apr1", "m-pass")})
    assert r.status == 200, r
    env = dict(line.split("=", 1) for line in r.body.decode().splitlines())
    assert env["REMOTE_USER"] == "apr1" and env["AUTH_TYPE"] == "Basic"
    assert "HTTP_AUTHORIZATION" in env  # passed on, as lighttpd does


# -- Digest ---------------------------------------------------------------------------------


def test_digest_md5_with_curl_and_an_htdigest_file(srv):
    assert status_of(srv.port, "/dig/f.txt", "--digest", "-u", "dora:d0ra pass") == \
        ("200", "dig content\n")
    assert status_of(srv.port, "/dig/f.txt", "--digest", "-u", "ed:ed-pass")[0] == "200"


def test_digest_sha256_with_curl(srv):
    assert status_of(srv.port, "/sha/f.txt", "--digest", "-u", "sam:sam-pass") == \
        ("200", "sha content\n")


def test_digest_over_h2c(srv):
    """curl 7.88 does not send the second request of Digest over HTTP/2 (neither to
    lighttpd): the test client computes it."""
    c = H2Client(srv.port)
    for path, user, password in (("/dig/f.txt", "dora", "d0ra pass"),
                                 ("/sha/f.txt", "sam", "sam-pass")):
        challenge = c.get(path).headers["www-authenticate"]
        r = c.get(path, headers=[("authorization",
                                  digest_header(challenge, user, password, path))])
        assert (r.status, bytes(r.data)) == (200, f"{path.split('/')[1]} content\n".encode())
    c.close()


# -- invalid credentials ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("path, authorization", [
    ("/basic/f.txt", basic("bcrypt", "wrong")),
    ("/basic/f.txt", basic("nobody", "b-pass")),
    ("/mine/f.txt", basic("apr1", "m-pass")),  # right password, user not allowed there
    ("/dig/f.txt", None),  # a Digest response computed with a wrong password
])
def test_invalid_credentials_are_answered_late_without_blocking(srv, path, authorization):
    if authorization is None:
        challenge = get(srv.port, path).header("www-authenticate")
        assert challenge is not None
        authorization = digest_header(challenge, "dora", "wrong", path)
    done: dict[str, object] = {}

    def login() -> None:
        start = time.monotonic()
        done["reply"] = get(srv.port, path, {"Authorization": authorization,
                                             "Connection": "keep-alive"})
        done["took"] = time.monotonic() - start

    t = threading.Thread(target=login)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    assert get(srv.port, "/index.html").status == 200  # another connection meanwhile
    assert status_of(srv.port, "/basic/f.txt", "-u", "apr1:m-pass")[0] == "200"
    quick = time.monotonic() - start
    assert t.is_alive(), "the 401 came before the delay"
    t.join(10)
    reply = done["reply"]
    assert quick < 0.5, quick
    assert reply.status == 401 and done["took"] >= 0.95, done  # type: ignore[attr-defined]
    assert reply.header("connection") == "close"  # type: ignore[attr-defined]
    assert reply.header("www-authenticate")  # type: ignore[attr-defined]
    assert "(mod_auth)" in srv.log() and "IP: 127.0.0.1" in srv.log()


@pytest.mark.slow
def test_delay_can_be_disabled(emberd, users, site):
    srv = emberd(config(users, 'server.feature-flags = ( "auth.delay-invalid-creds" => '
                               '"disable" )\n'))
    start = time.monotonic()
    r = get(srv.port, "/basic/f.txt", {"Authorization": basic("bcrypt", "wrong"),
                                        "Connection": "keep-alive"})
    assert r.status == 401 and time.monotonic() - start < 0.5
    assert r.header("connection") == "close" and b"401 Unauthorized" in r.body


@pytest.mark.slow
def test_h2_invalid_credentials_goaway(srv):
    bad = [("authorization", basic("bcrypt", "wrong"))]
    c = H2Client(srv.port)
    start = time.monotonic()
    sid = c.request("/basic/f.txt", headers=bad)
    other = H2Client(srv.port)
    assert other.get("/basic/f.txt", headers=[("authorization", basic("bcrypt", "b-pass"))]) \
        .status == 200
    assert time.monotonic() - start < 0.5  # served meanwhile
    other.close()
    c.wait_ended(sid)
    assert c.streams[sid].status == 401 and time.monotonic() - start >= 0.95
    c.pump(timeout=2)
    assert c.goaway is not None and c.goaway.error_code == ErrorCodes.NO_ERROR
    assert c.closed
    # two failed logins in flight on one connection: the second one ends it
    c = H2Client(srv.port)
    s1, s2 = c.request("/basic/f.txt", headers=bad), c.request("/basic/f.txt", headers=bad)
    c.pump(timeout=5)
    assert c.streams[s1].status == 401 and c.streams[s2].status == 401 and c.closed
    assert "invalid credentials again after GOAWAY" in srv.log()


@pytest.mark.slow
def test_h2_goaway_can_be_disabled(emberd, users, site):
    srv = emberd(config(users, 'server.feature-flags = ( "auth.http-goaway-invalid-creds" '
                               '=> "disable" )\n'))
    c = H2Client(srv.port)
    assert c.get("/basic/f.txt", headers=[("authorization", basic("des", "x"))]).status == 401
    assert c.get("/basic/f.txt", headers=[("authorization", basic("des", "d-pass"))]) \
        .status == 200
    assert c.goaway is None
    c.close()


# -- user files ---------------------------------------------------------------------------------


def test_missing_user_file_is_503_and_logged(emberd, users, site, tmp_path):
    missing = tmp_path / "none" / "htpasswd"
    srv = emberd(config(users, f'auth.backend.htpasswd.userfile := "{missing}"\n'))
    assert get(srv.port, "/basic/f.txt").status == 503  # no default password
    assert get(srv.port, "/basic/f.txt",
               {"Authorization": basic("bcrypt", "b-pass")}).status == 503
    assert get(srv.port, "/index.html").status == 200
    wait_for(lambda: f"create it with: emberd-passwd {missing} USER" in srv.log())
    assert "No such file or directory" in srv.log()
    r = subprocess.run([EMBERD, "-tt", "-f", str(srv.conf_path)], capture_output=True,
                       text=True, timeout=30, check=False)
    assert r.returncode == 0
    assert f'"{missing}" does not exist' in r.stderr and "emberd-passwd" in r.stderr


def test_user_file_that_is_not_a_file_is_503(emberd, users, site, tmp_path):
    srv = emberd(config(users, f'auth.backend.htpasswd.userfile := "{tmp_path}"\n'))
    assert get(srv.port, "/basic/f.txt", {"Authorization": basic("des", "d-pass")}).status \
        == 503
    wait_for(lambda: "(not a regular file); create it with: emberd-passwd" in srv.log())


def test_config_errors_name_the_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('server.document-root = "/srv"\nserver.modules = ( "mod_auth" )\n'
                    'auth.backend = "ldap"\n'
                    'auth.require = ( "/" => ( "method" => "basic", "realm" => "R",\n'
                    '                          "require" => "user" ) )\n')
    r = subprocess.run([EMBERD, "-tt", "-f", str(conf)], capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode != 0
    assert f'{conf}:3:1: error: auth.backend: "ldap" is not supported by emberd' in r.stderr
    assert f'{conf}:4:1: error: auth.require: "/": "require" => "user": missing "="' \
        in r.stderr


def test_emberd_passwd_round_trip(emberd, users, site, tmp_path):
    hp = tmp_path / "made" / "htpasswd"
    hp.parent.mkdir()
    hd = tmp_path / "made" / "htdigest"
    r = emberd_passwd(str(hp), "admin", password="first pass")
    assert r.returncode == 0, r.stderr
    assert "first pass" not in r.stdout + r.stderr  # never echoed
    assert oct(hp.stat().st_mode & 0o777) == "0o600"
    assert emberd_passwd("--digest", "digest realm", str(hd), "admin",
                         password="digest pass").returncode == 0
    srv = emberd(config(users, f'auth.backend.htpasswd.userfile := "{hp}"\n'
                               f'auth.backend.htdigest.userfile := "{hd}"\n'))
    assert status_of(srv.port, "/basic/f.txt", "-u", "admin:first pass")[0] == "200"
    assert status_of(srv.port, "/dig/f.txt", "--digest", "-u", "admin:digest pass")[0] == "200"
    # a new password applies to the next request; Apache's htpasswd reads the file too
    assert emberd_passwd(str(hp), "admin", password="second pass").returncode == 0
    assert subprocess.run(["htpasswd", "-vb", str(hp), "admin", "second pass"],
                          capture_output=True, check=False).returncode == 0
    assert status_of(srv.port, "/basic/f.txt", "-u", "admin:second pass")[0] == "200"
    assert emberd_passwd("--delete", str(hp), "admin").returncode == 0
    assert hp.read_text() == ""


def test_emberd_passwd_needs_a_terminal_or_stdin(tmp_path):
    r = subprocess.run([*passwd_command(), str(tmp_path / "f"), "u"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30, check=False,
                       start_new_session=True)  # no controlling terminal
    assert r.returncode == 1 and "use --stdin" in r.stderr
    assert not (tmp_path / "f").exists()


def test_emberd_passwd_is_a_console_script():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'emberd-passwd = "emberd.passwd:main"' in text
    assert shutil.which("htpasswd") and shutil.which("htdigest"), "apt-get install apache2-utils"

"""HTTPS with real clients: curl, nghttp, h2load and openssl s_client against the real server.

Certificates are made per test (trustme).  Both backends serve the same
tests where the behaviour is the same; the Mbed TLS one is the default.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import Emberd, get, wait_for
from tests.unit.tls.pki import Leaf, Pki

ROOT = Path(__file__).resolve().parents[2]
BACKEND = f"{sys.executable} {ROOT / 'tests' / 'fcgi_backend.py'}"
MODULES = 'server.modules = ( "mod_indexfile", "mod_fastcgi", "mod_staticfile" )\n' \
          'index-file.names = ( "index.html" )\n'
FASTCGI = (f'fastcgi.server = ( "/api" => ( "fake" => ( "bin-path" => "{BACKEND}", '
           '"socket" => var.CWD + "/fake.sock", "max-procs" => 1, '
           '"check-local" => "disable" ) ) )\n')


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return Pki(d)


def tls_conf(leaf: Leaf, backend: str = "mbedtls", extra: str = "") -> str:
    return (MODULES + f'ssl.engine = "enable"\nssl.backend = "{backend}"\n'
            f'ssl.pemfile = "{leaf.chain}"\nssl.privkey = "{leaf.key}"\n' + extra)


def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout,
                          check=False)


def s_client(port: int, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                          input=stdin, capture_output=True, timeout=30, check=False)


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


# -- real clients ---------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["mbedtls", "openssl"])
def test_curl_http2_and_http1(emberd, pki, docroot, backend):
    srv = emberd(tls_conf(pki.server("localhost"), backend))
    data = (docroot / "data.bin").read_bytes()
    url = f"https://localhost:{srv.port}/data.bin"
    for flag, version in (("--http2", b"2"), ("--http1.1", b"1.1")):
        r = curl(flag, "--cacert", str(pki.ca_file), "-w", "%{http_version}", url)
        assert r.returncode == 0, r.stderr
        assert r.stdout[:-len(version)] == data and r.stdout.endswith(version)
    r = curl("--cacert", str(pki.ca_file), "-w", "%{http_version}",
             f"https://localhost:{srv.port}/")
    assert r.stdout == b"<h1>emberd</h1>\n2"


def test_uploads_both_protocols(emberd, pki, tmp_path):
    srv = emberd(tls_conf(pki.server("localhost"), extra=FASTCGI))
    body = tmp_path / "body.bin"
    body.write_bytes(os.urandom(700_000))
    for flag in ("--http2", "--http1.1"):
        r = curl(flag, "--cacert", str(pki.ca_file), "--data-binary", f"@{body}",
                 f"https://localhost:{srv.port}/api/x?echo")
        assert r.returncode == 0, r.stderr
        assert r.stdout == body.read_bytes()


def test_nghttp_and_h2load(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost")))
    r = subprocess.run(["nghttp", "-nv", f"https://127.0.0.1:{srv.port}/index.html"],
                       capture_output=True, timeout=30, check=False)
    assert r.returncode == 0 and b"The negotiated protocol: h2" in r.stdout
    assert b":status: 200" in r.stdout
    for extra in ([], ["--h1"]):
        r = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "4", *extra,
                            f"https://127.0.0.1:{srv.port}/index.html"],
                           capture_output=True, timeout=60, check=False)
        assert b"200 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
        assert (b"Application protocol: http/1.1" if extra else
                b"Application protocol: h2") in r.stdout


def test_openssl_s_client_alpn_and_old_versions(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost")))
    r = s_client(srv.port, "-alpn", "h2", "-CAfile", str(pki.ca_file))
    assert b"ALPN protocol: h2" in r.stdout and b"Verify return code: 0 (ok)" in r.stdout
    r = s_client(srv.port, "-alpn", "http/1.1")
    assert b"ALPN protocol: http/1.1" in r.stdout
    r = s_client(srv.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert r.returncode != 0 and b"Cipher is (NONE)" in r.stdout
    wait_for(lambda: "the client offers TLS 1.1 at most, the minimum is TLS 1.2" in srv.log())


def test_tls13_with_the_openssl_backend(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost"), "openssl"))
    r = s_client(srv.port, "-alpn", "h2", "-tls1_3")
    assert b"TLSv1.3" in r.stdout and b"ALPN protocol: h2" in r.stdout


def test_sni_chooses_the_certificate(emberd, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Pki(tmp_path / "a", name="ca-a"), Pki(tmp_path / "b", name="ca-b")
    la, lb = a.server("a.example", "a.example"), b.server("b.example", "b.example")
    srv = emberd(tls_conf(la, extra=f'$HTTP["host"] == "b.example" {{ '
                                    f'ssl.pemfile = "{lb.chain}"\nssl.privkey = "{lb.key}" }}\n'))
    r = s_client(srv.port, "-servername", "b.example")
    assert b", CN = b.example\n" in r.stdout
    r = s_client(srv.port, "-servername", "a.example")
    assert b", CN = a.example\n" in r.stdout
    for host, pki in (("a.example", a), ("b.example", b)):
        r = curl("--resolve", f"{host}:{srv.port}:127.0.0.1", "--cacert", str(pki.ca_file),
                 f"https://{host}:{srv.port}/index.html")
        assert r.stdout == b"<h1>emberd</h1>\n", r.stderr
    r = curl("--resolve", f"b.example:{srv.port}:127.0.0.1", "--cacert", str(a.ca_file),
             f"https://b.example:{srv.port}/index.html")
    assert r.returncode != 0  # b's certificate is not from a's CA


def test_client_certificates(emberd, pki):
    client = pki.client("sensor-7")
    srv = emberd(tls_conf(pki.server("localhost"), extra=FASTCGI + (
        f'ssl.ca-file = "{pki.ca_file}"\nssl.verifyclient.activate = "enable"\n'
        'ssl.verifyclient.username = "SSL_CLIENT_S_DN_CN"\n')))
    url = f"https://localhost:{srv.port}/api/x?env"
    r = curl("--http1.1", "--cacert", str(pki.ca_file), url)
    assert r.returncode != 0  # no certificate: refused
    wait_for(lambda: "No client certification received from the client" in srv.log())
    for flag in ("--http1.1", "--http2"):
        r = curl(flag, "--cacert", str(pki.ca_file), "--cert", str(client.chain), "--key",
                 str(client.key), url)
        assert r.returncode == 0, r.stderr
        env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
        assert env["HTTPS"] == "on" and env["REQUEST_SCHEME"] == "https"
        if flag == "--http1.1":  # HTTP/2: once core/http2.py calls conn.annotate(req)
            assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
            assert env["SSL_CLIENT_S_DN_CN"] == "sensor-7" and env["REMOTE_USER"] == "sensor-7"
            assert env["AUTH_TYPE"] == "SSL_CLIENT_VERIFY" and env["SSL_PROTOCOL"] == "TLSv1.2"


def test_https_environment_for_both_protocols(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost"), extra=FASTCGI))
    for flag in ("--http1.1", "--http2"):
        r = curl(flag, "--cacert", str(pki.ca_file), f"https://localhost:{srv.port}/api/y?env")
        env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
        assert env["HTTPS"] == "on" and env["REQUEST_SCHEME"] == "https", r.stdout
        assert env["SERVER_PORT"] == str(srv.port)


# -- HTTP and HTTPS side by side ----------------------------------------------------------

class TwoListeners(Emberd):
    """Hands two sockets over (LISTEN_FDS=2): plain on fd 3, the one for TLS on fd 4."""

    tls_port = 0

    def start(self) -> Emberd:
        self.extra = socket.socket()
        self.extra.bind(("127.0.0.1", 0))
        self.extra.listen(16)
        self.tls_port = self.extra.getsockname()[1]
        self.config = self.config.replace("TLSPORT", str(self.tls_port))
        fd = self.extra.fileno()
        original = subprocess.Popen

        def popen(*args, **kw):  # type: ignore[no-untyped-def]
            inner = kw["preexec_fn"]

            def both() -> None:
                inner()
                os.dup2(fd, 4)
                os.environ["LISTEN_FDS"] = "2"

            kw["preexec_fn"] = both
            kw["pass_fds"] = (3, 4)
            return original(*args, **kw)

        subprocess.Popen = popen  # type: ignore[misc]
        try:
            return super().start()
        finally:
            subprocess.Popen = original  # type: ignore[misc]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        code = super().stop(sig, timeout)
        self.extra.close()
        return code


def test_http_and_https_side_by_side_and_scheme_condition(tmp_path, docroot, pki):
    leaf = pki.server("localhost")
    conf = (f'server.document-root = "{docroot}"\n' + MODULES +
            '$SERVER["socket"] == "127.0.0.1:TLSPORT" {\n ssl.engine = "enable"\n'
            f' ssl.pemfile = "{leaf.both}"\n}}\n'
            '$HTTP["scheme"] == "https" { server.tag = "emberd-secure" }\n')
    (tmp_path / "two").mkdir()
    srv = TwoListeners(tmp_path / "two", conf)
    try:
        srv.start()
        plain = get(srv.port, "/index.html")
        assert plain.status == 200 and plain.header("server", ).startswith("emberd/")
        r = curl("-i", "--http1.1", "--cacert", str(pki.ca_file),
                 f"https://localhost:{srv.tls_port}/index.html")
        assert b"Server: emberd-secure" in r.stdout and r.stdout.endswith(b"<h1>emberd</h1>\n")
        assert "127.0.0.1:" + str(srv.tls_port) in srv.log()
    finally:
        srv.stop()


# -- OpenSSL never loaded ----------------------------------------------------------------

def test_mbedtls_backend_never_maps_libssl(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost")))
    assert curl("--cacert", str(pki.ca_file), f"https://localhost:{srv.port}/").returncode == 0
    mapped = maps(srv.pid)
    assert "libssl" not in mapped and "libmbedtls" in mapped


def test_openssl_backend_maps_libssl_and_plain_http_maps_no_tls(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost"), "openssl"))
    assert curl("--cacert", str(pki.ca_file), f"https://localhost:{srv.port}/").returncode == 0
    assert "libssl" in maps(srv.pid)
    plain = emberd(MODULES)
    assert get(plain.port, "/").status == 200
    assert "libssl" not in maps(plain.pid) and "libmbed" not in maps(plain.pid)


# -- start-up and reload --------------------------------------------------------------------

def run_emberd(tmp_path: Path, conf: str, timeout: float = 20) -> tuple[int, str]:
    path = tmp_path / "start.conf"
    log = tmp_path / "start.log"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path.write_text(f'server.bind = "127.0.0.1"\nserver.port = {port}\n'
                    f'server.errorlog = "{log}"\n' + conf)
    p = subprocess.run([sys.executable, "-m", "emberd.cli", "-D", "-f", str(path)],
                       capture_output=True, timeout=timeout, check=False)
    return p.returncode, log.read_text() if log.exists() else p.stderr.decode()


def test_a_key_that_does_not_match_stops_start_up(tmp_path, docroot, pki):
    a, b = pki.server("a"), pki.server("b")
    code, log = run_emberd(tmp_path, f'server.document-root = "{docroot}"\n'
                           f'ssl.engine = "enable"\nssl.pemfile = "{a.chain}"\n'
                           f'ssl.privkey = "{b.key}"\n')
    assert code == 1
    assert "does not match" in log and str(b.key) in log and "start.conf:6:1" in log


def test_an_unreadable_file_stops_start_up(tmp_path, docroot):
    code, log = run_emberd(tmp_path, f'server.document-root = "{docroot}"\n'
                           f'ssl.engine = "enable"\nssl.pemfile = "{tmp_path}/none.pem"\n')
    assert code == 1 and f"ssl.pemfile {tmp_path}/none.pem: cannot read it" in log


def test_an_expired_certificate_only_warns(emberd, pki):
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    leaf = pki.server("localhost", not_before=now - dt.timedelta(days=30),
                      not_after=now - dt.timedelta(days=2))
    srv = emberd(tls_conf(leaf))
    assert "is expired on" in srv.log() and "serving it anyway" in srv.log()
    r = curl("-k", f"https://localhost:{srv.port}/index.html")
    assert r.stdout == b"<h1>emberd</h1>\n"


def test_reload_with_a_broken_certificate_keeps_serving(emberd, pki, tmp_path):
    leaf = pki.server("localhost")
    srv = emberd(tls_conf(leaf))
    leaf.key.write_text("garbage\n")
    srv.send_signal(signal.SIGUSR1)
    wait_for(lambda: "reload failed, keeping the old configuration" in srv.log())
    assert "no private key" in srv.log()
    r = curl("--cacert", str(pki.ca_file), f"https://localhost:{srv.port}/index.html")
    assert r.stdout == b"<h1>emberd</h1>\n"


# -- bad input: each ends its connection only, with a log line ------------------------------

def raw_exchange(port: int, data: bytes, wait: float = 10) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(4096):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return out


def tls_then_raw(port: int, ca: Path, raw: bytes) -> bytes:
    """Complete a TLS handshake, then send ``raw`` bytes on the socket itself."""
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        tls = ctx.wrap_socket(s, server_hostname="localhost")
        s2 = socket.socket(fileno=os.dup(tls.fileno()))
        s2.settimeout(10)
        with s2:
            s2.sendall(raw)
            try:
                return s2.recv(4096)
            except ConnectionResetError:
                return b""


def test_bad_input_each_closes_its_connection_with_a_log_line(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost")))
    assert raw_exchange(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
        b"HTTP/1.0 400 Bad Request")
    wait_for(lambda: "plain HTTP sent to the TLS port" in srv.log())
    raw_exchange(srv.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
    assert raw_exchange(srv.port, b"\x07garbage!" * 10) == b""
    wait_for(lambda: "not a TLS handshake (first byte 0x07)" in srv.log())
    raw_exchange(srv.port, b"\x16\x03\x01\x7f\xff")
    wait_for(lambda: "invalid TLS record length 32767" in srv.log())
    tls_then_raw(srv.port, pki.ca_file, b"\x17\x03\x03\x7f\xff")
    wait_for(lambda: "oversized TLS record" in srv.log())
    tls_then_raw(srv.port, pki.ca_file, b"\x17\x03\x03\x00\x20" + os.urandom(32))
    wait_for(lambda: srv.log().count("(tls)") >= 5)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"\x16\x03\x01\x02\x00")
        s.shutdown(socket.SHUT_WR)
        s.recv(10)
    wait_for(lambda: "connection closed during the TLS handshake" in srv.log())
    # the server is fine
    r = curl("--cacert", str(pki.ca_file), f"https://localhost:{srv.port}/index.html")
    assert r.stdout == b"<h1>emberd</h1>\n"


def test_renegotiation_is_refused(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost")))
    r = s_client(srv.port, "-tls1_2", stdin=b"R\n")
    assert b"RENEGOTIATING" in r.stdout or b"RENEGOTIATING" in r.stderr
    wait_for(lambda: "renegotiation attempt" in srv.log())


@pytest.mark.slow
def test_a_client_stalling_mid_handshake_is_closed(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost"), extra="ssl.handshake-timeout = 1\n"))
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a third of a ClientHello
        assert s.recv(10) == b""
    assert time.monotonic() - start < 5
    wait_for(lambda: "timeout during the TLS handshake" in srv.log())


@pytest.mark.slow
def test_memory_stays_bounded_under_bad_handshakes(emberd, pki):
    srv = emberd(tls_conf(pki.server("localhost")))
    ctx = ssl.create_default_context(cafile=str(pki.ca_file))

    def round_of_abuse() -> None:
        for i in range(40):
            kind = i % 4
            if kind == 0:
                raw_exchange(srv.port, b"GET / HTTP/1.1\r\n\r\n")
            elif kind == 1:
                raw_exchange(srv.port, os.urandom(600))
            elif kind == 2:
                with socket.create_connection(("127.0.0.1", srv.port)) as s, \
                        ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
                    t.recv(1000)
            else:
                tls_then_raw(srv.port, pki.ca_file, os.urandom(300))

    round_of_abuse()
    before = srv.rss_kb()
    for _ in range(4):
        round_of_abuse()
    growth = srv.rss_kb() - before
    assert growth < 2048, f"RSS grew by {growth} kB over 160 abusive connections"
    r = curl("--cacert", str(pki.ca_file), f"https://localhost:{srv.port}/index.html")
    assert r.stdout == b"<h1>emberd</h1>\n"

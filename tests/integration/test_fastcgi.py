"""mod_fastcgi against real peers (php-cgi, fcgiwrap, cgi-fcgi) and a backend that misbehaves
on request (tests/fcgi_backend.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.h2client import H2Client
from tests.helpers import get, parse_replies, raw, wait_for

ROOT = Path(__file__).resolve().parents[2]
PHP_CGI = "/usr/bin/php-cgi"
BACKEND = f"{sys.executable} {ROOT / 'tests' / 'fcgi_backend.py'}"
MODULES = 'server.modules = ( "mod_indexfile", "mod_fastcgi", "mod_staticfile" )\n' \
          'index-file.names = ( "index.php", "index.html" )\n'



def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout,
                          check=False)


@pytest.fixture
def php_site(docroot: Path) -> Path:
    (docroot / "env.php").write_text(
        "<?php header('Content-Type: application/json');\n"
        "$keys = ['SCRIPT_NAME','PATH_INFO','SCRIPT_FILENAME','QUERY_STRING','REQUEST_URI',"
        "'REQUEST_METHOD','CONTENT_LENGTH','CONTENT_TYPE','DOCUMENT_ROOT','SERVER_PROTOCOL',"
        "'REMOTE_ADDR','SERVER_PORT','HTTP_X_TEST','REDIRECT_STATUS','HTTPS'];\n"
        "$out = []; foreach ($keys as $k) { $out[$k] = $_SERVER[$k] ?? null; }\n"
        "echo json_encode($out);\n")
    (docroot / "echo.php").write_text(
        "<?php header('Content-Type: application/octet-stream');\n"
        "$in = fopen('php://input', 'rb'); $out = fopen('php://output', 'wb');\n"
        "stream_copy_to_stream($in, $out);\n")
    (docroot / "big.php").write_text(
        "<?php header('Content-Type: application/octet-stream');\n"
        "$block = str_repeat(implode('', array_map('chr', range(0, 255))), 256);\n"
        "for ($i = 0; $i < intval($_GET['n']); $i++) { echo $block; }\n")
    (docroot / "send.php").write_text(
        "<?php header('X-Sendfile: ' . $_GET['f']); header('Content-Type: text/plain');\n")
    (docroot / "status.php").write_text(
        "<?php http_response_code(intval($_GET['s'])); echo 'backend says ', $_GET['s'];\n")
    (docroot / "stderr.php").write_text("<?php error_log('php complains'); echo 'ok';\n")
    return docroot


def php_conf(extra_host: str = "", extra: str = "") -> str:
    return (MODULES + extra +
            'fastcgi.server = ( ".php" => ( "php" => ( "bin-path" => "' + PHP_CGI + '",\n'
            '  "socket" => var.CWD + "/php.sock", "max-procs" => 1' + extra_host + ' ) ) )\n')


# -- php-cgi spawned through bin-path -----------------------------------------------

def test_php_environment_and_path_info(emberd, php_site):
    srv = emberd(php_conf())
    r = get(srv.port, "/env.php/extra/path?a=1&b=2", headers={"X-Test": "yes"})
    assert r.status == 200, r.body
    env = json.loads(r.body)
    assert env["SCRIPT_NAME"] == "/env.php" and env["PATH_INFO"] == "/extra/path"
    assert env["SCRIPT_FILENAME"] == str(php_site / "env.php")
    assert env["QUERY_STRING"] == "a=1&b=2"
    assert env["REQUEST_URI"] == "/env.php/extra/path?a=1&b=2"
    assert env["REQUEST_METHOD"] == "GET" and env["CONTENT_LENGTH"] == "0"
    assert env["DOCUMENT_ROOT"] == str(php_site) and env["HTTP_X_TEST"] == "yes"
    assert env["SERVER_PORT"] == str(srv.port) and env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REDIRECT_STATUS"] == "200" and env["HTTPS"] is None
    assert "started /usr/bin/php-cgi" in srv.log()


def test_php_index_file_and_missing_script(emberd, php_site):
    (php_site / "sub" / "index.php").write_text("<?php echo 'php index';\n")
    srv = emberd(php_conf())
    assert get(srv.port, "/sub/").body == b"php index"
    assert get(srv.port, "/nothing.php").status == 404  # check-local: the file must exist


@pytest.mark.parametrize("stream", [0, 1, 2])
def test_large_bodies_both_ways_h1(emberd, php_site, tmp_path, stream):
    srv = emberd(php_conf(extra=f"server.stream-request-body = {stream}\n"
                          f"server.stream-response-body = {stream}\n"))
    payload = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    r = curl("--data-binary", f"@{src}", "-H", "Content-Type: application/octet-stream",
             f"http://127.0.0.1:{srv.port}/echo.php")
    assert r.stdout == payload, r.stderr
    r = curl(f"http://127.0.0.1:{srv.port}/big.php?n=80")  # 5 MiB
    assert r.stdout == bytes(range(256)) * 256 * 80


def test_large_bodies_both_ways_h2(emberd, php_site, tmp_path):
    srv = emberd(php_conf(extra="server.stream-request-body = 1\n"
                          "server.stream-response-body = 1\n"))
    payload = os.urandom(2 * 1024 * 1024)
    src = tmp_path / "payload.bin"
    src.write_bytes(payload)
    r = curl("--http2-prior-knowledge", "--data-binary", f"@{src}",
             f"http://127.0.0.1:{srv.port}/echo.php")
    assert r.stdout == payload, r.stderr
    r = curl("--http2-prior-knowledge", "-H", "Transfer-Encoding:", "-H", "Content-Length:",
             "--data-binary", f"@{src}", f"http://127.0.0.1:{srv.port}/echo.php")
    assert r.stdout == payload, r.stderr  # no content-length: read whole, then sent
    r = curl("--http2-prior-knowledge", f"http://127.0.0.1:{srv.port}/big.php?n=64")
    assert r.stdout == bytes(range(256)) * 256 * 64


def test_chunked_request_body_is_read_whole_first(emberd, php_site):
    srv = emberd(php_conf(extra="server.stream-request-body = 2\n"))
    body = b"7\r\nchunked\r\n5\r\n body\r\n0\r\n\r\n"
    reply = raw(srv.port, b"POST /echo.php HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + body)
    (r,) = parse_replies(reply)
    assert r.status == 200 and r.body == b"chunked body"


def test_php_status_and_error_intercept(emberd, php_site, docroot):
    srv = emberd(php_conf())
    r = get(srv.port, "/status.php?s=404")
    assert r.status == 404 and r.body == b"backend says 404"  # the backend's own page
    (docroot / "errors").mkdir()
    (docroot / "errors" / "404.html").write_text("intercepted\n")
    srv2 = emberd(php_conf(extra='server.error-intercept = "enable"\n'
                           f'server.errorfile-prefix = "{docroot}/errors/"\n'))
    r = get(srv2.port, "/status.php?s=404")
    assert r.status == 404 and r.body == b"intercepted\n"


def test_x_sendfile(emberd, php_site, docroot):
    srv = emberd(php_conf(', "x-sendfile" => "enable", '
                          f'"x-sendfile-docroot" => ( "{docroot}/sub" )'))
    r = get(srv.port, f"/send.php?f={docroot}/sub/page.txt")
    assert r.status == 200 and r.body == b"a page\n"
    assert r.header("content-length") == "7" and r.header("x-sendfile") is None
    r = get(srv.port, f"/send.php?f={docroot}/sub/page.txt", headers={"Range": "bytes=2-3"})
    assert r.status == 206 and r.body == b"pa"
    assert get(srv.port, f"/send.php?f={docroot}/index.html").status == 502  # outside
    assert get(srv.port, f"/send.php?f={docroot}/sub/../index.html").status == 502
    assert get(srv.port, f"/send.php?f={docroot}/sub/none.txt").status == 404
    off = emberd(php_conf())
    r = get(off.port, f"/send.php?f={docroot}/sub/page.txt")
    assert r.body == b"" and r.header("x-sendfile") == f"{docroot}/sub/page.txt"


def test_stderr_goes_to_the_error_log(emberd, php_site):
    srv = emberd(php_conf())
    assert get(srv.port, "/stderr.php").body == b"ok"
    wait_for(lambda: "php complains" in srv.log())


def test_keep_conn_reuses_connections(emberd, php_site):
    srv = emberd(php_conf(extra="fastcgi.debug = 1\n"))
    for i in range(5):
        assert get(srv.port, f"/env.php?{i}").status == 200
    assert srv.log().count("(kept connection)") >= 3
    off = emberd(php_conf(', "keep-conn" => "disable"', extra="fastcgi.debug = 1\n"))
    for i in range(3):
        assert get(off.port, f"/env.php?{i}").status == 200
    assert "(kept connection)" not in off.log()


def test_php_cgi_restarted_after_it_dies(emberd, php_site):
    srv = emberd(php_conf())
    assert get(srv.port, "/env.php").status == 200
    pid = int(srv.log().split("(pid ")[-1].split(")")[0])
    os.killpg(pid, 9)  # php-cgi and its worker: the socket is gone with them
    wait_for(lambda: "exited with status" in srv.log())
    wait_for(lambda: srv.log().count("started /usr/bin/php-cgi") == 2)
    assert get(srv.port, "/env.php").status == 200


def test_backends_stop_with_the_server(emberd, php_site):
    srv = emberd(php_conf())
    assert get(srv.port, "/env.php").status == 200
    pid = int(srv.log().split("(pid ")[-1].split(")")[0])
    srv.stop()
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or
             Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z")


# -- external backends: php-cgi -b, fcgiwrap, cgi-fcgi ---------------------------------

@pytest.fixture
def external(tmp_path: Path):
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], sock: Path, **kw: object) -> Path:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, **kw)  # type: ignore[call-overload]
        started.append(p)
        wait_for(sock.exists)
        return sock

    yield start
    for p in started:
        os.killpg(p.pid, 15)
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:  # php-cgi -b may ignore SIGTERM while it waits
            os.killpg(p.pid, 9)
            p.wait(10)


def test_php_cgi_b(emberd, php_site, external, tmp_path):
    sock = external([PHP_CGI, "-b", str(tmp_path / "php-b.sock")], tmp_path / "php-b.sock")
    srv = emberd(MODULES + f'fastcgi.server = ( ".php" => ( ( "socket" => "{sock}" ) ) )\n')
    env = json.loads(get(srv.port, "/env.php/x?q").body)
    assert env["PATH_INFO"] == "/x" and env["QUERY_STRING"] == "q"
    r = get(srv.port, "/echo.php", method="POST", body=b"4" * 4096)
    assert r.body == b"4" * 4096


def test_fcgiwrap_cgi_scripts(emberd, docroot, external, tmp_path):
    cgi = docroot / "hello.cgi"
    cgi.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
                   "echo \"method=$REQUEST_METHOD info=$PATH_INFO\"\ncat\n")
    cgi.chmod(0o755)
    sock = tmp_path / "fcgiwrap.sock"
    external(["/usr/sbin/fcgiwrap", "-s", f"unix:{sock}"], sock)
    srv = emberd(MODULES + f'fastcgi.server = ( ".cgi" => ( ( "socket" => "{sock}" ) ) )\n')
    r = get(srv.port, "/hello.cgi/p", method="POST", body=b"posted")
    assert r.status == 200
    assert r.body == b"method=POST info=/p\nposted"


def test_cgi_fcgi_spawned_backend(emberd, docroot, tmp_path):
    sock = tmp_path / "spawned.sock"
    app = tmp_path / "app.sh"  # cgi-fcgi takes a program without arguments
    app.write_text(f"#!/bin/sh\nexec {BACKEND}\n")
    app.chmod(0o755)
    subprocess.run(["cgi-fcgi", "-start", "-connect", str(sock), str(app)], check=True,
                   timeout=30, capture_output=True)
    try:
        srv = emberd(MODULES + 'fastcgi.server = ( "/app" => ( ( "socket" => "'
                     f'{sock}", "check-local" => "disable" ) ) )\n')
        r = get(srv.port, "/app/a/b?env")
        assert r.status == 200
        env = dict(line.split("=", 1) for line in r.body.decode().splitlines())
        assert env["SCRIPT_NAME"] == "/app" and env["PATH_INFO"] == "/a/b"
    finally:
        pid = int(get_pid(sock))
        os.kill(pid, 15)


def get_pid(sock: Path) -> str:
    """The pid of the backend on ``sock`` (it reports it in X-Pid)."""
    from emberd.fcgi import records as r

    s = socket.socket(socket.AF_UNIX)
    s.connect(str(sock))
    s.sendall(r.begin_request(1) + r.encode(r.PARAMS, 1, r.encode_pairs([(b"QUERY_STRING",
                                                                            b"")]))
              + r.encode(r.PARAMS, 1) + r.encode(r.STDIN, 1))
    data = b""
    while b"X-Pid" not in data or b"\r\n\r\n" not in data:
        data += s.recv(4096)
    s.close()
    return data.split(b"X-Pid: ")[1].split(b"\r\n")[0].decode()


# -- URL mapping -------------------------------------------------------------------------

def backend_conf(key: str, host: str = "", extra: str = "",
                 sock: str = 'var.CWD + "/fake.sock"') -> str:
    """tests/fcgi_backend.py started by emberd; ``sock`` is a config expression."""
    return (MODULES + extra + f'fastcgi.server = ( "{key}" => ( "fake" => ( '
            f'"bin-path" => "{BACKEND}", "socket" => {sock}, "max-procs" => 1{host} ) ) )\n')


def env_of(port: int, path: str) -> dict[str, str]:
    r = get(port, path)
    assert r.status == 200, (r.status, r.body)
    return dict(line.split("=", 1) for line in r.body.decode().splitlines())


def test_prefix_split_without_check_local(emberd):
    srv = emberd(backend_conf("/api", ', "check-local" => "disable"'))
    env = env_of(srv.port, "/api/v1/status?env")
    assert env["SCRIPT_NAME"] == "/api" and env["PATH_INFO"] == "/v1/status"
    env = env_of(srv.port, "/api?env")
    assert env["SCRIPT_NAME"] == "/api" and "PATH_INFO" not in env


def test_fix_root_scriptname(emberd):
    srv = emberd(backend_conf("/", ', "check-local" => "disable", "fix-root-scriptname" => '
                              '"enable", "strip-request-uri" => "/"'))
    env = env_of(srv.port, "/some/where?env")
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/some/where"


def test_map_extensions(emberd, docroot):
    (docroot / "old.php3").write_text("x")
    srv = emberd(backend_conf(".php", extra='fastcgi.map-extensions = ( ".php3" => ".php" )\n'))
    assert env_of(srv.port, "/old.php3?env")["SCRIPT_NAME"] == "/old.php3"


def test_conditional_fastcgi_server(emberd, docroot):
    (docroot / "a.fcgi").write_text("x")
    srv = emberd(MODULES + '$HTTP["url"] =^ "/a" {\n' + backend_conf(".fcgi").replace(
        MODULES, "") + "}\n")
    assert env_of(srv.port, "/a.fcgi?env")["SCRIPT_NAME"] == "/a.fcgi"
    (docroot / "b.fcgi").write_text("static")
    assert get(srv.port, "/b.fcgi").body == b"static"


# -- failures ----------------------------------------------------------------------------

def fake(emberd, host: str = "", extra: str = ""):
    return emberd(backend_conf("/f", ', "check-local" => "disable"' + host, extra))


def test_absent_backend_is_503(emberd, tmp_path):
    srv = emberd(MODULES + 'fastcgi.server = ( ".php" => ( ( "socket" => "'
                 f'{tmp_path}/nobody.sock", "check-local" => "disable" ) ) )\n')
    assert get(srv.port, "/x.php").status == 503
    assert "disabled for 1 s" in srv.log()
    assert get(srv.port, "/x.php").status == 503  # while disabled
    assert "are down" in srv.log()


def test_overloaded_backend_is_503(emberd, tmp_path):
    path = str(tmp_path / "full.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(0)
    fillers = []
    for _ in range(2):  # fill the backlog: the next connect() fails with EAGAIN
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.connect(path)
        fillers.append(s)
    try:
        srv = emberd(MODULES + f'fastcgi.server = ( ".php" => ( ( "socket" => "{path}", '
                     '"check-local" => "disable" ) ) )\n')
        assert get(srv.port, "/x.php").status == 503
    finally:
        for s in fillers:
            s.close()
        listener.close()


@pytest.mark.parametrize("query, status, message", [
    ("garbage", 502, "malformed response head"),
    ("nohead", 500, "without a response"),
    ("vanish", 500, "closed the connection before its response"),
    ("status=503&echo", 503, None),
])
def test_backend_failures_map_to_statuses(emberd, query, status, message):
    srv = fake(emberd)
    r = get(srv.port, f"/f?{query}")
    assert r.status == status
    if message:
        wait_for(lambda: message in srv.log())
    assert get(srv.port, "/f?echo").status == 200  # the next request is fine


def test_read_timeout_is_504(emberd):
    srv = fake(emberd, ', "read-timeout" => 1')
    t0 = time.monotonic()
    assert get(srv.port, "/f?sleep=4").status == 504
    assert time.monotonic() - t0 < 3.9
    assert "read timeout" in srv.log()


def test_write_timeout_is_504(emberd):
    srv = fake(emberd, ', "write-timeout" => 1')
    r = get(srv.port, "/f?noread", method="POST", body=b"z" * (8 << 20))
    assert r.status == 504
    assert "write timeout" in srv.log()


def test_backend_dying_mid_response_cuts_the_response(emberd):
    srv = fake(emberd, ', "disable-time" => 1', extra="server.stream-response-body = 1\n")
    reply = raw(srv.port, b"GET /f?die HTTP/1.1\r\nHost: x\r\n\r\n", half_close=False)
    assert reply.startswith(b"HTTP/1.1 200 OK")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert not body.endswith(b"0\r\n\r\n")  # never finished, connection closed: the client knows
    wait_for(lambda: "exited with status 3" in srv.log())
    wait_for(lambda: get(srv.port, "/f?echo").status == 200)  # restarted after disable-time


def test_requests_beyond_max_connections_wait_in_emberd(emberd):
    srv = fake(emberd, ', "max-connections" => 2, "keep-conn" => "disable"')
    replies: list = []

    def one() -> None:
        replies.append(get(srv.port, "/f?sleep=0.5"))

    workers = [threading.Thread(target=one) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [r.status for r in replies] == [200] * 6
    assert max(int(r.header("x-connections")) for r in replies) <= 2


def test_waiting_longer_than_connect_timeout_is_503(emberd):
    srv = fake(emberd, ', "max-connections" => 1, "connect-timeout" => 1')
    slow = threading.Thread(target=get, args=(srv.port, "/f?sleep=4"))
    slow.start()
    time.sleep(0.5)
    assert get(srv.port, "/f?echo").status == 503
    slow.join(30)
    wait_for(lambda: "no backend process free within 1 s" in srv.log())


def test_backend_that_closes_after_each_request(emberd):
    srv = fake(emberd, extra="fastcgi.debug = 1\n")
    for _ in range(4):
        assert get(srv.port, "/f?close&env").status == 200
    for _ in range(4):
        assert get(srv.port, "/f?env").status == 200
    assert "(kept connection)" in srv.log()


def test_content_length_lies_cut_the_response(emberd):
    srv = fake(emberd, extra="server.stream-response-body = 1\n")
    reply = raw(srv.port, b"GET /f?length=100&big=1000 HTTP/1.1\r\nHost: x\r\n"
                b"Connection: close\r\n\r\n", half_close=False)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"Content-Length: 100" in head and len(body) == 100
    reply = raw(srv.port, b"GET /f?length=5000&big=10 HTTP/1.1\r\nHost: x\r\n\r\n",
                half_close=False)
    assert len(reply.partition(b"\r\n\r\n")[2]) == 10  # short: the connection was closed
    wait_for(lambda: "short of its Content-Length" in srv.log())


def test_h2_failure_after_head_resets_only_that_stream(emberd):
    srv = fake(emberd, extra="server.stream-response-body = 1\n")
    c = H2Client(srv.port)
    try:
        bad = c.request("/f?die")
        c.wait_ended(bad)
        assert c.streams[bad].status == 200 and c.streams[bad].reset is not None
        wait_for(lambda: get(srv.port, "/f?echo").status == 200)  # restarted
        good = c.get("/f?big=65536")
        assert good.status == 200 and len(good.data) == 256 * 256
    finally:
        c.close()


# -- bounded memory: slow clients, aborted uploads ------------------------------------------

def in_tmp(tmp_path: Path) -> str:
    return f'"{tmp_path}/fake.sock"'  # an in-process server's var.CWD is the test's


def test_endless_response_to_a_client_that_stops_reading(inprocess, tmp_path):
    srv = inprocess(backend_conf("/f", ', "check-local" => "disable"',
                                 "server.stream-response-body = 1\n", in_tmp(tmp_path)))
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(b"GET /f?endless HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: srv.stats.backend_active == 1)
    time.sleep(3)  # the backend writes as fast as it can; emberd must stop reading it
    used = srv.stats.chunks_used
    time.sleep(1)
    assert srv.stats.chunks_used == used and used < 200
    s.close()
    wait_for(lambda: srv.stats.backend_active == 0)


def test_h2_endless_response_is_bounded_by_the_stream_window(inprocess, tmp_path):
    srv = inprocess(backend_conf("/f", ', "check-local" => "disable"',
                                 "server.stream-response-body = 1\n", in_tmp(tmp_path)))
    c = H2Client(srv.port, auto_ack=False)  # never hands the window back
    try:
        sid = c.request("/f?endless")
        wait_for(lambda: srv.stats.backend_active == 1)
        time.sleep(3)
        used = srv.stats.chunks_used
        time.sleep(1)
        assert srv.stats.chunks_used == used and used < 200
        c.conn.reset_stream(sid)
        c.flush()
        wait_for(lambda: srv.stats.backend_active == 0)
    finally:
        c.close()


@pytest.mark.parametrize("stream", [0, 1, 2])
def test_client_aborting_mid_upload(inprocess, tmp_path, stream):
    uploads = tmp_path / f"uploads{stream}"
    uploads.mkdir()
    srv = inprocess(backend_conf("/f", ', "check-local" => "disable"',
                                 f"server.stream-request-body = {stream}\n"
                                 f'server.upload-dirs = ( "{uploads}" )\n'
                                 "emberd.body-memory-max = 16384\n", in_tmp(tmp_path)))
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /f?echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
    s.sendall(b"u" * (1 << 20))
    wait_for(lambda: srv.stats.temp_files >= 1 or srv.stats.backend_active == 1)
    s.close()
    wait_for(lambda: srv.stats.temp_files == 0 and srv.stats.backend_active == 0
             and srv.stats.requests_active == 0)
    assert srv.stats.body_bytes_in_memory == 0


def test_slow_backend_stops_reading_the_client(inprocess, tmp_path):
    """stream-request-body 2: a backend that does not read holds the client back."""
    srv = inprocess(backend_conf("/f", ', "check-local" => "disable", "write-timeout" => 8',
                                 "server.stream-request-body = 2\n", in_tmp(tmp_path)))
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.setblocking(False)
    s.sendall(b"POST /f?noread HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    sent = 0
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            sent += s.send(b"b" * 65536)
        except BlockingIOError:
            time.sleep(0.05)
    assert sent < 16 << 20  # kernel buffers, not the whole body
    assert srv.stats.temp_files == 0
    s.close()  # not seen while emberd does not read: the write timeout ends it
    wait_for(lambda: srv.stats.backend_active == 0)


# -- real load clients -----------------------------------------------------------------------

def test_4k_posts_with_curl_and_h2load(emberd, php_site, tmp_path):
    srv = emberd(php_conf(extra="server.stream-request-body = 1\n"
                          "server.stream-response-body = 1\n"))
    data = tmp_path / "4k.bin"
    data.write_bytes(os.urandom(4096))
    url = f"http://127.0.0.1:{srv.port}/echo.php"
    r = curl("--data-binary", f"@{data}", url, url, url)
    assert r.stdout == data.read_bytes() * 3
    out = subprocess.run(["h2load", "-n", "300", "-c", "3", "-m", "4", "-d", str(data), url],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    assert "300 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 300 2xx" in out, out

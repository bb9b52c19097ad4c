"""emberd-control: driven by cgi-fcgi and by Debian's lighttpd directly, and end to end
through emberd with curl over HTTP/1.1 and h2c."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import get, wait_for

CONTROL = str(Path(sys.executable).parent / "emberd-control")
XRW = "X-Requested-With: emberd-test"


def curl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout,
                          check=False)


def curl_json(*args: str) -> tuple[int, dict]:
    r = curl("-w", "\n%{http_code}", *args)
    body, _, code = r.stdout.rpartition(b"\n")
    return int(code), json.loads(body) if body.strip() else {}


@pytest.fixture
def control_files(tmp_path: Path) -> Path:
    """control.conf and a stub reboot/firmware command under tmp_path/ctl."""
    d = tmp_path / "ctl"
    (d / "uploads").mkdir(parents=True)
    (d / "fw.sh").write_text("#!/bin/sh\necho \"flashing $1\"\ntest -s \"$1\" || exit 4\n"
                             "cp \"$1\" \"$(dirname \"$0\")/flashed.img\"\n")
    (d / "fw.sh").chmod(0o755)
    (d / "control.conf").write_text(
        f'control.socket = "{d}/control.sock"\n'
        f'control.upload-dir = "{d}/uploads"\n'
        "control.upload-max-size = 4096\n"
        f'control.tunables-file = "{d}/tunables.tun"\n'
        # the emberd fixture writes the first server's configuration there
        f'control.emberd-config = "{d.parent}/run0/emberd.conf"\n'
        f'control.emberd-pid-file = "{d}/emberd.pid"\n'
        'control.reboot-command = ( "/bin/sh", "-c", "echo no reboot here; exit 3" )\n'
        f'control.firmware-command = ( "{d}/fw.sh" )\n')
    return d


def emberd_conf(ctl: Path, extra: str = "", host: str = "") -> str:
    return ('server.modules = ( "mod_fastcgi", "mod_staticfile" )\n'
            f'server.pid-file = "{ctl}/emberd.pid"\n'
            "server.stream-request-body = 1\nserver.stream-response-body = 1\n"
            f'include "{ctl}/*.tun"\n' + extra +
            'fastcgi.server = ( "/api/" => ( "control" => ( "bin-path" => "'
            f'{CONTROL} --config {ctl}/control.conf", "socket" => "{ctl}/spawned.sock", '
            f'"check-local" => "disable", "max-procs" => 1{host} ) ) )\n')


@pytest.fixture
def stack(emberd, control_files):
    srv = emberd(emberd_conf(control_files))
    wait_for(lambda: "emberd-control) started" in srv.log())
    return srv


# -- emberd-control alone, as its own service ------------------------------------------

@pytest.fixture
def service(control_files):
    p = subprocess.Popen([CONTROL, "--config", str(control_files / "control.conf")],
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    wait_for((control_files / "control.sock").exists)
    yield control_files / "control.sock"
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert not (control_files / "control.sock").exists()  # removed at exit


def test_check_mode_and_config_errors(control_files):
    ok = subprocess.run([CONTROL, "-t", "--config", str(control_files / "control.conf")],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "Syntax OK" in ok.stdout
    bad = control_files / "bad.conf"
    bad.write_text('control.upload-max-size = "big"\n')
    r = subprocess.run([CONTROL, "-t", "--config", str(bad)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 1 and "bad.conf:1" in r.stderr and "control.upload-max-size" in r.stderr


def test_socket_mode(service):
    assert oct(os.stat(service).st_mode & 0o777) == "0o660"


def test_cgi_fcgi_drives_the_api(service):
    env = {"PATH": os.environ["PATH"], "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/api/status",
           "SERVER_PROTOCOL": "HTTP/1.1", "QUERY_STRING": ""}
    r = subprocess.run(["cgi-fcgi", "-bind", "-connect", str(service)], env=env,
                       capture_output=True, timeout=30, check=False, stdin=subprocess.DEVNULL)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Status: 200") and b"application/json" in head
    status = json.loads(body)
    assert status["control"]["pid"] > 0 and "mod_fastcgi" in status["modules"]
    env.update(REQUEST_METHOD="POST", SCRIPT_NAME="/api/upload", QUERY_STRING="name=c.bin",
               CONTENT_LENGTH="6", HTTP_X_REQUESTED_WITH="cgi-fcgi")
    r = subprocess.run(["cgi-fcgi", "-bind", "-connect", str(service)], env=env,
                       input=b"abcdef", capture_output=True, timeout=30, check=False)
    assert r.stdout.startswith(b"Status: 201")
    assert (service.parent / "uploads" / "c.bin").read_bytes() == b"abcdef"


def test_lighttpd_as_the_fastcgi_client(service, tmp_path):
    port_sock = socket.socket()
    port_sock.bind(("127.0.0.1", 0))
    port = port_sock.getsockname()[1]
    port_sock.close()
    conf = tmp_path / "lighttpd.conf"
    conf.write_text(f'server.document-root = "{tmp_path}"\nserver.bind = "127.0.0.1"\n'
                    f'server.port = {port}\nserver.errorlog = "{tmp_path}/lighttpd.log"\n'
                    'server.modules = ( "mod_fastcgi" )\n'
                    'fastcgi.server = ( "/api/" => ( ( "socket" => "'
                    f'{service}", "check-local" => "disable" ) ) )\n')
    lighttpd = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
    p = subprocess.Popen([lighttpd, "-D", "-f", str(conf)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: get_ok(port))
        code, status = curl_json(f"http://127.0.0.1:{port}/api/status")
        assert code == 200 and status["control"]["rss_kb"] > 0
        code, err = curl_json("-X", "PUT", f"http://127.0.0.1:{port}/api/config", "-d", "{}")
        assert code == 403 and err["status"] == 403
        data = os.urandom(300_000)
        (tmp_path / "up.bin").write_bytes(data)
        code, up = curl_json("-H", XRW, "--data-binary", f"@{tmp_path}/up.bin",
                             f"http://127.0.0.1:{port}/api/upload?name=via-lighttpd.bin")
        assert code == 201 and up["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        p.terminate()
        p.wait(10)


def get_ok(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# -- through emberd ------------------------------------------------------------------------

@pytest.mark.parametrize("h2", [False, True])
def test_status_and_config_round_trip(stack, control_files, h2):
    proto = ["--http2-prior-knowledge"] if h2 else []
    base = f"http://127.0.0.1:{stack.port}/api"
    code, status = curl_json(*proto, f"{base}/status")
    assert code == 200 and status["emberd"]["running"]
    assert status["emberd"]["rss_kb"] > 1000 and status["versions"]["emberd"]
    code, config = curl_json(*proto, f"{base}/config")
    assert code == 200
    assert config["tunables"]["server.max-connections"]["unit"] == "connections"
    code, done = curl_json(*proto, "-X", "PUT", "-H", XRW, "-d",
                           '{"server.max-keep-alive-requests": 50}', f"{base}/config")
    assert code == 200 and done["changed"] == ["server.max-keep-alive-requests"]
    wait_for(lambda: "configuration reloaded" in stack.log())
    code, config = curl_json(*proto, f"{base}/config")
    assert config["tunables"]["server.max-keep-alive-requests"]["value"] == 50
    assert config["overrides"] == {"server.max-keep-alive-requests": 50}


@pytest.mark.parametrize("body, status, message", [
    ("{bad", 400, "not JSON"),
    ("[1, 2]", 400, "expected an object"),
    ('{"server.port": 81}', 400, "not a tunable"),
    ('{"server.max-connections": 0}', 400, "out of range"),
    ('{"emberd.body-memory-max": "lots"}', 400, "expected an integer"),
])
def test_bad_config_changes(stack, control_files, body, status, message):
    code, err = curl_json("-X", "PUT", "-H", XRW, "-d", body,
                          f"http://127.0.0.1:{stack.port}/api/config")
    assert code == status and err["status"] == status and message in err["error"]
    assert not (control_files / "tunables.tun").exists()


def test_cross_site_requests_are_refused(stack):
    url = f"http://127.0.0.1:{stack.port}/api/reboot"
    assert curl_json("-X", "POST", url)[0] == 403
    assert curl_json("-X", "POST", "-H", "Origin: http://evil.example", url)[0] == 403
    code, _err = curl_json("-X", "POST", "-H", f"Origin: http://127.0.0.1:{stack.port}", url)
    assert code == 500  # allowed through: the stub reboot command fails


def test_commands_report_exit_status(stack, control_files):
    base = f"http://127.0.0.1:{stack.port}/api"
    code, err = curl_json("-X", "POST", "-H", XRW, f"{base}/reboot")
    assert code == 500 and err["exit_status"] == 3 and "no reboot here" in err["output"]
    image = control_files / "image.bin"
    image.write_bytes(os.urandom(200_000))
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    code, done = curl_json("-H", XRW, "-H", f"X-Firmware-SHA256: {digest}",
                           "--data-binary", f"@{image}", f"{base}/firmware")
    assert code == 200 and "flashing" in done["output"]
    assert (control_files / "flashed.img").read_bytes() == image.read_bytes()
    code, err = curl_json("-H", XRW, "-H", f"X-Firmware-SHA256: {'0' * 64}",
                          "--data-binary", f"@{image}", f"{base}/firmware")
    assert code == 400 and "mismatch" in err["error"]
    code, err = curl_json("-H", XRW, "--data-binary", f"@{image}", f"{base}/firmware")
    assert code == 400 and "X-Firmware-SHA256" in err["error"]
    assert os.listdir(control_files / "uploads") == []  # images are not left behind


@pytest.mark.parametrize("h2", [False, True])
def test_uploads(stack, control_files, tmp_path, h2):
    proto = ["--http2-prior-knowledge"] if h2 else []
    base = f"http://127.0.0.1:{stack.port}/api/upload"
    data = os.urandom(3_000_000)
    (tmp_path / "u.bin").write_bytes(data)
    code, up = curl_json(*proto, "-H", XRW, "--data-binary", f"@{tmp_path}/u.bin",
                         f"{base}?name=u.bin")
    assert code == 201 and up["size"] == len(data)
    assert (control_files / "uploads" / "u.bin").read_bytes() == data
    (tmp_path / "big.bin").write_bytes(b"b" * (4096 * 1024 + 1))
    code, _err = curl_json("-H", XRW, "--data-binary", f"@{tmp_path}/big.bin",
                          f"{base}?name=big.bin")
    assert code == 413
    assert sorted(os.listdir(control_files / "uploads")) == ["u.bin"]


@pytest.mark.parametrize("name", ["../etc/passwd", ".hidden", "a/b", "", "x" * 200, "%00"])
def test_upload_names_are_checked(stack, control_files, name):
    r = get(stack.port, f"/api/upload?name={name}", method="POST", body=b"data",
            headers={"X-Requested-With": "t"})
    assert r.status == 400 and json.loads(r.body)["status"] == 400
    assert os.listdir(control_files / "uploads") == []


def test_client_abort_mid_upload_leaves_nothing(stack, control_files):
    s = socket.create_connection(("127.0.0.1", stack.port))
    s.sendall(b"POST /api/upload?name=cut.bin HTTP/1.1\r\nHost: x\r\nX-Requested-With: t\r\n"
              b"Content-Length: 2000000\r\n\r\n" + b"c" * 500_000)
    wait_for(lambda: any(n.endswith(".part") for n in os.listdir(control_files / "uploads")))
    s.close()
    wait_for(lambda: os.listdir(control_files / "uploads") == [])


def test_reload_while_an_upload_is_in_flight(stack, control_files):
    pid = status_pid(stack.port)
    s = socket.create_connection(("127.0.0.1", stack.port))
    s.sendall(b"POST /api/upload?name=slow.bin HTTP/1.1\r\nHost: x\r\nX-Requested-With: t\r\n"
              b"Connection: close\r\nContent-Length: 200000\r\n\r\n" + b"s" * 100_000)
    code, _ = curl_json("-X", "PUT", "-H", XRW, "-d", '{"server.max-read-idle": 40}',
                        f"http://127.0.0.1:{stack.port}/api/config")
    assert code == 200
    wait_for(lambda: "configuration reloaded" in stack.log())
    s.sendall(b"s" * 100_000)
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    s.close()
    assert reply.startswith(b"HTTP/1.1 201")
    assert (control_files / "uploads" / "slow.bin").stat().st_size == 200_000
    assert status_pid(stack.port) == pid  # the backend outlived the reload


def status_pid(port: int) -> int:
    code, status = curl_json(f"http://127.0.0.1:{port}/api/status")
    assert code == 200
    return int(status["control"]["pid"])


def test_upload_to_a_full_disk(emberd, control_files, tmp_path):
    """A 256 KiB tmpfs (in a mount namespace of emberd-control's own) fills up: 507."""
    uploads = control_files / "uploads"
    unshare = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-r", "--mount"]
    wrapper = control_files / "in-tmpfs.sh"
    wrapper.write_text(f"#!/bin/sh\nmount -t tmpfs -o size=256k tmpfs {uploads} || exit 1\n"
                       f"exec {CONTROL} --config {control_files}/control.conf\n")
    wrapper.chmod(0o755)
    srv = emberd(emberd_conf(control_files).replace(
        f"{CONTROL} --config {control_files}/control.conf",
        f"{' '.join(unshare)} {wrapper}"))
    wait_for(lambda: "emberd-control) started" in srv.log())
    pid = status_pid(srv.port)
    inside = Path(f"/proc/{pid}/root{uploads}")
    (tmp_path / "half.bin").write_bytes(b"h" * 200_000)
    base = f"http://127.0.0.1:{srv.port}/api/upload"
    assert curl_json("-H", XRW, "--data-binary", f"@{tmp_path}/half.bin",
                     f"{base}?name=one.bin")[0] == 201
    code, err = curl_json("-H", XRW, "--data-binary", f"@{tmp_path}/half.bin",
                          f"{base}?name=two.bin")
    assert code == 507 and "no space" in err["error"]
    assert sorted(os.listdir(inside)) == ["one.bin"]  # no partial file
    (tmp_path / "small.bin").write_bytes(b"s" * 10_000)
    assert curl_json("-H", XRW, "--data-binary", f"@{tmp_path}/small.bin",
                     f"{base}?name=three.bin")[0] == 201  # the space was given back


def test_control_memory_is_reported_and_bounded(stack):
    """Many requests: emberd-control's RSS stays near where it started (a coarse bound)."""
    url = f"http://127.0.0.1:{stack.port}/api/status"
    first = curl_json(url)[1]["control"]["rss_kb"]
    for _ in range(200):
        assert get(stack.port, "/api/status").status == 200
    last = curl_json(url)[1]["control"]["rss_kb"]
    assert last - first < 2048, (first, last)

"""The server process: listeners, signals, reloads, limits, privileges, memory hygiene."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import EMBERD, Emberd, get, parse_replies, raw, wait_for


def test_no_libssl_is_mapped(emberd):
    srv = emberd()
    get(srv.port, "/index.html")
    maps = Path(f"/proc/{srv.pid}/maps").read_text()
    assert "libssl" not in maps


def test_pid_file_written_and_removed(emberd, tmp_path):
    pidfile = tmp_path / "emberd.pid"
    srv = emberd(f'server.pid-file = "{pidfile}"\n')
    assert pidfile.read_text() == f"{srv.pid}\n"
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_unix_socket_and_extra_listener(emberd, tmp_path):
    path = tmp_path / "emberd.sock"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        extra = probe.getsockname()[1]
    srv = emberd(f'$SERVER["socket"] == "{path}" {{ }}\n'
                 f'$SERVER["socket"] == "127.0.0.1:{extra}" {{\n'
                 '  server.tag = "extra-listener"\n}\n')
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(b"GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert parse_replies(data)[0].status == 200
    assert get(extra, "/index.html").header("Server") == "extra-listener"
    assert get(srv.port, "/index.html").header("Server").startswith("emberd/")
    srv.stop()
    assert not path.exists()


def test_ipv6_listener(emberd):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    with socket.socket(socket.AF_INET6) as probe:
        try:
            probe.bind(("::1", 0))
        except OSError:
            pytest.skip("::1 is not configured")
        port = probe.getsockname()[1]
    emberd(f'$SERVER["socket"] == "[::1]:{port}" {{ }}\n')
    with socket.create_connection(("::1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 ")


def test_bind_failure_is_reported(tmp_path, docroot):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = tmp_path / "e.conf"
        conf.write_text(f'server.document-root = "{docroot}"\nserver.bind = "127.0.0.1"\n'
                        f"server.port = {port}\n")
        r = subprocess.run([EMBERD, "-D", "-f", str(conf)], capture_output=True, text=True,
                           timeout=30)
    assert r.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr


def test_daemonizes_without_D(tmp_path, docroot):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pidfile = tmp_path / "d.pid"
    conf = tmp_path / "d.conf"
    conf.write_text(f'server.document-root = "{docroot}"\nserver.bind = "127.0.0.1"\n'
                    f'server.port = {port}\nserver.pid-file = "{pidfile}"\n'
                    f'server.errorlog = "{tmp_path}/d.log"\n')
    r = subprocess.run([EMBERD, "-f", str(conf)], timeout=30)
    assert r.returncode == 0  # the foreground process returns at once
    wait_for(pidfile.exists)
    pid = int(pidfile.read_text())
    try:
        wait_for(lambda: "started" in (tmp_path / "d.log").read_text())
        assert get(port, "/index.html").status == 200
        assert os.getsid(pid) != os.getsid(0)  # detached into a session of its own
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pidfile.exists())


def test_reload_applies_a_good_config_and_keeps_the_listener(emberd):
    srv = emberd('server.tag = "before"\n')
    assert get(srv.port, "/").header("Server") == "before"
    text = srv.conf_path.read_text().replace('"before"', '"after"')
    srv.conf_path.write_text(text)
    srv.send_signal(signal.SIGUSR1)
    wait_for(lambda: "configuration reloaded" in srv.log())
    assert get(srv.port, "/").header("Server") == "after"


def test_reload_with_a_bad_config_keeps_the_old_one(emberd):
    srv = emberd('server.tag = "good"\n')
    srv.conf_path.write_text(srv.conf_path.read_text() + "server.port = \"x\"\n")
    srv.send_signal(signal.SIGUSR1)
    wait_for(lambda: "reload failed" in srv.log())
    assert "server.port: expected an integer" in srv.log()
    assert get(srv.port, "/").header("Server") == "good"


def test_reload_warns_about_restart_only_directives(emberd):
    srv = emberd("server.max-fds = 1024\n")
    srv.conf_path.write_text(srv.conf_path.read_text().replace("1024", "2048"))
    srv.send_signal(signal.SIGUSR1)
    wait_for(lambda: "configuration reloaded" in srv.log())
    assert "server.max-fds changed; it takes effect only after a restart" in srv.log()


def slow_download(port: int, result: list[bytes]) -> None:
    """Fetch /data.bin reading slowly (small receive buffer), store what arrived."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /data.bin HTTP/1.1\r\nHost: a\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
            time.sleep(0.002)
        result.append(data)


def test_graceful_shutdown_finishes_requests_in_flight(emberd, docroot):
    srv = emberd('server.network-backend = "write"\n')
    result: list[bytes] = []
    t = threading.Thread(target=slow_download, args=(srv.port, result))
    t.start()
    time.sleep(0.5)
    srv.send_signal(signal.SIGINT)
    t.join(60)
    assert srv.proc.wait(30) == 0
    reply = parse_replies(result[0])[0]
    assert reply.status == 200 and reply.body == (docroot / "data.bin").read_bytes()
    assert reply.header("Connection") in (None, "close")
    assert "shutting down gracefully" in srv.log()


def test_graceful_shutdown_timeout(emberd):
    srv = emberd('server.feature-flags = ( "server.graceful-shutdown-timeout" => 1 )\n')
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
    time.sleep(0.3)
    t0 = time.monotonic()
    srv.send_signal(signal.SIGINT)
    assert srv.proc.wait(30) == 0
    assert time.monotonic() - t0 < 10
    assert "graceful shutdown timeout" in srv.log()
    s.close()


def test_sighup_reopens_logs(emberd, tmp_path):
    log = tmp_path / "access.log"
    srv = emberd(f'server.modules = ( "mod_accesslog", "mod_staticfile" )\n'
                 f'accesslog.filename = "{log}"\n')
    get(srv.port, "/index.html")
    wait_for(lambda: log.exists() and "GET /index.html" in log.read_text())
    log.rename(tmp_path / "access.log.1")
    srv.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    get(srv.port, "/sub/page.txt")
    wait_for(lambda: log.exists() and "GET /sub/page.txt" in log.read_text())
    assert "/sub/page.txt" not in (tmp_path / "access.log.1").read_text()


def test_accesslog_pipe(emberd, tmp_path):
    out = tmp_path / "piped.log"
    srv = emberd(f'server.modules = ( "mod_accesslog", "mod_staticfile" )\n'
                 f'accesslog.filename = "|cat >> {out}"\n')
    get(srv.port, "/index.html")
    wait_for(lambda: out.exists() and '"GET /index.html HTTP/1.1" 200' in out.read_text())


def test_privileges_are_dropped(emberd):
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="emberd-public-"))  # readable by nobody
    try:
        public.chmod(0o755)
        (public / "index.html").write_text("public\n")
        (public / "index.html").chmod(0o644)
        _check_privileges(emberd, public)
    finally:
        shutil.rmtree(public)


def _check_privileges(emberd, public: Path) -> None:
    srv = emberd(f'server.document-root := "{public}"\n'
                 'server.username = "nobody"\nserver.groupname = "nogroup"\n')
    status = Path(f"/proc/{srv.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    if os.getuid() == 0:
        import pwd

        assert uid_line.split()[1] == str(pwd.getpwnam("nobody").pw_uid)
    else:
        assert "not running as root" in srv.log()
    assert get(srv.port, "/index.html").status == 200


def test_max_connections_stops_accepting(inprocess):
    srv = inprocess("server.max-connections = 2\n")
    held = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", srv.port))  # waits in the backlog
    extra.sendall(b"GET /index.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    extra.settimeout(0.5)
    with pytest.raises(socket.timeout):
        extra.recv(100)
    assert srv.stats.connections == 2 and srv.stats.accept_paused >= 1
    held[0].close()
    extra.settimeout(10)
    assert extra.recv(100).startswith(b"HTTP/1.1 200")
    assert srv.stats.connections_high_water == 2
    for s in [*held[1:], extra]:
        s.close()


def test_large_upload_spills_to_temp_files_and_leaves_nothing(inprocess, tmp_path):
    updir = tmp_path / "uploads"
    updir.mkdir()
    srv = inprocess(f'server.upload-dirs = ( "{updir}" )\nemberd.body-memory-max = 4096\n')
    body = os.urandom(300_000)
    with socket.create_connection(("127.0.0.1", srv.port)) as s:
        s.sendall(b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 300000\r\n\r\n")
        s.sendall(body[:150_000])
        wait_for(lambda: srv.stats.temp_files == 1)
        assert srv.stats.body_bytes_in_memory == 0
        assert os.listdir(updir) == []
        s.sendall(body[150_000:])
        s.settimeout(10)
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    wait_for(lambda: srv.stats.temp_files == 0 and srv.stats.temp_file_bytes == 0)


def test_aborted_upload_cleans_up(inprocess, tmp_path):
    srv = inprocess(f'server.upload-dirs = ( "{tmp_path}" )\nemberd.body-memory-max = 1024\n')
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /index.html HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" +
              b"x" * 50_000)
    wait_for(lambda: srv.stats.temp_files == 1)
    s.close()
    wait_for(lambda: srv.stats.temp_files == 0 and srv.stats.connections == 0)
    assert srv.stats.chunks_used == 0


def test_all_upload_dirs_full_gives_507(inprocess, tmp_path, monkeypatch):
    import errno

    from emberd.core import body as body_mod

    real_write = os.write

    def full(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    srv = inprocess(f'server.upload-dirs = ( "{tmp_path}" )\nemberd.body-memory-max = 1024\n')
    monkeypatch.setattr(body_mod.os, "write", full)
    reply = parse_replies(raw(srv.port, b"POST /index.html HTTP/1.1\r\nHost: a\r\n"
                                        b"Content-Length: 5000\r\n\r\n" + b"y" * 5000))[0]
    assert reply.status == 507
    wait_for(lambda: srv.stats.temp_files == 0)
    assert get(srv.port, "/index.html").status == 200


def test_idle_connections_hold_no_buffer(inprocess):
    srv = inprocess()
    conns = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(20)]
    for c in conns:
        c.sendall(b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.5)
    assert srv.stats.connections == 20
    assert srv.stats.chunks_used == 0
    for c in conns:
        c.close()


def test_maintenance_returns_free_slabs(inprocess):
    srv = inprocess("server.chunkqueue-chunk-sz = 1024\nemberd.chunk-reserve = 1\n"
                    'server.network-backend = "write"\n')
    replies = [get(srv.port, "/data.bin") for _ in range(3)]
    assert all(r.status == 200 for r in replies)
    assert srv.stats.slabs >= 1
    srv.call(srv.server.maintenance)
    assert srv.stats.slabs <= 1 and srv.stats.chunks_used == 0


def test_event_handlers(emberd):
    for handler in ("poll", "select", "epoll"):
        srv = emberd(f'server.event-handler = "{handler}"\n')
        assert get(srv.port, "/index.html").status == 200


def test_memory_stats_line(emberd):
    srv = emberd("emberd.memory-stats-interval = 1\n")
    wait_for(lambda: "(memory) rss=" in srv.log())
    assert "slabs=" in srv.log() and "connections=" in srv.log()


def test_emberd_class_cleans_up(tmp_path, docroot):
    srv = Emberd(tmp_path, f'server.document-root = "{docroot}"\n').start()
    assert srv.stop() == 0

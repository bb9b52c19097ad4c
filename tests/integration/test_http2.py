"""HTTP/2: prior knowledge, h2c, settings, flow control, abuse -- with real clients and
frame-level tests on the h2 library."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time

import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    WindowUpdateFrame,
)

from tests.h2client import PREFACE, H2Client
from tests.helpers import get, parse_replies, raw, wait_for

MODULES = 'server.modules = ( "mod_indexfile", "mod_access", "mod_staticfile" )\n' \
          'index-file.names = ( "index.html" )\n'


@pytest.fixture
def srv(emberd):
    return emberd(MODULES)



# -- real clients -----------------------------------------------------------------

def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=60, check=False)


def test_curl_prior_knowledge(srv, docroot):
    r = curl("--http2-prior-knowledge", "-w", "%{http_version} %{http_code}",
             f"http://127.0.0.1:{srv.port}/data.bin", "-o", "/dev/stdout")
    assert r.stdout.endswith(b"2 200")
    assert r.stdout[:-5] == (docroot / "data.bin").read_bytes()


def test_h2c_upgrade_when_enabled(emberd, docroot):
    off = emberd(MODULES)
    r = curl("--http2", "-w", "%{http_version}", f"http://127.0.0.1:{off.port}/index.html")
    assert r.stdout.endswith(b"1.1")  # the flag is off by default, as lighttpd 1.4.83+
    on = emberd(MODULES + 'server.feature-flags = ( "server.h2c" => "enable" )\n')
    r = curl("--http2", "-w", " %{http_version}", f"http://127.0.0.1:{on.port}/index.html")
    assert r.stdout == (docroot / "index.html").read_bytes() + b" 2"


def test_h2c_upgrade_headers_are_not_passed_on(emberd):
    srv = emberd(MODULES + 'server.feature-flags = ( "server.h2c" => "enable" )\n'
                 '$REQUEST_HEADER["Upgrade"] != "" { url.access-deny = ( "" ) }\n')
    r = curl("--http2", "-w", " %{http_version} %{http_code}",
             f"http://127.0.0.1:{srv.port}/index.html", "-o", "/dev/null")
    assert r.stdout == b" 2 200"


def test_nghttp(srv):
    r = subprocess.run(["nghttp", "-ns", f"http://127.0.0.1:{srv.port}/data.bin"],
                       capture_output=True, text=True, timeout=60, check=True)
    assert "1048576" in r.stdout or "1M" in r.stdout or "/data.bin" in r.stdout


def test_h2load(srv):
    r = subprocess.run(["h2load", "-c4", "-m8", "-n2000", f"http://127.0.0.1:{srv.port}/"],
                       capture_output=True, text=True, timeout=120, check=True)
    assert "2000 succeeded, 0 failed, 0 errored" in r.stdout
    assert "status codes: 2000 2xx" in r.stdout


def test_h2proto_disabled(emberd):
    srv = emberd(MODULES + 'server.feature-flags = ( "server.h2proto" => "disable" )\n')
    data = raw(srv.port, PREFACE)
    assert data.startswith(b"HTTP/1.1 505")


def test_broken_preface_is_not_answered_as_http1(srv):
    data = raw(srv.port, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
    assert not data.startswith(b"HTTP/1.1")
    assert data[3] == 0x07 and data[-4:] == b"\x00\x00\x00\x01"  # GOAWAY PROTOCOL_ERROR


# -- settings, requests, flow control -------------------------------------------------

def test_settings_and_connection_window(srv):
    c = H2Client(srv.port)
    c.get("/index.html")
    s = c.remote_settings
    assert s[SettingCodes.MAX_CONCURRENT_STREAMS] == 8
    assert s[SettingCodes.INITIAL_WINDOW_SIZE] == 65536
    assert s[SettingCodes.MAX_HEADER_LIST_SIZE] == 65535
    assert s[SettingCodes.ENABLE_PUSH] == 0
    assert c.conn.outbound_flow_control_window >= 262144 - 65535 - 100
    c.close()


def test_settings_from_directives(emberd):
    srv = emberd(MODULES + "h2.max-concurrent-streams = 3\nh2.initial-window-size = 131072\n")
    c = H2Client(srv.port)
    c.get("/index.html")
    assert c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 3
    assert c.remote_settings[SettingCodes.INITIAL_WINDOW_SIZE] == 131072
    c.close()


def test_static_semantics_are_the_same_as_http1(srv, docroot):
    c = H2Client(srv.port)
    r = c.get("/index.html")
    assert r.status == 200 and bytes(r.data) == (docroot / "index.html").read_bytes()
    etag = r.headers["etag"]
    assert c.get("/index.html", headers=[("if-none-match", etag)]).status == 304
    rng = c.get("/data.bin", headers=[("range", "bytes=10-19")])
    assert rng.status == 206 and bytes(rng.data) == (docroot / "data.bin").read_bytes()[10:20]
    assert c.get("/missing").status == 404
    head = c.get("/index.html", method="HEAD")
    assert head.status == 200 and head.data == b"" and head.headers["content-length"] == "16"
    assert c.get("/sub").headers["location"] == "/sub/"
    assert c.get("/").status == 200
    c.close()


def test_many_streams_at_once(srv, docroot):
    c = H2Client(srv.port)
    ids = [c.request("/data.bin") for _ in range(8)]
    c.pump(lambda: all(c.streams[i].ended for i in ids), timeout=30)
    data = (docroot / "data.bin").read_bytes()
    assert all(bytes(c.streams[i].data) == data for i in ids)
    c.close()


def test_a_stalled_stream_does_not_block_the_others(srv):
    # stream windows of 16 KiB that are never acknowledged, a large connection window
    c = H2Client(srv.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 16384}, auto_ack=False)
    c.conn.increment_flow_control_window(8 << 20)
    c.flush()
    big = c.request("/data.bin")
    c.pump(lambda: len(c.streams[big].data) >= 16384)  # its window is used up
    small = c.request("/index.html")
    c.pump(lambda: c.streams[small].ended)
    assert c.streams[small].status == 200
    assert not c.streams[big].ended
    c.close()


def test_request_bodies_and_flow_control(srv):
    c = H2Client(srv.port)
    for _ in range(12):  # 12 x 100 KB: more than the 256 KiB connection window
        r = c.get("/index.html", method="POST", body=b"x" * 100_000)
        assert r.status == 200
    c.close()


def test_body_over_the_limit_is_413(emberd):
    srv = emberd(MODULES + "server.max-request-size = 16\n")
    c = H2Client(srv.port)
    r = c.get("/index.html", method="POST", body=b"y" * 40_000,
              headers=[("content-length", "40000")])
    assert r.status == 413
    assert c.get("/index.html").status == 200  # the connection goes on
    c.close()


def test_oversized_headers_get_431(srv):
    c = H2Client(srv.port)
    r = c.get("/index.html", headers=[("x-big", "z" * 9000)])
    assert r.status == 431
    assert c.get("/index.html").status == 200
    c.close()


def test_max_requests_per_connection(emberd):
    srv = emberd(MODULES + "h2.max-requests-per-connection = 3\n")
    c = H2Client(srv.port)
    for _ in range(3):
        assert c.get("/index.html").status == 200
    c.pump(lambda: c.goaway is not None)
    assert c.goaway.error_code == ErrorCodes.NO_ERROR and c.goaway.last_stream_id == 5
    c.close()


def test_graceful_shutdown_finishes_streams(emberd, docroot):
    srv = emberd(MODULES)
    c = H2Client(srv.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 65535})
    sid = c.request("/data.bin")
    c.pump(lambda: len(c.streams[sid].data) > 0)
    srv.send_signal(signal.SIGINT)
    c.pump(lambda: c.streams[sid].ended, timeout=30)
    assert bytes(c.streams[sid].data) == (docroot / "data.bin").read_bytes()
    assert c.goaway is not None and c.goaway.last_stream_id == sid
    assert srv.proc.wait(20) == 0


def test_reload_sends_goaway_so_clients_pick_up_new_settings(emberd):
    srv = emberd(MODULES + "h2.max-concurrent-streams = 4\n")
    c = H2Client(srv.port)
    assert c.get("/index.html").status == 200
    srv.conf_path.write_text(srv.conf_path.read_text().replace("= 4", "= 6"))
    srv.send_signal(signal.SIGUSR1)
    c.pump(lambda: c.goaway is not None)
    assert c.goaway.error_code == ErrorCodes.NO_ERROR
    c.close()
    c = H2Client(srv.port)
    c.get("/index.html")
    assert c.remote_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 6
    c.close()


def test_access_log_over_http2(emberd, tmp_path):
    log = tmp_path / "h2access.log"
    srv = emberd(MODULES.replace('"mod_staticfile"', '"mod_accesslog", "mod_staticfile"') +
                 f'accesslog.filename = "{log}"\n')
    c = H2Client(srv.port)
    c.get("/index.html")
    c.close()
    wait_for(lambda: log.exists() and '"GET /index.html HTTP/2.0" 200 16' in log.read_text())


# -- abuse ---------------------------------------------------------------------------

def raw_client(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(PREFACE + bytes.fromhex("000000040000000000"))  # empty SETTINGS
    return s


def read_goaway(s: socket.socket) -> tuple[int, int]:
    """(last stream id, error code) of the GOAWAY the server sends, reading to EOF."""
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        if data[pos + 3] == 0x07:
            payload = data[pos + 9 : pos + 9 + length]
            return (int.from_bytes(payload[:4], "big") & 0x7FFFFFFF,
                    int.from_bytes(payload[4:8], "big"))
        pos += 9 + length
    raise AssertionError("no GOAWAY")


HPACK_GET = bytes.fromhex("828684") + b"\x41\x09localhost"  # :method GET :path / :scheme http


def test_continuation_flood(srv):
    s = raw_client(srv.port)
    h = HeadersFrame(1)
    h.data = HPACK_GET
    s.sendall(h.serialize())
    for _ in range(40):
        c = ContinuationFrame(1)
        c.data = b"\x40\x01a\x01b"  # literal header a: b
        s.sendall(c.serialize())
    assert read_goaway(s)[1] == ErrorCodes.ENHANCE_YOUR_CALM
    assert get(srv.port, "/index.html").status == 200


def test_oversized_header_block(srv):
    s = raw_client(srv.port)
    h = HeadersFrame(1)
    h.data = HPACK_GET
    s.sendall(h.serialize())
    for _ in range(6):
        c = ContinuationFrame(1)
        c.data = b"\x40\x01x" + b"\x7f\x81\x7f" + b"v" * 16000
        s.sendall(c.serialize())
    assert read_goaway(s)[1] == ErrorCodes.FRAME_SIZE_ERROR


def test_rapid_reset(srv):
    s = raw_client(srv.port)
    for sid in range(1, 80, 2):
        h = HeadersFrame(sid, flags=["END_HEADERS"])
        h.data = HPACK_GET
        r = RstStreamFrame(sid)
        r.error_code = ErrorCodes.CANCEL
        s.sendall(h.serialize() + r.serialize())
    assert read_goaway(s)[1] == ErrorCodes.NO_ERROR
    assert "rapid reset" in srv.log()


def read_frames(s: socket.socket, seconds: float = 1.0) -> list[tuple[int, int, bytes]]:
    """(type, stream id, payload) of the frames that arrive within ``seconds``."""
    data = b""
    s.settimeout(0.1)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    frames, pos = [], 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        sid = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
        frames.append((data[pos + 3], sid, data[pos + 9:pos + 9 + length]))
        pos += 9 + length
    return frames


def test_streams_beyond_the_limit_are_refused(srv):
    """A client that opens streams before it has our SETTINGS (browsers do): a stream
    error per excess stream (RFC 9113 5.1.2), and the connection goes on."""
    s = raw_client(srv.port)
    for sid in range(1, 25, 2):  # 12 open streams, 8 allowed
        h = HeadersFrame(sid, flags=["END_HEADERS"])  # no END_STREAM: they stay open
        h.data = HPACK_GET
        s.sendall(h.serialize())
    frames = read_frames(s)
    resets = {sid: int.from_bytes(p, "big") for t, sid, p in frames if t == 0x3}
    assert resets == {sid: ErrorCodes.REFUSED_STREAM for sid in (17, 19, 21, 23)}
    assert not [f for f in frames if f[0] == 0x7]  # no GOAWAY
    h = HeadersFrame(25, flags=["END_HEADERS", "END_STREAM"])
    h.data = HPACK_GET
    s.sendall(h.serialize())
    later = read_frames(s)  # eight are still open: refused too, on a connection still up
    assert (0x3, 25, ErrorCodes.REFUSED_STREAM.to_bytes(4, "big")) in later


def test_far_too_many_streams_end_the_connection(srv):
    s = raw_client(srv.port)
    for sid in range(1, 2 * 60, 2):  # 60 open streams: beyond what is refused one by one
        h = HeadersFrame(sid, flags=["END_HEADERS"])
        h.data = HPACK_GET
        s.sendall(h.serialize())
    assert read_goaway(s)[1] == ErrorCodes.PROTOCOL_ERROR


def test_window_update_overflow(srv):
    s = raw_client(srv.port)
    w = WindowUpdateFrame(0)
    w.window_increment = 2**31 - 1
    s.sendall(w.serialize())
    assert read_goaway(s)[1] == ErrorCodes.FLOW_CONTROL_ERROR


def test_data_on_a_closed_stream(srv):
    s = raw_client(srv.port)
    h = HeadersFrame(1, flags=["END_HEADERS", "END_STREAM"])
    h.data = HPACK_GET
    s.sendall(h.serialize())
    time.sleep(0.3)  # the response goes out and the stream closes
    d = DataFrame(1, flags=["END_STREAM"])
    d.data = b"late"
    s.sendall(d.serialize())
    s.settimeout(1.0)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    kinds = {}
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        kinds.setdefault(data[pos + 3], []).append(data[pos + 9 : pos + 9 + length])
        pos += 9 + length
    codes = [int.from_bytes(p[-4:], "big") for p in kinds.get(0x03, []) + kinds.get(0x07, [])]
    assert ErrorCodes.STREAM_CLOSED in codes


def test_ping_flood_from_a_client_that_does_not_read(inprocess):
    srv = inprocess(MODULES)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    s.connect(("127.0.0.1", srv.port))
    s.sendall(PREFACE + bytes.fromhex("000000040000000000"))
    ping = PingFrame(0)
    ping.opaque_data = b"12345678"
    burst = ping.serialize() * 4096  # 68 KiB of PINGs
    sent = 0
    s.settimeout(1.0)
    end = time.monotonic() + 20
    try:
        while time.monotonic() < end:
            s.sendall(burst)
            sent += len(burst)
    except TimeoutError:
        pass  # the server stopped reading us
    assert time.monotonic() < end, "the server kept reading a client that does not read"

    def queued():  # type: ignore[no-untyped-def]
        (conn,) = srv.server.connections
        return conn.write_buffered, conn.transport.is_reading()

    buffered, reading = srv.call(queued)
    assert buffered <= 64 * 1024 + 16 * 1024  # the bound, plus one read's worth of ACKs
    assert not reading
    s.close()


def test_zero_window_reader_times_out(emberd):
    srv = emberd(MODULES + "server.max-write-idle = 1\n")
    c = H2Client(srv.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    sid = c.request("/data.bin")
    t0 = time.monotonic()
    c.pump(timeout=15)
    assert c.closed and time.monotonic() - t0 < 12
    assert not c.streams[sid].data


def test_twenty_thousand_streams_stay_bounded(inprocess):
    srv = inprocess(MODULES + "server.max-keep-alive-idle = 60\n")
    c = H2Client(srv.port)
    for _ in range(20_000):
        sid = c.request("/index.html")
        c.wait_ended(sid)
        del c.streams[sid]

    def bounds():  # type: ignore[no-untyped-def]
        (conn,) = srv.server.connections
        d = conn.driver
        return (d.sess.closed_records, len(d.streams), len(d.sess.conn.streams),
                srv.stats.request_pool_pooled, srv.stats.chunks_used)

    closed, streams, h2streams, pooled, chunks = srv.call(bounds)
    assert closed <= 100
    assert streams == 0 and h2streams <= 8
    assert pooled <= srv.stats.request_pool_cap
    assert chunks == 0
    c.close()


def test_upgrade_and_h1_share_nothing_after_close(srv):
    threads = [threading.Thread(target=lambda: H2Client(srv.port).get("/index.html"))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert parse_replies(raw(srv.port, b"GET / HTTP/1.0\r\n\r\n"))[0].status == 200

"""mod_status (status page, statistics, memory view) and the memory budget under stress."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time

import pytest
from hyperframe.frame import PingFrame, SettingsFrame

from tests.h2client import H2Client
from tests.helpers import EMBERD, get, wait_for

STATUS = ('server.modules = ( "mod_status", "mod_staticfile" )\n'
          'status.status-url = "/server-status"\n'
          'status.statistics-url = "/server-statistics"\n'
          'status.memory-url = "/server-memory"\n'
          'status.config-url = "/server-config"\n')


def memory(port: int) -> dict:
    r = get(port, "/server-memory")
    assert r.status == 200 and r.header("content-type") == "application/json"
    return json.loads(r.body)


def test_memory_view(emberd):
    srv = emberd(STATUS)
    with H2Client(srv.port) as c:
        for _ in range(20):
            assert c.get("/index.html").status == 200
        view = memory(srv.port)
        assert view["http2"]["connections"] == 1
        assert view["http2"]["closed_stream_records"] >= 10
    p = view["process"]
    assert 5_000 < p["vmrss_kb"] <= p["vmhwm_kb"] and p["rssanon_kb"] > 0
    assert p["pss_kb"] is None or p["pss_kb"] > 0
    assert p["python_allocator"] == (os.environ.get("PYTHONMALLOC") or "pymalloc")
    c = view["chunks"]
    assert c["slabs"] >= 1 and c["used"] + c["free"] >= 1 and c["chunk_size"] > 0
    assert view["connections"]["open"] >= 1 and view["requests"]["served"] >= 20
    assert set(view["request_pool"]) == {"cap", "pooled", "in_use", "trimmed"}
    assert view["bodies"] == {"in_memory_bytes": 0, "temp_files": 0, "temp_file_bytes": 0}
    assert len(view["gc"]["counts"]) == 3 and view["uptime_s"] >= 0
    assert view["malloc"] is None or view["malloc"]["arena"] > 0


def test_status_page_json_auto_statistics_config(emberd):
    srv = emberd(STATUS)
    page = get(srv.port, "/server-status")
    assert page.status == 200 and b"<h1>emberd status</h1>" in page.body
    assert b"HTTP/1.1" in page.body  # this very connection is listed
    summary = json.loads(get(srv.port, "/server-status?json").body)
    assert set(summary) == {"RequestsTotal", "TrafficTotal", "Uptime", "BusyServers",
                            "IdleServers", "RequestAverage5s", "TrafficAverage5s"}
    assert summary["RequestsTotal"] >= 2
    auto = get(srv.port, "/server-status?auto").body.decode()
    assert "Total Accesses: " in auto and "BusyServers: " in auto
    stats = dict(line.split(": ", 1) for line in
                 get(srv.port, "/server-statistics").body.decode().splitlines())
    assert int(stats["emberd.requests.served"]) >= 4
    assert stats["fastcgi.active-requests"] == "0"
    config = json.loads(get(srv.port, "/server-config").body)
    assert config["modules_loaded"] == ["mod_status", "mod_staticfile"]


def test_memory_stats_line_in_the_log(emberd):
    srv = emberd(STATUS + "emberd.memory-stats-interval = 1\n")
    wait_for(lambda: "(memory) rss=" in srv.log())
    line = [x for x in srv.log().splitlines() if "(memory)" in x][-1]
    for field in ("hwm=", "anon=", "chunks used=", "h2-streams=", "temp-files=", "requests="):
        assert field in line


STRESS = ("server.max-connections = 24\nh2.max-concurrent-streams = 4\n"
          "emberd.body-memory-max = 16384\nserver.max-request-size = 2048\n"
          "server.max-write-idle = 30\n")


@pytest.mark.slow
def test_peak_memory_stays_within_the_budget(emberd, docroot, tmp_path):
    """Slow readers, big uploads and frame floods at once: VmHWM <= --memory-budget."""
    (docroot / "big.bin").write_bytes(b"B" * (4 << 20))
    srv = emberd(STATUS + STRESS + f'server.upload-dirs = ( "{tmp_path}" )\n')
    out = subprocess.run([EMBERD, "--memory-budget", "-f", str(srv.conf_path)],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    total_kib = int(out.split("total: ")[1].split(" KiB")[0])
    stop = time.monotonic() + 8

    def slow_reader() -> None:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        while time.monotonic() < stop:
            s.recv(512)
            time.sleep(0.2)
        s.close()

    def uploader() -> None:
        with H2Client(srv.port) as c:
            while time.monotonic() < stop:
                sids = [c.request("/index.html", method="POST", body=b"u" * 1_500_000)
                        for _ in range(4)]
                for sid in sids:
                    c.wait_ended(sid)

    def flooder() -> None:
        with H2Client(srv.port) as c:
            frames = b"".join(PingFrame(0, opaque_data=b"12345678").serialize()
                              + SettingsFrame(0).serialize() for _ in range(500))
            while time.monotonic() < stop:
                try:
                    c.send_raw(frames)
                    c.pump(timeout=0.05)
                except OSError:
                    return

    workers = ([threading.Thread(target=slow_reader) for _ in range(12)]
               + [threading.Thread(target=uploader) for _ in range(6)]
               + [threading.Thread(target=flooder) for _ in range(4)])
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    view = memory(srv.port)
    hwm = view["process"]["vmhwm_kb"]
    assert view["connections"]["high_water"] >= 12
    assert hwm < total_kib, (hwm, total_kib, out)

"""The soak's load clients: h2load's command lines and summary, the built-in client's budget."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from emberd.tools.soak_load import (
    H2C,
    HTTP11,
    KEEPALIVE_MAX,
    Budget,
    Builtin,
    H2load,
    LoadResult,
    Target,
    choose,
    parse_h2load,
    steady_spans,
)

# the tail of `h2load -c50 -m8 -D 10 -d 4k.bin` (nghttp2 1.52) against emberd
H2LOAD_OUTPUT = """\
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 10.01s, 1715.20 req/s, 364.50KB/s
requests: 17152 total, 17552 started, 17152 done, 1932 succeeded, 15220 failed, 0 errored, 0 timeout
status codes: 1932 2xx, 0 3xx, 0 4xx, 15220 5xx
traffic: 3.56MB (3732580) total, 1.01MB (1061484) headers (space savings 54.02%), 2.10MB (2199960) data
"""

TARGET = Target(8080, "/api/upload?name=soak.bin", Path("/tmp/4k.bin"), H2C)


def test_h2load_summary_is_parsed():
    r = parse_h2load(H2LOAD_OUTPUT, LoadResult("h2load"))
    assert (r.requests, r.ok, r.failed, r.errors) == (17152, 1932, 15220, 0)
    assert r.statuses == {"2xx": 1932, "5xx": 15220}
    assert r.seconds == pytest.approx(10.01) and r.rate == pytest.approx(1713.5, abs=0.1)
    assert r.note == ""


def test_h2load_without_a_summary_leaves_a_note():
    r = parse_h2load("connect: Connection refused\n", LoadResult("h2load"))
    assert r.requests == 0 and "no summary" in r.note and "refused" in r.note


def test_steady_phase_spans_start_a_connection_before_the_keep_alive_cap():
    h1 = Target(8080, "/x", Path("/b"), HTTP11)
    assert steady_spans(h1, 100, 600) == [600]
    spans = steady_spans(h1, 100, 1800)
    assert spans == [654.35, 654.35, pytest.approx(491.3)]
    assert all(s * 100 < KEEPALIVE_MAX for s in spans)
    assert steady_spans(TARGET, 100, 1800) == [1800]  # h2c: one connection throughout


def test_load_results_add_up():
    a = LoadResult("h2load", seconds=10, requests=5, ok=4, errors=1, statuses={"2xx": 4})
    a.add(LoadResult("h2load", seconds=5, requests=3, ok=3, statuses={"2xx": 3}, note="n"))
    assert (a.seconds, a.requests, a.ok, a.errors) == (15, 8, 7, 1)
    assert a.statuses == {"2xx": 7} and a.note == "n"


def test_h2load_command_lines():
    h2load = H2load("/usr/bin/h2load")
    assert h2load.steady_command(TARGET, 100, 600) == [
        "/usr/bin/h2load", "-c1", "-m1", "--rps=100", "-D600", "-d", "/tmp/4k.bin",
        "-H", "x-requested-with: emberd-soak",
        "-H", "authorization: Basic c29hazpzb2FrLXBhc3N3b3Jk",
        "http://127.0.0.1:8080/api/upload?name=soak.bin"]
    assert h2load.burst_command(TARGET, 50, 8, 30)[1:4] == ["-c50", "-m8", "-D30"]
    h1 = Target(8080, "/x", Path("/b"), HTTP11)
    # posting data, h2load pipelines at most one request per HTTP/1.1 connection anyway
    assert h2load.burst_command(h1, 50, 8, 30)[1:5] == ["--h1", "-c50", "-m1", "-D30"]
    assert h2load.steady_command(h1, 100, 0.4)[1:6] == ["--h1", "-c1", "-m1", "--rps=100",
                                                         "-D1"]


def test_choose():
    assert isinstance(choose("auto", "/usr/bin/h2load"), H2load)
    assert isinstance(choose("auto", None), Builtin)
    assert isinstance(choose("builtin", "/usr/bin/h2load"), Builtin)
    with pytest.raises(ValueError, match="nghttp2-client"):
        choose("h2load", None)
    with pytest.raises(ValueError):
        choose("wrk", "/usr/bin/h2load")


def test_budget_paces_and_ends():
    b = Budget(seconds=60, max_requests=3, rate=10)
    assert b.wait() == 0.0
    b.take()
    assert 0.05 < (b.wait() or 0) <= 0.1  # the next one is due 0.1 s after the start
    b.take()
    b.take()
    assert b.wait() is None  # the count is spent


def test_budget_ends_at_the_deadline():
    b = Budget(seconds=0.05, max_requests=10**6, rate=None)
    assert b.wait() == 0.0
    time.sleep(0.06)
    assert b.wait() is None
    # a request due after the deadline is not started either
    assert Budget(seconds=0.5, max_requests=10, rate=1).wait() == 0.0
    late = Budget(seconds=0.5, max_requests=10, rate=1)
    late.take()
    assert late.wait() is None


def test_result_counts():
    r = LoadResult("x")
    for status in (201, 201, 503, 0, 413):
        r.count(status)
    assert (r.requests, r.ok, r.failed, r.errors) == (5, 2, 3, 1)
    assert r.statuses == {"2xx": 2, "5xx": 1, "4xx": 1}

"""The soak's load: h2load when it is installed, otherwise a built-in client on h2 and h11.

Two shapes of load, each for HTTP/2 over cleartext (prior knowledge, "h2c")
or HTTP/1.1, all POSTing the same 4 KB body to the same URL:

* **steady** -- the bug-#3084 workload: one connection, one request at a
  time, ``rate`` requests per second (100: a POST every 10 ms).
  ``h2load -c1 -m1 --rps=RATE -D SECONDS -d BODY``.
* **burst** -- ``connections`` connections with ``streams`` requests in
  flight on each, as fast as the server answers.
  ``h2load -cC -mM -D SECONDS -d BODY``.  Over HTTP/1.1 a connection has
  one request in flight (h2load caps pipelining at 1 when posting data, and
  the built-in client does not pipeline).

Both clients are bounded in time and in count.  h2load runs for ``-D``
seconds; the rate limit bounds the steady count, and the process is killed
(by its PID) if it overruns by ``GRACE`` seconds.  The built-in client
stops starting requests at the deadline or after ``max_requests``, waits at
most ``REQUEST_TIMEOUT`` for any answer, and is cancelled ``GRACE`` seconds
after the deadline whatever happens.

Options of Debian's nghttp2-client 1.52 used: ``-c -m -D --rps -d -H --h1``
(``-D`` accepts plain seconds; ``--rps`` is per client).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h11

from .soak_servers import PASSWORD, USER

H2C = "h2c"
HTTP11 = "http/1.1"
PROTOCOLS = (H2C, HTTP11)

GRACE = 60.0  # seconds a phase may overrun before its client is stopped
KEEPALIVE_MAX = 65535  # requests one HTTP/1.1 connection may carry (both servers' largest)
REQUEST_TIMEOUT = 30.0  # seconds without an answer before a request counts as an error
BURST_MAX_RATE = 20_000  # count bound of a built-in burst: this many requests per second
XRW = ("x-requested-with", "emberd-soak")  # emberd-control refuses a POST without it
AUTH = ("authorization", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
_READ = 65536


@dataclass(frozen=True, slots=True)
class Target:
    """Where the load goes: a loopback port, one URL, one body."""

    port: int
    path: str
    body_file: Path
    protocol: str
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"


@dataclass(slots=True)
class LoadResult:
    """What one phase's client reports."""

    tool: str
    seconds: float = 0.0
    requests: int = 0  # finished: answered, or given up on
    ok: int = 0  # answered 2xx
    errors: int = 0  # given up on without an answer (reset, timeout, connection lost)
    statuses: dict[str, int] = field(default_factory=dict)  # "2xx" -> count
    note: str = ""

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def add(self, other: LoadResult) -> None:
        """Count in a later part of the same phase."""
        self.seconds += other.seconds
        self.requests += other.requests
        self.ok += other.ok
        self.errors += other.errors
        for key, n in other.statuses.items():
            self.statuses[key] = self.statuses.get(key, 0) + n
        self.note = "; ".join(n for n in (self.note, other.note) if n)

    def count(self, status: int) -> None:
        self.requests += 1
        if status == 0:
            self.errors += 1
            return
        key = f"{status // 100}xx"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if 200 <= status < 300:
            self.ok += 1


class Client(Protocol):
    name: str

    def steady(self, target: Target, rate: float, seconds: float) -> LoadResult: ...

    def burst(self, target: Target, connections: int, streams: int,
              seconds: float) -> LoadResult: ...


# -- h2load ------------------------------------------------------------------------------

_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_FINISHED = re.compile(r"finished in ([\d.]+)s")


def parse_h2load(output: str, result: LoadResult) -> LoadResult:
    """Fill ``result`` from h2load's summary; a note when there is none."""
    m = _REQUESTS.search(output)
    if m is None:
        result.note = "h2load printed no summary: " + " ".join(output.split()[-30:])
        return result
    _total, _started, done, succeeded, _failed, errored, timeout = map(int, m.groups())
    result.requests, result.ok, result.errors = done, succeeded, errored + timeout
    s = _STATUS.search(output)
    if s is not None:
        for key, n in zip(("2xx", "3xx", "4xx", "5xx"), map(int, s.groups()), strict=True):
            if n:
                result.statuses[key] = n
    f = _FINISHED.search(output)
    if f is not None:
        result.seconds = float(f.group(1))
    return result


def steady_spans(target: Target, rate: float, seconds: float) -> list[float]:
    """The steady phase cut where an HTTP/1.1 connection reaches KEEPALIVE_MAX requests:
    the server closes it then and h2load does not connect again, so each span is a fresh
    h2load (and connection).  HTTP/2 has no such cap in the soak's configuration."""
    span = (KEEPALIVE_MAX - rate) / rate if target.protocol == HTTP11 else seconds
    if span < 1:
        return [seconds]
    spans = []
    while seconds > 0:
        spans.append(min(seconds, span))
        seconds -= spans[-1]
    return spans


class H2load:
    """nghttp2's h2load as a subprocess."""

    name = "h2load"

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def steady_command(self, target: Target, rate: float, seconds: float) -> list[str]:
        return [self.exe, *self._proto(target), "-c1", "-m1", f"--rps={rate:g}",
                f"-D{max(1, round(seconds))}", *self._post(target), target.url]

    def burst_command(self, target: Target, connections: int, streams: int,
                      seconds: float) -> list[str]:
        m = streams if target.protocol == H2C else 1
        return [self.exe, *self._proto(target), f"-c{connections}", f"-m{m}",
                f"-D{max(1, round(seconds))}", *self._post(target), target.url]

    def steady(self, target: Target, rate: float, seconds: float) -> LoadResult:
        result = LoadResult(self.name)
        for part in steady_spans(target, rate, seconds):
            result.add(self._run(self.steady_command(target, rate, part), part))
        return result

    def burst(self, target: Target, connections: int, streams: int,
              seconds: float) -> LoadResult:
        return self._run(self.burst_command(target, connections, streams, seconds), seconds)

    @staticmethod
    def _proto(target: Target) -> list[str]:
        return ["--h1"] if target.protocol == HTTP11 else []

    @staticmethod
    def _post(target: Target) -> list[str]:
        return ["-d", str(target.body_file), "-H", f"{XRW[0]}: {XRW[1]}",
                "-H", f"{AUTH[0]}: {AUTH[1]}"]

    def _run(self, cmd: list[str], seconds: float) -> LoadResult:
        result = LoadResult(self.name)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            out, _ = proc.communicate(timeout=seconds + GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own child, by its PID
            out, _ = proc.communicate()
            result.note = f"h2load overran its {seconds:.0f} s by {GRACE:.0f} s and was killed"
        except BaseException:  # interrupted: take h2load down with us
            proc.kill()
            proc.wait()
            raise
        parse_h2load(out.decode("utf-8", "replace"), result)
        if not result.seconds:
            result.seconds = time.monotonic() - started
        return result


# -- the built-in client -----------------------------------------------------------------

class Budget:
    """When the next request may start: never after the deadline or the count, and (with a
    rate) no sooner than ``start + issued / rate``."""

    def __init__(self, seconds: float, max_requests: int, rate: float | None) -> None:
        self.start = time.monotonic()
        self.deadline = self.start + seconds
        self.left = max_requests
        self.rate = rate
        self.issued = 0

    def wait(self) -> float | None:
        """Seconds until a request may start (0: now), None when no more may."""
        now = time.monotonic()
        if self.left <= 0 or now >= self.deadline:
            return None
        if self.rate is None:
            return 0.0
        due = self.start + self.issued / self.rate
        if due >= self.deadline:
            return None
        return max(0.0, due - now)

    def take(self) -> None:
        self.left -= 1
        self.issued += 1


class Builtin:
    """A client on the h2 library (HTTP/2) and h11 (HTTP/1.1), one asyncio task per
    connection; slower than h2load (it costs a CPU core during a burst) but always there."""

    name = "built-in (h2, h11)"

    def steady(self, target: Target, rate: float, seconds: float) -> LoadResult:
        return self._run(target, 1, 1, seconds, rate, math.ceil(rate * seconds))

    def burst(self, target: Target, connections: int, streams: int,
              seconds: float) -> LoadResult:
        return self._run(target, connections, streams, seconds, None,
                         math.ceil(seconds * BURST_MAX_RATE))

    def _run(self, target: Target, connections: int, streams: int, seconds: float,
             rate: float | None, max_requests: int) -> LoadResult:
        result = LoadResult(self.name)
        body = target.body_file.read_bytes()
        started = time.monotonic()
        asyncio.run(_drive(target, body, connections, streams, seconds, rate, max_requests,
                           result))
        result.seconds = time.monotonic() - started
        return result


async def _drive(target: Target, body: bytes, connections: int, streams: int, seconds: float,
                 rate: float | None, max_requests: int, result: LoadResult) -> None:
    budget = Budget(seconds, max_requests, rate)
    session = _h2_session if target.protocol == H2C else _h1_session
    tasks = [asyncio.create_task(_connection(session, target, body, streams, budget, result))
             for _ in range(connections)]
    done, pending = await asyncio.wait(tasks, timeout=seconds + GRACE)
    for task in pending:
        task.cancel()
    if pending:
        result.note = f"{len(pending)} connection(s) overran the phase by {GRACE:.0f} s"
        await asyncio.wait(pending)
    for task in done:
        exc = task.exception()
        if exc is not None:
            result.note = f"client error: {exc!r}"


class _Session(Protocol):
    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       target: Target, body: bytes, streams: int, budget: Budget,
                       result: LoadResult) -> None: ...


async def _connection(session: _Session, target: Target, body: bytes, streams: int,
                      budget: Budget, result: LoadResult) -> None:
    """Connect, run a session, reconnect when the server closes, until the budget ends."""
    while (wait := budget.wait()) is not None:
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        try:
            reader, writer = await asyncio.open_connection(target.host, target.port)
        except OSError:
            await asyncio.sleep(0.2)  # the server is at max-connections or restarting
            continue
        try:
            await session(reader, writer, target, body, streams, budget, result)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _h2_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      target: Target, body: bytes, streams: int, budget: Budget,
                      result: LoadResult) -> None:
    """Requests on one HTTP/2 connection, at most ``streams`` in flight."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    headers = [(":method", "POST"), (":path", target.path), (":scheme", "http"),
               (":authority", f"{target.host}:{target.port}"),
               ("content-type", "application/octet-stream"),
               ("content-length", str(len(body))), XRW, AUTH]
    open_streams: dict[int, int] = {}  # stream id -> status (0 until the response head)
    unsent: dict[int, memoryview] = {}
    last_answer = time.monotonic()
    try:
        while True:
            while len(open_streams) < streams and budget.wait() == 0.0:
                budget.take()
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers, end_stream=not body)
                open_streams[sid] = 0
                if body:
                    unsent[sid] = memoryview(body)
            _send_bodies(conn, unsent)
            if out := conn.data_to_send():
                writer.write(out)
                await writer.drain()
            wait = budget.wait() if len(open_streams) < streams else None
            if not open_streams and wait is None:
                return
            timeout = REQUEST_TIMEOUT if wait is None else min(REQUEST_TIMEOUT, wait)
            try:
                data = await asyncio.wait_for(reader.read(_READ), max(timeout, 0.001))
            except TimeoutError:
                if open_streams and time.monotonic() - last_answer > REQUEST_TIMEOUT:
                    return  # the server went quiet: the open streams count as errors
                continue
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    for name, value in event.headers or ():
                        if name == b":status" and event.stream_id in open_streams:
                            open_streams[event.stream_id] = int(value)
                elif isinstance(event, h2.events.DataReceived):
                    conn.acknowledge_received_data(event.flow_controlled_length or 0,
                                                   event.stream_id or 0)
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                    sid = event.stream_id or 0
                    status = open_streams.pop(sid, 0)
                    unsent.pop(sid, None)
                    ended = isinstance(event, h2.events.StreamEnded)
                    result.count(status if ended else 0)
                    last_answer = time.monotonic()
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return  # h2 accepts no more frames after a GOAWAY: reconnect
    except (OSError, h2.exceptions.ProtocolError, ValueError):
        return
    finally:
        for _ in open_streams:
            result.count(0)


def _send_bodies(conn: h2.connection.H2Connection, unsent: dict[int, memoryview]) -> None:
    """As much of each body as the flow-control windows allow."""
    for sid, view in list(unsent.items()):
        n = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, len(view))
        if n <= 0:
            continue  # blocked until a WINDOW_UPDATE
        conn.send_data(sid, view[:n], end_stream=n == len(view))
        if n == len(view):
            del unsent[sid]
        else:
            unsent[sid] = view[n:]


async def _h1_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      target: Target, body: bytes, streams: int, budget: Budget,
                      result: LoadResult) -> None:
    """Keep-alive requests on one HTTP/1.1 connection, one at a time (no pipelining)."""
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(method="POST", target=target.path, headers=[
        ("Host", f"{target.host}:{target.port}"), ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(body))), XRW, AUTH])
    while (wait := budget.wait()) is not None:
        if wait > 0:
            await asyncio.sleep(wait)
            continue
        budget.take()
        status = 0
        try:
            writer.write(b"".join(conn.send(e) or b"" for e in (
                request, h11.Data(data=body), h11.EndOfMessage())))
            await writer.drain()
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await asyncio.wait_for(reader.read(_READ), REQUEST_TIMEOUT)
                    conn.receive_data(data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    status = 0
                    break
        except (OSError, TimeoutError, h11.ProtocolError):
            status = 0
        result.count(status)
        if status == 0 or h11.MUST_CLOSE in (conn.our_state, conn.their_state):
            return  # the caller reconnects
        try:
            conn.start_next_cycle()
        except h11.ProtocolError:
            return


def choose(preference: str, h2load: str | None) -> Client:
    """The client for ``preference`` ("auto", "h2load", "builtin"); ValueError if unusable."""
    if preference == "builtin":
        return Builtin()
    if preference in ("auto", "h2load"):
        if h2load:
            return H2load(h2load)
        if preference == "h2load":
            raise ValueError("h2load is not installed (Debian: apt-get install nghttp2-client)")
        return Builtin()
    raise ValueError(f"unknown client {preference!r}: auto, h2load or builtin")

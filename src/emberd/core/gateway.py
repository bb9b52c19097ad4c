"""Backend processes and connections to them (lighttpd's ``gw_backend.c``).

Theory of operation:

* A ``Host`` is one entry of ``fastcgi.server``: a fixed address (``socket``,
  or ``host`` and ``port``) or, with ``bin-path``, processes emberd starts
  itself.  Each address is a ``Proc``; a request goes to the least loaded
  one that is up.
* Spawning (``gw_spawn_connection()``): if something already answers on the
  address, it is used; otherwise emberd binds the socket, starts
  ``/bin/sh -c "exec <bin-path>"`` with the listening socket as fd 0 and the
  environment from ``bin-copy-environment`` and ``bin-environment``
  (``PHP_FCGI_CHILDREN=1`` unless set), and closes its own copy.  Proc N of a
  host uses ``<socket>-N`` (or port + N).
* Failures: a refused or missing address disables the proc for
  ``disable-time`` seconds; a spawned process that dies is started again
  once that time has passed (no spinning on a backend that exits at once).
  Procs above ``min-procs`` idle for ``idle-timeout`` seconds are stopped
  with ``kill-signal``.
* Connections are ``BackendConnection`` protocols reading into pooled chunks.
  With ``keep-conn`` (emberd's extension) a connection whose request ended
  cleanly waits, idle, for the next request to the same proc; a backend that
  closes it anyway is simply not reused.
* Hosts outlive a configuration reload when their ``fastcgi.server`` entry
  did not change: they are kept in a registry with reference counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import stat
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .chunk import ChunkPool
from .connection import Reading

UP, DISABLED, DIED = "up", "disabled", "died"
MAX_IDLE_CONNECTIONS = 4  # kept per proc with keep-conn
TERM_AFTER, KILL_AFTER = 8.0, 16.0  # seconds after kill-signal (lighttpd's escalation)


@dataclass(frozen=True, slots=True)
class HostOptions:
    label: str
    socket: str = ""
    host: str = ""
    port: int = 0
    bin_path: str = ""
    bin_environment: tuple[tuple[str, str], ...] = ()
    bin_copy_environment: tuple[str, ...] | None = None
    min_procs: int = 4
    max_procs: int = 4
    max_load_per_proc: int = 1
    kill_signal: int = signal.SIGTERM
    idle_timeout: int = 60
    disable_time: int = 1
    listen_backlog: int = 1024
    connect_timeout: int = 8
    read_timeout: int = 0
    write_timeout: int = 0
    keep_conn: bool = True
    max_conns: int = 16  # requests in flight per process; more wait in emberd


class BackendConnection(Reading, asyncio.BufferedProtocol):
    """One connection to a backend; its current user receives what arrives."""

    def __init__(self, proc: Proc, pool: ChunkPool) -> None:
        self.proc = proc
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.user: Any = None  # on_data(bytes), on_closed(exc), on_writable()
        self.closed = False
        self.paused = False
        self._chunk: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=64 * 1024, low=16 * 1024)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._chunk is None:
            self._chunk = self.pool.acquire()
        mem: memoryview = self._chunk.mem
        return mem

    def buffer_updated(self, nbytes: int) -> None:
        chunk = self._chunk
        self._chunk = None
        try:
            data = bytes(chunk.mem[:nbytes])
        finally:
            self.pool.release(chunk)
        if self.user is not None:
            self.user.on_data(data)
        else:
            self.close()  # an idle connection that talks: not FastCGI any more

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._chunk is not None:
            self.pool.release(self._chunk)
            self._chunk = None
        self.proc.forget(self)
        user, self.user = self.user, None
        if user is not None:
            user.on_closed(exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.user is not None:
            self.user.on_writable()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class Proc:
    """One backend address, and the process behind it when emberd started one."""

    def __init__(self, host: Host, index: int, address: str | tuple[str, int]) -> None:
        self.host = host
        self.index = index
        self.address = address
        self.process: subprocess.Popen[bytes] | None = None
        self.state = UP
        self.disabled_until = 0.0
        self.load = 0
        self.idle: list[BackendConnection] = []
        self.last_used = time.monotonic()

    def describe(self) -> str:
        a = self.address
        return a if isinstance(a, str) else f"{a[0]}:{a[1]}"

    def available(self, now: float) -> bool:
        if self.state == DISABLED and now >= self.disabled_until:
            self.state = UP
        return self.state == UP

    def disable(self, why: str) -> None:
        secs = self.host.opts.disable_time
        self.host.log(f"backend {self.host.opts.label} ({self.describe()}): {why}; "
                      f"disabled for {secs} s")
        self.state = DISABLED
        self.disabled_until = time.monotonic() + secs

    def take_idle(self) -> BackendConnection | None:
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return None

    def keep(self, conn: BackendConnection) -> None:
        conn.user = None
        if conn.closed or len(self.idle) >= MAX_IDLE_CONNECTIONS or self.state != UP:
            conn.close()
        else:
            self.idle.append(conn)

    def forget(self, conn: BackendConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    async def connect(self, pool: ChunkPool) -> BackendConnection:
        loop = asyncio.get_running_loop()
        factory: Callable[[], BackendConnection] = lambda: BackendConnection(self, pool)  # noqa: E731
        if isinstance(self.address, str):
            # connect(2) on a unix socket completes or fails at once; EAGAIN means a full
            # backlog (overloaded), which asyncio would mistake for "in progress"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                sock.connect(self.address)
            except OSError:
                sock.close()
                raise
            _, proto = await loop.create_unix_connection(factory, sock=sock)
        else:
            _, proto = await loop.create_connection(factory, *self.address)
        return proto

    def close_idle(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


class Host:
    def __init__(self, opts: HostOptions, log: Callable[[str], None],
                 errlog_fd: Callable[[], int]) -> None:
        self.opts = opts
        self.log = log
        self._errlog_fd = errlog_fd
        count = opts.max_procs if opts.bin_path else 1
        self.procs = [Proc(self, i, self._address(i)) for i in range(count)]
        self.started = False
        self.stopped = False
        self.active: set[Any] = set()  # requests in flight: check_timeouts(now) each second
        # requests waiting for a process to have fewer than max_conns in flight
        self.waiting: deque[Callable[[], None]] = deque()
        self._dying: list[tuple[subprocess.Popen[bytes], float]] = []  # signalled, not reaped

    # -- addresses, spawning ------------------------------------------------------

    def _address(self, index: int) -> str | tuple[str, int]:
        o = self.opts
        if o.socket:
            return f"{o.socket}-{index}" if o.bin_path else o.socket
        return (o.host or "127.0.0.1", o.port + (index if o.bin_path else 0))

    def start(self) -> None:
        """Start the processes of a bin-path host (once; after privileges are dropped)."""
        if self.started:
            return
        self.started = True
        o = self.opts
        if o.bin_path:
            for proc in self.procs[: max(1, o.min_procs)]:
                self.spawn(proc)

    def _environment(self) -> dict[str, str]:
        o = self.opts
        if o.bin_copy_environment is None:
            env = dict(os.environ)
        else:
            env = {k: os.environ[k] for k in o.bin_copy_environment if k in os.environ}
        env.update(dict(o.bin_environment))
        env.setdefault("PHP_FCGI_CHILDREN", "1")
        return env

    def _answers(self, address: str | tuple[str, int]) -> bool:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            try:
                probe.connect(address)
            except OSError:
                return False
        return True

    def spawn(self, proc: Proc) -> bool:
        """Start the process for ``proc`` (unless something answers on its address)."""
        o = self.opts
        address = proc.address
        if self._answers(address):
            self.log(f"backend {o.label}: something already answers on {proc.describe()}; "
                     "using it")
            proc.state = UP
            return True
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            if isinstance(address, str):
                with contextlib.suppress(FileNotFoundError):
                    if stat.S_ISSOCK(os.lstat(address).st_mode):
                        os.unlink(address)
            else:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(o.listen_backlog)
            proc.process = subprocess.Popen(
                ["/bin/sh", "-c", "exec " + o.bin_path], stdin=listener.fileno(),
                stdout=subprocess.DEVNULL, stderr=self._errlog_fd(), env=self._environment(),
                close_fds=True, start_new_session=True)
        except OSError as exc:
            proc.disable(f"cannot start {o.bin_path}: {exc.strerror or exc}")
            return False
        finally:
            listener.close()
        proc.state = UP
        proc.last_used = time.monotonic()
        self.log(f"backend {o.label}: started {o.bin_path} on {proc.describe()} "
                 f"(pid {proc.process.pid})")
        return True

    def _stop_proc(self, proc: Proc) -> None:
        proc.close_idle()
        p = proc.process
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(self.opts.kill_signal)
            self._dying.append((p, time.monotonic()))
        proc.process = None
        if isinstance(proc.address, str) and self.opts.bin_path:
            with contextlib.suppress(OSError):
                os.unlink(proc.address)

    def _reap(self, now: float) -> None:
        """Processes told to stop: SIGTERM after 8 s, SIGKILL after 16 s (as lighttpd)."""
        still: list[tuple[subprocess.Popen[bytes], float]] = []
        for p, since in self._dying:
            if p.poll() is not None:
                continue
            waited = now - since
            with contextlib.suppress(ProcessLookupError):
                if waited >= KILL_AFTER:
                    p.kill()
                elif waited >= TERM_AFTER:
                    p.terminate()
            still.append((p, since))
        self._dying = still

    # -- choosing, watching ----------------------------------------------------------

    def pick(self) -> Proc | None:
        """The least loaded proc that is up; another process when all are busy."""
        now = time.monotonic()
        up = [p for p in self.procs if (p.process is not None or not self.opts.bin_path)
              and p.available(now)]
        best = min(up, key=lambda p: p.load, default=None)
        if self.opts.bin_path and (best is None or best.load >= self.opts.max_load_per_proc):
            for proc in self.procs:
                if proc.process is None and (proc.state == UP or (
                        proc.state == DIED and now >= proc.disabled_until)) and self.spawn(proc):
                    return proc
        return best

    def load(self) -> int:
        return sum(p.load for p in self.procs)

    def wake(self) -> None:
        """A request left a process: the first waiting request may go."""
        if self.waiting:
            self.waiting.popleft()()

    def dying(self) -> bool:
        return bool(self._dying)

    def tick(self) -> None:
        """Once a second: timeouts, dead processes restarted, idle extra ones stopped."""
        now = time.monotonic()
        for user in list(self.active):
            user.check_timeouts(now)
        self._reap(now)
        if not self.opts.bin_path or self.stopped:
            return
        o = self.opts
        for proc in self.procs:
            p = proc.process
            if p is not None and p.poll() is not None:
                self.log(f"backend {o.label}: process {p.pid} on {proc.describe()} exited "
                         f"with status {p.returncode}; restarting it in {o.disable_time} s")
                proc.process = None
                proc.close_idle()
                proc.state = DIED
                proc.disabled_until = now + o.disable_time
            if proc.state == DIED and now >= proc.disabled_until and proc.load == 0 and (
                    proc.index < max(1, o.min_procs)):
                self.spawn(proc)
            if (proc.process is not None and proc.index >= max(1, o.min_procs)
                    and proc.load == 0 and now - proc.last_used > o.idle_timeout):
                self.log(f"backend {o.label}: stopping idle process on {proc.describe()}")
                self._stop_proc(proc)

    def stop(self, wait: float = 0.0) -> None:
        """Stop every process; with ``wait``, give them that long before SIGKILL."""
        self.stopped = True
        for proc in self.procs:
            self._stop_proc(proc)
        if not wait:
            return
        deadline = time.monotonic() + wait
        for p, _ in self._dying:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait()
        self._dying = []


class Registry:
    """Hosts shared across configuration reloads, counted by the configurations using them."""

    def __init__(self) -> None:
        self._hosts: dict[HostOptions, tuple[Host, int]] = {}
        self._stopping: list[Host] = []  # released hosts whose processes are not reaped yet

    def acquire(self, opts: HostOptions, make: Callable[[], Host]) -> Host:
        found = self._hosts.get(opts)
        if found is not None:
            host, refs = found
            self._hosts[opts] = (host, refs + 1)
            return host
        host = make()
        self._hosts[opts] = (host, 1)
        return host

    def release(self, opts: HostOptions) -> None:
        found = self._hosts.get(opts)
        if found is None:
            return
        host, refs = found
        if refs > 1:
            self._hosts[opts] = (host, refs - 1)
        else:
            del self._hosts[opts]
            host.stop()
            self._stopping.append(host)

    def tick(self) -> None:
        for host, _ in list(self._hosts.values()):
            host.tick()
        for host in self._stopping:
            host.tick()
        self._stopping = [h for h in self._stopping if h.active or h.dying()]

    def describe(self) -> list[dict[str, Any]]:
        """Every backend process: for the memory view and the statistics page."""
        out: list[dict[str, Any]] = []
        for host, _ in self._hosts.values():
            for proc in host.procs:
                p = proc.process
                out.append({"label": host.opts.label, "address": proc.describe(),
                            "state": proc.state, "load": proc.load,
                            "pid": p.pid if p is not None else None,
                            "idle_connections": len(proc.idle)})
        return out

    def stop_all(self, wait: float = 2.0) -> None:
        """At shutdown: stop every process, waiting up to ``wait`` seconds for them."""
        for host, _ in list(self._hosts.values()):
            host.stop(wait)
        for host in self._stopping:
            host.stop(wait)
        self._hosts.clear()
        self._stopping = []

"""The server process: listeners, the event loop, signals, ticks, reloads.

Theory of operation:

* Start-up (``run``): glibc's malloc is told to use few arenas, the
  listeners are bound (or taken over from systemd), the process goes to the
  background unless ``-D``, writes its pid file, chroots and drops
  privileges -- in lighttpd's order, so that binding port 80 and reading
  root-only files happen before the switch.
* Accepting.  asyncio's own accept loop cannot be paused and takes up to
  the backlog at each wake-up, so emberd accepts itself: a reader callback
  per listening socket accepts while fewer than ``server.max-connections``
  are open, and is removed when the limit is reached (nothing is allocated
  for the connections waiting in the backlog); it comes back when a
  connection closes.
* Every second: connection deadlines are checked (read, write and
  keep-alive idle times), the stat cache drops expired entries, modules
  get their tick.  Every ``emberd.maintenance-interval`` seconds (64 by
  default, as lighttpd): free chunk slabs beyond the reserve are unmapped,
  the request pool is emptied and ``malloc_trim()`` gives free heap memory
  back.
* Signals, as lighttpd: SIGINT shuts down gracefully (requests in flight
  finish within the ``server.graceful-shutdown-timeout`` feature flag),
  SIGTERM at once; SIGUSR1 reloads the configuration (listeners that stay
  are kept open: no re-bind after dropping privileges; a configuration
  that does not load is logged and the old one keeps serving); SIGHUP
  reopens the logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import gc
import os
import selectors
import signal
import socket
import time
from typing import TYPE_CHECKING

from ..config.errors import ConfigError, ConfigErrors
from ..config.settings import ServerConfig
from . import memory, memview
from .chunk import ChunkPool
from .connection import Connection, Driver
from .errorlog import ErrorLog
from .gateway import Registry
from .http1 import Http1
from .listeners import (
    Listener,
    ListenError,
    attach_tls,
    config_tokens,
    inherited_sockets,
    open_listeners,
    tls_endpoints,
)
from .reqpool import RequestPool
from .runtime import Runtime, Shared
from .statcache import StatCache
from .stats import Stats

if TYPE_CHECKING:
    from collections.abc import Callable

ACCEPT_BATCH = 32  # connections accepted per wake-up of a listener
_SELECTORS: dict[str, Callable[[], selectors.BaseSelector]] = {
    "linux-sysepoll": getattr(selectors, "EpollSelector", selectors.DefaultSelector),
    "epoll": getattr(selectors, "EpollSelector", selectors.DefaultSelector),
    "poll": getattr(selectors, "PollSelector", selectors.DefaultSelector),
    "select": selectors.SelectSelector,
}


class Server:
    def __init__(self, config: ServerConfig, config_text: str | None = None) -> None:
        self.config = config
        self.config_text = config_text  # kept for a reload of "-f -"
        v = config.values
        stats = Stats(started=time.time())
        flags = v["server.feature-flags"]
        errorlog = ErrorLog(
            v["server.errorlog"],
            v["server.syslog-facility"] if v["server.errorlog-use-syslog"] else None,
            flags["server.errorlog-high-precision"])
        self.shared = Shared(
            stats=stats,
            pool=ChunkPool(v["server.chunkqueue-chunk-sz"], v["emberd.chunk-slab-size"],
                           v["emberd.chunk-reserve"], stats),
            requests=RequestPool(v["emberd.request-pool-size"], stats),
            statcache=StatCache(v["server.stat-cache-engine"] == "simple",
                                v["emberd.stat-cache-max-entries"], stats),
            errorlog=errorlog,
            backends=Registry(),
        )
        self.runtime = Runtime(config, self.shared)
        self.log = errorlog.write
        self.listeners: list[Listener] = []
        self.connections: set[Connection] = self.shared.connections
        self.active = 0  # accepted, including connections not yet made
        self.accepting = False
        self.stopping = False
        self.exit_code = 0
        self._retired: list[Runtime] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Future[None] | None = None
        self._next_maintenance = 0.0
        self._next_memory_log = 0.0
        self._unix_paths: list[str] = []

    # -- start-up --------------------------------------------------------------

    def tokens(self, config: ServerConfig) -> list[str]:
        return config_tokens(config)

    def bind(self) -> None:
        """Open the listening sockets (before privileges are dropped)."""
        v = self.config.values
        inherited = inherited_sockets() if v["server.systemd-socket-activation"] else []
        self.listeners = open_listeners(self.tokens(self.config), v, inherited)
        # TLS certificates are loaded now, before privileges are dropped
        attach_tls(self.listeners, tls_endpoints(self.config, [li.token for li in self.listeners],
                                                 self.log))
        self._unix_paths = [li.token for li in self.listeners
                            if li.token.startswith("/") and not li.inherited]

    def setup_process(self) -> None:
        v = self.config.values
        if v["emberd.malloc-arena-max"]:
            memory.set_arena_max(v["emberd.malloc-arena-max"])
        _set_fd_limit(v["server.max-fds"])
        if v["server.core-files"]:
            import resource

            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))

    def write_pid(self) -> None:
        path = self.config["server.pid-file"]
        if path:
            with open(path, "w") as f:
                f.write(f"{os.getpid()}\n")

    def drop_privileges(self) -> None:
        v = self.config.values
        root = v["server.chroot"]
        user, group = v["server.username"], v["server.groupname"]
        if os.getuid() != 0:
            if user or group or root:
                self.log("server", "not running as root: server.username, server.groupname "
                         "and server.chroot are ignored")
            return
        import grp
        import pwd

        pw = pwd.getpwnam(user) if user else None
        gid = grp.getgrnam(group).gr_gid if group else (pw.pw_gid if pw else None)
        if gid is not None:
            os.setgroups([])
            if pw is not None:
                os.initgroups(pw.pw_name, gid)
            os.setgid(gid)
        if root:
            os.chroot(root)
            os.chdir("/")
        if pw is not None:
            os.setuid(pw.pw_uid)

    # -- connections -------------------------------------------------------------

    def driver_for(self, conn: Connection, http2_preface: bool) -> Driver:
        if http2_preface and self.runtime.features["server.h2proto"]:
            from .http2 import Http2  # h2 is imported when a client first speaks HTTP/2

            return Http2(conn)
        return Http1(conn)

    def connection_opened(self, conn: Connection) -> None:
        self.connections.add(conn)
        s = self.shared.stats
        s.connections = len(self.connections)
        s.connections_accepted += 1
        if s.connections > s.connections_high_water:
            s.connections_high_water = s.connections
        if self.stopping and conn.driver is None:
            conn.close()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.active -= 1
        self.shared.stats.connections = len(self.connections)
        if not self.stopping and not self.accepting and self.active < self.max_connections:
            self._start_accepting()
        if self.stopping and not self.connections and self._done and not self._done.done():
            self._done.set_result(None)

    @property
    def max_connections(self) -> int:
        return int(self.config["server.max-connections"])

    def _start_accepting(self) -> None:
        assert self._loop is not None
        for li in self.listeners:
            self._loop.add_reader(li.sock.fileno(), self._accept, li)
        self.accepting = True

    def _stop_accepting(self) -> None:
        assert self._loop is not None
        for li in self.listeners:
            self._loop.remove_reader(li.sock.fileno())
        self.accepting = False

    def _accept(self, li: Listener) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(ACCEPT_BATCH):
            if self.active >= self.max_connections:
                self.shared.stats.accept_paused += 1
                self._stop_accepting()
                return
            try:
                sock, _ = li.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO):
                    continue
                self.log("server", f"accept on {li.token}: {exc.strerror}; pausing 1 s")
                self._stop_accepting()
                loop.call_later(1.0, self._resume_after_error)
                return
            sock.setblocking(False)
            self.active += 1
            factory = functools.partial(Connection, self, li.token, li.tls)
            task = loop.create_task(loop.connect_accepted_socket(factory, sock))
            task.add_done_callback(functools.partial(self._connected, sock))

    def _connected(self, sock: socket.socket, task: asyncio.Task[object]) -> None:
        if task.cancelled() or task.exception() is not None:
            self.active -= 1
            sock.close()

    def _resume_after_error(self) -> None:
        if not self.stopping and not self.accepting and self.active < self.max_connections:
            self._start_accepting()

    # -- ticks -------------------------------------------------------------------

    def _second(self) -> None:
        loop = self._loop
        assert loop is not None
        now = time.monotonic()
        for conn in list(self.connections):
            conn.check_deadline(now)
        self.shared.statcache.cleanup()
        self.shared.backends.tick()
        for hook in self.runtime.hooks["tick"]:
            hook()
        if now >= self._next_maintenance:
            self.maintenance()
            self._next_maintenance = now + self.config["emberd.maintenance-interval"]
        interval = self.config["emberd.memory-stats-interval"]
        if interval and now >= self._next_memory_log:
            self._next_memory_log = now + interval
            self.log("memory", self.memory_line())
        loop.call_at(loop.time() + 1.0, self._second)

    def maintenance(self) -> None:
        """Give memory back: free slabs beyond the reserve, then malloc_trim."""
        s = self.shared.stats
        s.ticks += 1
        self.shared.pool.trim()
        self.shared.requests.trim()
        for old in self._retired:
            old.close()
        self._retired.clear()
        # a burst leaves cyclic garbage (connections, transports, h2 state) that only a
        # full collection frees, and an idle server allocates nothing that would trigger one
        gc.collect()
        if self.config["emberd.malloc-trim"]:
            memory.trim(self.config["emberd.malloc-top-pad"])
            s.malloc_trims += 1

    def memory_line(self) -> str:
        return memview.line(self.shared, self.connections)

    # -- signals -------------------------------------------------------------------

    def shutdown_now(self) -> None:
        self.log("server", "SIGTERM: shutting down now")
        self.stopping = True
        for conn in list(self.connections):
            conn.abort()
        if self._done and not self._done.done():
            self._done.set_result(None)

    def shutdown_gracefully(self) -> None:
        if self.stopping:
            return
        self.log("server", "SIGINT: shutting down gracefully")
        self.stopping = True
        if self.accepting:
            self._stop_accepting()
        self._close_listeners()
        for conn in list(self.connections):
            if conn.driver is not None:
                conn.driver.graceful_close()
            else:
                conn.close()
        timeout = self.config["server.feature-flags"]["server.graceful-shutdown-timeout"]
        loop = self._loop
        assert loop is not None and self._done is not None
        if not self.connections:
            self._done.set_result(None)
        elif timeout:
            loop.call_later(timeout, self._graceful_timeout)

    def _graceful_timeout(self) -> None:
        if self.connections:
            self.log("server", f"graceful shutdown timeout: closing {len(self.connections)} "
                     "connections")
            for conn in list(self.connections):
                conn.abort()
        if self._done and not self._done.done():
            self._done.set_result(None)

    def reopen_logs(self) -> None:
        self.shared.errorlog.reopen()
        for hook in self.runtime.hooks["reopen"]:
            hook()

    def reload(self) -> None:
        """SIGUSR1: load the configuration again; keep serving the old one if it fails."""
        from ..config.loader import load

        path = self.config.path
        try:
            new = load(path, self.config_text)
        except ConfigErrors as exc:
            for e in exc.errors:
                self.log("server", f"reload failed, keeping the old configuration: {e}")
            return
        except ConfigError as exc:
            self.log("server", f"reload failed, keeping the old configuration: {exc}")
            return
        for w in new.warnings:
            self.log("config", f"warning: {w}")
        for key, d in new.directives.items():
            if d.restart and key in self.config.values and \
                    new.values[key] != self.config.values[key]:
                self.log("server", f"{key} changed; it takes effect only after a restart")
        try:
            self._switch_listeners(new)
        except ListenError as exc:
            self.log("server", f"reload failed, keeping the old configuration: {exc}")
            return
        old = self.runtime
        self.config = new
        self.shared.requests.cap = self.shared.stats.request_pool_cap = \
            new["emberd.request-pool-size"]
        self.runtime = Runtime(new, self.shared)
        for hook in self.runtime.hooks["start"]:
            hook()
        self.shared.statcache.clear()
        self._retired.append(old)
        for conn in list(self.connections):
            if conn.driver is not None:
                conn.driver.reloaded()
        self.log("server", f"configuration reloaded from {path}")

    def _switch_listeners(self, new: ServerConfig) -> None:
        wanted = self.tokens(new)
        keep = {li.token: li for li in self.listeners}
        if self.listeners and any(li.inherited for li in self.listeners):
            wanted = [t for t in wanted if t in keep] or list(keep)
        endpoints = tls_endpoints(new, wanted, self.log)  # before anything changes
        opened: list[Listener] = []
        try:
            for token in wanted:
                if token not in keep:
                    opened.extend(open_listeners([token], new.values, []))
        except ListenError:
            for li in opened:
                li.close()
            raise
        if self.accepting:
            self._stop_accepting()
        for li in self.listeners:
            if li.token not in wanted:
                li.close()
        self.listeners = [keep[t] for t in wanted if t in keep] + opened
        attach_tls(self.listeners, endpoints)
        if not self.stopping and self.active < self.max_connections:
            self._start_accepting()

    def _close_listeners(self) -> None:
        for li in self.listeners:
            li.close()
        self.listeners = []
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._unix_paths = []

    # -- running ---------------------------------------------------------------------

    async def serve(self, signals: bool = True) -> None:
        """Serve until shut down; ``signals=False`` for a server run inside tests."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._done = loop.create_future()
        if signals:
            for sig, handler in ((signal.SIGTERM, self.shutdown_now),
                                 (signal.SIGINT, self.shutdown_gracefully),
                                 (signal.SIGUSR1, self.reload),
                                 (signal.SIGHUP, self.reopen_logs)):
                loop.add_signal_handler(sig, handler)
        now = time.monotonic()
        self._next_maintenance = now + self.config["emberd.maintenance-interval"]
        self._next_memory_log = now
        for hook in self.runtime.hooks["start"]:
            hook()
        self._start_accepting()
        loop.call_at(loop.time() + 1.0, self._second)
        memory.trim(self.config["emberd.malloc-top-pad"])  # drop start-up garbage
        await self._done

    def close(self) -> None:
        self._close_listeners()
        self.runtime.close()
        for old in self._retired:
            old.close()
        self.shared.backends.stop_all()
        self.shared.pool.close()
        path = self.config["server.pid-file"]
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.shared.errorlog.close()


def _set_fd_limit(max_fds: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.getuid() == 0:
        hard = max(hard, max_fds) if hard != resource.RLIM_INFINITY else hard
    target = max_fds if hard == resource.RLIM_INFINITY else min(max_fds, hard)
    if target != soft:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def daemonize(keep_stderr: bool) -> None:
    """Go to the background as lighttpd does without -D: fork twice, new session."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    if not keep_stderr:
        os.dup2(null, 2)
    os.close(null)


def run(config: ServerConfig, config_text: str | None, foreground: bool) -> int:
    server = Server(config, config_text)
    server.setup_process()
    try:
        server.bind()
    except ListenError as exc:
        server.log("server", str(exc))
        return 1
    if not foreground:
        daemonize(keep_stderr=False)
    server.write_pid()
    try:
        server.drop_privileges()
    except (OSError, KeyError) as exc:
        server.log("server", f"cannot drop privileges: {exc}")
        return 1
    selector = _SELECTORS[config["server.event-handler"]]()
    loop = asyncio.SelectorEventLoop(selector)
    asyncio.set_event_loop(loop)
    server.log("server", f"started (pid {os.getpid()}), listening on "
               + ", ".join(li.token for li in server.listeners))
    try:
        loop.run_until_complete(server.serve())
    finally:
        server.log("server", "stopped")
        server.close()
        loop.close()
    return server.exit_code

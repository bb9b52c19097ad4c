"""mod_fastcgi: requests handed to FastCGI backends (lighttpd's mod_fastcgi and gw_backend).

Theory of operation:

* ``fastcgi.server`` maps an extension (``".php"``, matched at the end of
  the path) or a prefix (``"/api/"``, matched at the start of the URL path)
  to one or more hosts.  The table is parsed and checked once, when the
  configuration is loaded (``parse_server``); the processes and sockets
  behind a host live in ``core.gateway`` and survive a reload.
* With ``check-local`` disabled the URL alone decides (``uri_clean``): the
  path is split into SCRIPT_NAME and PATH_INFO at the first '/' after the
  prefix, and the request skips the file-system checks.  With
  ``check-local`` enabled (the default) the file must exist under the
  document root and the decision is taken with the other handlers
  (``subrequest``), after index files and PATH_INFO were resolved.
* ``FcgiResponse`` is the Deferred response that talks to the backend: it
  picks a process, connects (retrying other processes up to 5 times while
  nothing was sent), streams the request body as the driver receives it and
  the response back through the driver's sink.  When the client stops
  taking data, reading from the backend stops (and the backend blocks);
  when the backend stops taking the request body, the driver stops reading
  it from the client with ``server.stream-request-body = 2``.
* ``max-connections`` (emberd's host key): at most that many requests are in
  flight on a process; more wait in emberd (up to ``connect-timeout``, then
  503) rather than each opening a connection -- a burst of HTTP/2 streams
  would otherwise open hundreds, overflow the backend's listen backlog and
  leave both processes holding the memory.
* ``keep-conn``: a connection whose request ended cleanly is kept for the
  next request to the same process -- unless other requests are under way
  on that process, because a single-worker backend (php-cgi) would be held
  on the idle connection while they wait in its listen backlog.
* Failures map to lighttpd's statuses: all backends down or no connection
  503, ``read-timeout``/``write-timeout`` 504, the backend gone before its
  response 500, a malformed response head 502; once the response has
  started, a failure cuts it off and closes the client connection.
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import os
import time
from dataclasses import dataclass
from typing import Any

from ..config.errors import Diagnostics
from ..config.schema import Directive, Scope, Type, ValueProblem, coerce_entry
from ..config.settings import ServerConfig
from ..config.values import Array
from ..core.body import Body, BodyError
from ..core.files import send_file
from ..core.gateway import Host, HostOptions, Proc
from ..core.runtime import Runtime
from ..fcgi.client import End, FcgiRequest, Stderr, Stdout
from ..fcgi.records import FcgiError
from ..http.cgi import BadHead, CgiOptions, HeadParser, environment
from ..http.message import BODY_BACKLOG, Deferred, Request, Response, Sink
from . import Plugin

NAME = "mod_fastcgi"
MAX_TRIES = 5  # connection attempts per request (lighttpd's hctx->reconnects)
STDIN_PIECE = 32 * 1024  # request body bytes read from the Body per write
# response headers a backend must not set for the client connection
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "transfer-encoding", "upgrade", "date",
                         "proxy-connection"))


def _h(key: str, type_: Type, default: Any, doc: str, **kw: Any) -> Directive:
    return Directive(key, type_, Scope.REQUEST, default, doc, module=NAME, **kw)


HOST_KEYS: tuple[Directive, ...] = (
    _h("socket", Type.STRING, "", "unix socket of the backend (with bin-path: socket-N "
       "for process N)"),
    _h("host", Type.STRING, "", "address of the backend (127.0.0.1 with bin-path)"),
    _h("port", Type.SHORT, 0, "TCP port (with bin-path: port+N for process N)"),
    _h("bin-path", Type.STRING, "", "command emberd starts with the listening socket as "
       "fd 0"),
    _h("bin-environment", Type.KVSTRING, {}, "variables added to the started process's "
       "environment"),
    _h("bin-copy-environment", Type.LIST, (), "variables copied from emberd's environment "
       "(when given, only these; when absent, all)"),
    _h("min-procs", Type.SHORT, 4, "processes kept running", unit="processes"),
    _h("max-procs", Type.SHORT, 4, "processes started at most", unit="processes", min=1),
    _h("max-load-per-proc", Type.SHORT, 1, "requests per process before another is "
       "started", unit="requests", min=1),
    _h("idle-timeout", Type.SHORT, 60, "processes above min-procs idle this long are "
       "stopped", unit="s"),
    _h("kill-signal", Type.SHORT, 15, "signal that stops a started process", min=1, max=64),
    _h("listen-backlog", Type.INT, 1024, "listen(2) backlog of a started process's socket",
       min=1, max=65535),
    _h("disable-time", Type.SHORT, 1, "a failing process is not used for this long (and a "
       "dead one restarted after it)", unit="s"),
    _h("max-connections", Type.SHORT, 16, "emberd: requests in flight per backend process; "
       "more wait in emberd, up to connect-timeout, instead of each opening a connection "
       "(bounds the memory of a burst on both sides)", unit="connections", min=1),
    _h("connect-timeout", Type.SHORT, 8, "time to connect (retried once, then 503)",
       unit="s", min=1),
    _h("read-timeout", Type.INT, 0, "time without a byte from the backend while waiting "
       "for it (504); 0: none", unit="s"),
    _h("write-timeout", Type.INT, 0, "time the backend may leave the request unread "
       "(504); 0: none", unit="s"),
    _h("check-local", Type.BOOL, True, "the file must exist under the document root; "
       "disable: the URL alone selects the backend"),
    _h("mode", Type.STRING, "responder", "FastCGI role (emberd implements responder)",
       choices=("responder", "authorizer")),
    _h("docroot", Type.STRING, "", "document root as the backend sees it (SCRIPT_FILENAME, "
       "DOCUMENT_ROOT)"),
    _h("strip-request-uri", Type.STRING, "", "prefix removed from REQUEST_URI"),
    _h("fix-root-scriptname", Type.BOOL, False, "for the prefix \"/\": SCRIPT_NAME empty "
       "and the whole path in PATH_INFO"),
    _h("broken-scriptfilename", Type.BOOL, False, "SCRIPT_FILENAME includes PATH_INFO "
       "(old PHP)"),
    _h("x-sendfile", Type.BOOL, False, "the backend may answer with X-Sendfile: <path>"),
    _h("allow-x-send-file", Type.BOOL, False, "old name of x-sendfile"),
    _h("x-sendfile-docroot", Type.LIST, (), "directories X-Sendfile paths must be under"),
    _h("keep-conn", Type.BOOL, True, "emberd: reuse backend connections (FCGI_KEEP_CONN); "
       "lighttpd opens one per request"),
    _h("tcp-fin-propagate", Type.BOOL, False, "not supported by emberd (must stay "
       "disabled)"),
    _h("upgrade", Type.BOOL, False, "not supported by emberd (must stay disabled)"),
)
_HOST_KEY = {d.key: d for d in HOST_KEYS}


@dataclass(frozen=True, slots=True)
class Backend:
    """One host of a ``fastcgi.server`` entry: its processes and how requests are mapped."""

    host: HostOptions
    check_local: bool
    docroot: str
    strip_request_uri: str
    fix_root_scriptname: bool
    broken_scriptfilename: bool
    x_sendfile: bool
    x_sendfile_docroot: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Extension:
    key: str  # ".php" or "/prefix"
    backends: tuple[Backend, ...]


def _backend(key: str, label: str, spec: Array) -> Backend:
    where = f'"{key}" => "{label}"' if label else f'"{key}"'
    if not spec.is_keyed():
        raise ValueProblem(f"{where}: expected ( \"key\" => value, ... )")
    v = coerce_entry(where, spec, _HOST_KEY)
    given = set(v)
    for d in HOST_KEYS:
        v.setdefault(d.key, d.default)
    if v["mode"] == "authorizer":
        raise ValueProblem(f'{where}: "mode" => "authorizer" is not supported by emberd '
                           "(use mod_auth, or check in the responder)")
    for flag in ("tcp-fin-propagate", "upgrade"):
        if v[flag]:
            raise ValueProblem(f'{where}: "{flag}" is not supported by emberd')
    if not v["socket"] and not v["host"]:
        if not v["bin-path"]:
            raise ValueProblem(f'{where}: needs "socket", or "host" and "port"')
        v["host"] = "127.0.0.1"
    if not v["socket"] and not v["port"]:
        raise ValueProblem(f'{where}: needs "port" with "host"')
    if v["socket"] and not v["socket"].startswith("/"):
        raise ValueProblem(f'{where}: "socket" must be an absolute path')
    for d in v["x-sendfile-docroot"]:
        if not d.startswith("/"):
            raise ValueProblem(f'{where}: "x-sendfile-docroot" entries must be absolute '
                               f'paths, not "{d}"')
    opts = HostOptions(
        label=label or key, socket=v["socket"], host=v["host"], port=v["port"],
        bin_path=v["bin-path"], bin_environment=tuple(v["bin-environment"].items()),
        bin_copy_environment=(v["bin-copy-environment"] if "bin-copy-environment" in given
                              else None),
        min_procs=min(v["min-procs"], v["max-procs"]), max_procs=v["max-procs"],
        max_load_per_proc=v["max-load-per-proc"], kill_signal=v["kill-signal"],
        idle_timeout=v["idle-timeout"], disable_time=v["disable-time"],
        listen_backlog=v["listen-backlog"], connect_timeout=v["connect-timeout"],
        read_timeout=v["read-timeout"], write_timeout=v["write-timeout"],
        keep_conn=v["keep-conn"], max_conns=v["max-connections"])
    return Backend(
        host=opts, check_local=v["check-local"], docroot=v["docroot"],
        strip_request_uri=v["strip-request-uri"],
        fix_root_scriptname=v["fix-root-scriptname"],
        broken_scriptfilename=v["broken-scriptfilename"],
        x_sendfile=v["x-sendfile"] or v["allow-x-send-file"],
        x_sendfile_docroot=tuple(d.rstrip("/") + "/" for d in v["x-sendfile-docroot"]))


def parse_server(table: dict[str, Array]) -> tuple[Extension, ...]:
    """``fastcgi.server`` as Extensions; ValueProblem names the entry that is wrong."""
    out: list[Extension] = []
    for key, hosts in table.items():
        if not key:
            continue  # lighttpd skips empty keys
        backends: list[Backend] = []
        for label, spec in hosts.entries:
            if not isinstance(spec, Array):
                raise ValueProblem(f'"{key}": expected ( "label" => ( "key" => value, ... ) )')
            backends.append(_backend(key, label or "", spec))
        if not backends:
            raise ValueProblem(f'"{key}": no hosts')
        out.append(Extension(key, tuple(backends)))
    return tuple(out)


class FastCgi(Plugin):
    name = NAME
    directives = (
        Directive("fastcgi.server", Type.KVLIST, Scope.REQUEST, (),
                  "extension or /prefix => ( label => ( host keys ) ): where requests go",
                  module=NAME, normalize=parse_server, entry_keys=HOST_KEYS),
        Directive("fastcgi.balance", Type.STRING, Scope.REQUEST, "fair",
                  "how a host of an entry is chosen", module=NAME,
                  choices=("fair", "least-connection", "round-robin", "hash", "sticky")),
        Directive("fastcgi.debug", Type.INT, Scope.REQUEST, 0,
                  "log each backend request (1) and its environment (2)", module=NAME),
        Directive("fastcgi.map-extensions", Type.KVSTRING, Scope.REQUEST, {},
                  "extension => extension of a fastcgi.server entry (\".php3\" => \".php\")",
                  module=NAME),
        Directive("emberd.backend-head-max", Type.INT, Scope.SERVER, 65536,
                  "largest response head a backend may send (larger: 502)", unit="bytes",
                  min=1024, max=1 << 20, module=NAME),
    )

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        for table, loc in config.assigned("fastcgi.map-extensions"):
            for ext, target in table.items():
                if not target:
                    diags.error(loc, f'fastcgi.map-extensions: "{ext}" maps to nothing')

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self.registry = rt.shared.backends
        self.hosts: dict[HostOptions, Host] = {}
        self._rr: dict[str, int] = {}
        errorlog = rt.shared.errorlog

        def log(message: str) -> None:
            errorlog.write("fastcgi", message)

        for table, _ in rt.config.assigned("fastcgi.server"):
            for ext in table:
                for b in ext.backends:
                    if b.host not in self.hosts:
                        self.hosts[b.host] = self.registry.acquire(
                            b.host, functools.partial(Host, b.host, log, lambda: errorlog.fd))
        self.head_max: int = rt.config["emberd.backend-head-max"]

    def start(self) -> None:
        for host in self.hosts.values():
            host.start()

    def close(self) -> None:
        for opts in self.hosts:
            self.registry.release(opts)
        self.hosts = {}

    # -- which entry, which host ------------------------------------------------------

    def _match(self, req: Request, name: str) -> Extension | None:
        """lighttpd's gw_check_extension(): a mapped extension, a /prefix, or a suffix."""
        table: tuple[Extension, ...] = req.conf["fastcgi.server"]
        mapped: dict[str, str] = req.conf["fastcgi.map-extensions"]
        for ext_from, ext_to in mapped.items():
            if name.endswith(ext_from):
                for ext in table:
                    if ext.key == ext_to:
                        return ext
                break
        for ext in table:
            if ext.key.startswith("/"):
                if req.path.startswith(ext.key):
                    return ext
            elif name.endswith(ext.key):
                return ext
        return None

    def choose(self, req: Request, ext: Extension) -> tuple[Backend, Proc] | None:
        """A host by ``fastcgi.balance``, and a process of it that is up."""
        backends = ext.backends
        n = len(backends)
        order = list(range(n))
        if n > 1:
            balance = req.conf["fastcgi.balance"]
            if balance == "round-robin":
                start = self._rr.get(ext.key, 0)
                self._rr[ext.key] = (start + 1) % n
                order = order[start:] + order[:start]
            elif balance in ("hash", "sticky"):
                seed = req.remote_addr if balance == "sticky" else req.authority + req.path
                start = binascii.crc32(seed.encode("utf-8", "surrogateescape")) % n
                order = order[start:] + order[:start]
            else:
                order.sort(key=lambda i: self.hosts[backends[i].host].load())
        for i in order:
            proc = self.hosts[backends[i].host].pick()
            if proc is not None:
                return backends[i], proc
        return None

    def _down(self, req: Request, ext: Extension) -> Response:
        self.rt.log("fastcgi", f"all handlers for {req.path}?{req.query or ''} on {ext.key} "
                    "are down -> 503")
        self.rt.stats.backend_failures += 1
        return Response(503)

    # -- hooks ------------------------------------------------------------------------

    def uri_clean(self, req: Request) -> Response | None:
        if not req.conf["fastcgi.server"]:
            return None
        ext = self._match(req, req.path)
        if ext is None or all(b.check_local for b in ext.backends):
            return None  # decided in subrequest(), once the file is known to exist
        chosen = self.choose(req, ext)
        if chosen is None:
            return self._down(req, ext)
        backend, proc = chosen
        if backend.check_local:
            return None
        path = req.path
        key = ext.key
        script, info = path, ""
        if backend.fix_root_scriptname and key == "/":
            script, info = "", path
        elif key.startswith("/") and len(path) > len(key):
            cut = path.find("/", len(key))
            if cut >= 0:
                script, info = path[:cut], path[cut:]
        req.physical.path_info = info

        def handler(r: Request) -> Response:
            ph = r.physical
            if info and ph.path.endswith(info):
                ph.path = ph.path[: len(ph.path) - len(info)]
            return FcgiResponse(self, r, ext, backend, proc, script, info)

        req.handler = handler
        return None

    def subrequest(self, req: Request) -> Response | None:
        if not req.conf["fastcgi.server"]:
            return None
        ph = req.physical
        ext = self._match(req, ph.path)
        if ext is None:
            return None
        chosen = self.choose(req, ext)
        if chosen is None:
            return self._down(req, ext)
        backend, proc = chosen
        info = ph.path_info
        script = req.path[: len(req.path) - len(info)] if info and req.path.endswith(info) \
            else req.path
        return FcgiResponse(self, req, ext, backend, proc, script, info)


# states of an FcgiResponse: reading a body of unknown length, connecting, sent, over
_BODY, _QUEUED, _CONNECTING, _WAITING, _DONE = 0, 1, 2, 3, 4


class FcgiResponse(Deferred):
    """One request to a backend, and the response it produces."""

    __slots__ = (
        "backend",
        "body_sent",
        "conn",
        "counted",
        "delivered",
        "ext",
        "fcgi",
        "first",
        "head",
        "last_read",
        "last_write",
        "left",
        "path_info",
        "plugin",
        "proc",
        "queued_at",
        "received",
        "req",
        "reused",
        "script_name",
        "sink",
        "spool",
        "state",
        "stdin_done",
        "task",
        "timeouts",
        "tries",
    )

    def __init__(self, plugin: FastCgi, req: Request, ext: Extension, backend: Backend,
                 proc: Proc, script_name: str, path_info: str) -> None:
        super().__init__(502)
        self.plugin = plugin
        self.req = req
        self.ext = ext
        self.backend = backend
        self.first: Proc | None = proc  # chosen when the request was matched
        self.proc: Proc | None = None  # the process this request is counted on
        self.script_name = script_name
        self.path_info = path_info
        self.sink: Sink | None = None
        self.conn: Any = None  # gateway.BackendConnection
        self.fcgi: FcgiRequest | None = None
        self.head = HeadParser(plugin.head_max)
        self.task: asyncio.Task[None] | None = None
        self.spool: Body | None = None  # the whole response (server.stream-response-body 0)
        self.state = _CONNECTING
        self.tries = 0
        self.timeouts = 0
        self.reused = False  # the connection was kept from an earlier request
        self.received = False  # the backend sent something on this connection
        self.delivered = False  # the sink has the response head
        self.body_sent = 0
        self.stdin_done = False
        self.left: int | None = None  # response body bytes the backend's Content-Length promises
        self.last_read = self.last_write = self.queued_at = time.monotonic()
        self.counted = False  # in the host's active set and stats.backend_active

    @property
    def rt(self) -> Runtime:
        return self.plugin.rt

    def _host(self) -> Host:
        return self.plugin.hosts[self.backend.host]

    def _log(self, message: str) -> None:
        self.rt.log("fastcgi", f"{self.backend.host.label}: {message}")

    # -- the driver's side ----------------------------------------------------------------

    def start(self, sink: Sink) -> None:
        self.sink = sink
        self._host().active.add(self)
        self.counted = True
        stats = self.rt.stats
        stats.backend_requests += 1
        stats.backend_active += 1
        body = self.req.body
        if body is not None and not body.done and self.req.content_length is None:
            # CGI needs CONTENT_LENGTH: a body of unknown length is read whole first
            self.state = _BODY
            return
        self._begin()

    def _begin(self) -> None:
        proc, self.first = self.first, None
        self._connect(proc)

    def more_body(self) -> None:
        if self.state == _WAITING:
            self._send_body()
        elif self.state == _BODY and self.req.body is not None and self.req.body.done:
            self._begin()

    def resume(self) -> None:
        if self.conn is not None and self.sink is not None and not self.sink.paused:
            self.conn.resume_reading()

    def abort(self) -> None:
        if self.state != _DONE:
            if self.plugin.rt.config["fastcgi.debug"]:
                self._log(f"client gone: {self.req.method} {self.req.target} abandoned")
            self.sink = None
            self._finish(keep=False)

    def body_backlog(self) -> int:
        body = self.req.body
        return 0 if body is None else body.size - self.body_sent

    # -- connecting ---------------------------------------------------------------------

    def _connect(self, proc: Proc | None, fresh: bool = False) -> None:
        if proc is None:
            chosen = self.plugin.choose(self.req, self.ext)
            if chosen is None:
                self._fail(503, f"all handlers for {self.req.path} on {self.ext.key} are down")
                return
            self.backend, proc = chosen
        if proc.load >= self.backend.host.max_conns:
            self.state = _QUEUED  # a slot frees when a request on the host ends
            self.queued_at = time.monotonic()
            self._host().waiting.append(self._unqueue)
            return
        self.proc = proc
        proc.load += 1
        proc.last_used = time.monotonic()
        self.state = _CONNECTING
        conn = proc.take_idle() if self.backend.host.keep_conn and not fresh else None
        if conn is not None:
            self.reused = True
            self.rt.stats.backend_reused += 1
            self._send_request(conn)
            return
        self.reused = False
        self.task = asyncio.get_running_loop().create_task(self._open(proc))

    def _unqueue(self) -> None:
        if self.state == _QUEUED:
            self._connect(None)

    async def _open(self, proc: Proc) -> None:
        timeout = self.backend.host.connect_timeout
        try:
            conn = await asyncio.wait_for(proc.connect(self.rt.pool), timeout)
        except TimeoutError:
            self.task = None
            self._connect_failed(proc, f"connect to {proc.describe()} timed out after "
                                 f"{timeout} s", timed_out=True)
            return
        except OSError as exc:
            self.task = None
            self._connect_failed(proc, f"connect to {proc.describe()} failed: "
                                 f"{exc.strerror or exc}")
            return
        self.task = None
        self.rt.stats.backend_connects += 1
        if self.state == _DONE:
            conn.close()
            return
        self._send_request(conn)

    def _connect_failed(self, proc: Proc, why: str, timed_out: bool = False) -> None:
        proc.load -= 1
        self._host().wake()
        self.proc = None
        if self.state == _DONE:
            return
        proc.disable(why)
        self.tries += 1
        self.timeouts += timed_out
        if self.tries >= MAX_TRIES or self.timeouts > 1:
            self._fail(503, f"giving up after {self.tries} attempts: {why}")
        else:
            self._connect(None)

    def _send_request(self, conn: Any) -> None:
        self.conn = conn
        conn.user = self
        self.state = _WAITING
        self.received = False
        self.fcgi = fcgi = FcgiRequest(self.backend.host.keep_conn)
        req = self.req
        b = self.backend
        env = environment(req, self.script_name, self.path_info, CgiOptions(
            docroot=b.docroot, strip_request_uri=b.strip_request_uri,
            break_scriptfilename_for_php=b.broken_scriptfilename,
            server_tag=req.conf["server.tag"]))
        conn.write(fcgi.begin(env))
        debug = req.conf["fastcgi.debug"]
        if debug:
            assert self.proc is not None
            self._log(f"{req.method} {req.target} -> {self.proc.describe()}"
                      + (" (kept connection)" if self.reused else ""))
            if debug > 1:
                for k, v in env:
                    self._log(f"  {k}={v}")
        if fcgi.dropped:
            self._log(f"{fcgi.dropped} CGI variables left out: FCGI_PARAMS is limited to "
                      "65535 bytes")
        self.last_read = self.last_write = time.monotonic()
        self._send_body()

    # -- the request body -------------------------------------------------------------------

    def _send_body(self) -> None:
        conn, fcgi = self.conn, self.fcgi
        if conn is None or fcgi is None or self.stdin_done:
            return
        body = self.req.body
        was_backlogged = self.body_backlog() > BODY_BACKLOG
        if body is not None:
            while not conn.paused and self.body_sent < body.size:
                data = body.read_at(self.body_sent, STDIN_PIECE)
                if not data:
                    break
                conn.write(fcgi.stdin(data))
                self.body_sent += len(data)
                self.last_write = time.monotonic()
            if self.req.conf["server.stream-request-body"]:
                body.forget(self.body_sent)  # streamed on: keep no copy
        if body is None or (body.done and self.body_sent >= body.size):
            conn.write(fcgi.stdin_end())
            self.stdin_done = True
            self.last_read = time.monotonic()
        if was_backlogged and self.body_backlog() <= BODY_BACKLOG and self.sink is not None:
            self.sink.want_body()

    def on_writable(self) -> None:
        self.last_write = time.monotonic()
        self._send_body()

    # -- the response ---------------------------------------------------------------------

    def on_data(self, data: bytes) -> None:
        fcgi = self.fcgi
        if self.state != _WAITING or fcgi is None:
            return
        self.last_read = time.monotonic()
        self.received = True
        try:
            events = fcgi.receive(data)
        except FcgiError as exc:
            self._fail(502, f"not a FastCGI response: {exc}")
            return
        for ev in events:
            if self.state != _WAITING:
                return
            if isinstance(ev, Stdout):
                self._stdout(ev.data)
            elif isinstance(ev, Stderr):
                self._stderr(ev.data)
            elif isinstance(ev, End):
                self._end()
        sink = self.sink
        if self.state == _WAITING and sink is not None and sink.paused:
            self.conn.pause_reading()

    def _stderr(self, data: bytes) -> None:
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                self._log(f"stderr: {line}")

    def _stdout(self, data: bytes) -> None:
        if self.head.done:
            self._body(data)
            return
        try:
            rest = self.head.feed(data)
        except BadHead as exc:
            self._fail(502, f"malformed response head: {exc}")
            return
        if rest is not None:
            self._head_complete(rest)

    def _head_complete(self, rest: bytes) -> None:
        head = self.head
        resp = Response(head.status, [(k, v) for k, v in head.headers
                                       if k.lower() not in _HOP_BY_HOP])
        if self.backend.x_sendfile:
            path = resp.header("x-sendfile") or resp.header("x-lighttpd-send-file")
            if path is not None:
                self._x_sendfile(resp, path)
                return
        length = resp.header("content-length")
        if length is not None:
            if not length.isdigit():
                self._fail(502, f"malformed Content-Length {length[:40]!r}")
                return
            self.left = int(length)
        if not self.req.conf["server.stream-response-body"]:
            rt = self.rt
            conf = self.req.conf
            self.spool = Body(rt.pool, rt.stats, memory_max=conf["emberd.body-memory-max"],
                              max_size=0, upload_dirs=rt.upload_dirs,
                              temp_file_size=rt.temp_file_size)
            self.status, self.headers = resp.status, resp.headers
        else:
            self._deliver(resp)
        if rest:
            self._body(rest)

    def _deliver(self, resp: Response) -> None:
        sink = self.sink
        if sink is not None:
            self.delivered = True
            sink.head(resp)

    def _x_sendfile(self, resp: Response, path: str) -> None:
        """The backend names a file to send instead of a body (lighttpd's X-Sendfile)."""
        allowed = self.backend.x_sendfile_docroot
        norm = os.path.normpath(path)
        if not path.startswith("/") or (allowed and not any(
                norm.startswith(d) for d in allowed)):
            self._fail(502, f"X-Sendfile path not allowed: {path!r}")
            return
        file = send_file(self.rt, self.req, norm)
        for k in ("x-sendfile", "x-lighttpd-send-file", "content-length"):
            resp.remove_header(k)
        if file.status >= 400:
            self._log(f"X-Sendfile {path!r}: cannot send it -> {file.status}")
            sink = self.sink
            self._finish(keep=False)
            if sink is not None:
                sink.fail(file.status)
            return
        if resp.status == 200:
            resp.status = file.status
        else:
            file.close()
            file.parts = []
        for k, v in file.headers:
            resp.set_header(k, v)
        resp.parts = file.parts
        if resp.status not in (204, 304):
            resp.set_header("Content-Length", str(resp.body_length()))
        self._deliver(resp)
        self._end_ok()  # the rest of the backend's output is not needed

    def _body(self, data: bytes) -> None:
        left = self.left
        if left is not None:
            if len(data) > left:
                self._log(f"response body longer than its Content-Length {self.left}; "
                          "the rest is dropped")
                data = data[:left]
            self.left = left - len(data)
        if not data:
            return
        spool = self.spool
        if spool is not None:
            try:
                spool.append(data)
            except BodyError as exc:
                self._fail(exc.status, f"cannot keep the response: {exc}")
            return
        if self.sink is not None:
            self.sink.data(data)

    def _end(self) -> None:
        if not self.head.done:
            if self.received and self.head.started():
                self._fail(502, "response ended inside its head")
            else:
                self._fail(500, "backend ended the request without a response")
            return
        if self.left:
            self._fail(502, f"response ended {self.left} bytes short of its Content-Length")
            return
        spool = self.spool
        if spool is not None:
            self.spool = None
            resp = Response(self.status, self.headers, spool.as_parts())
            spool.close()
            resp.set_header("Content-Length", str(resp.body_length()))
            self._deliver(resp)
        self._end_ok()

    def _end_ok(self) -> None:
        sink = self.sink
        self._finish(keep=True)
        if sink is not None:
            sink.end()

    # -- failures -----------------------------------------------------------------------------

    def on_closed(self, exc: Exception | None) -> None:
        self.conn = None
        if self.state != _WAITING:
            return
        body = self.req.body
        if self.reused and not self.received and (body is None or body.start == 0):
            # a kept connection the backend had closed: the request never reached it
            assert self.proc is not None
            proc, self.proc = self.proc, None
            proc.load -= 1
            self.body_sent = 0
            self.stdin_done = False
            self._connect(proc, fresh=True)
            return
        why = f": {exc}" if exc else ""
        if not self.head.done:
            self._fail(500, f"backend closed the connection before its response{why}")
        else:
            self._fail(502, f"backend closed the connection in the middle of its response{why}")

    def check_timeouts(self, now: float) -> None:
        opts = self.backend.host
        if self.state == _QUEUED and now - self.queued_at > opts.connect_timeout:
            self._fail(503, f"no backend process free within {opts.connect_timeout} s "
                       f"({opts.max_conns} requests in flight on each)")
            return
        if self.state != _WAITING:
            return
        writing = not self.stdin_done and (
            (self.conn is not None and self.conn.paused) or self.body_backlog() > 0)
        if writing and opts.write_timeout and now - self.last_write > opts.write_timeout:
            self._fail(504, f"write timeout: the request was not read for "
                       f"{opts.write_timeout} s")
        elif (not writing and self.stdin_done and opts.read_timeout
              and now - self.last_read > opts.read_timeout
              and not (self.sink is not None and self.sink.paused and self.delivered)):
            self._fail(504, f"read timeout: nothing from the backend for {opts.read_timeout} s")

    def _fail(self, status: int, why: str) -> None:
        req = self.req
        self._log(f"{req.method} {req.target}: {why}"
                  + (f" -> {status}" if not self.delivered else " (response cut off)"))
        self.rt.stats.backend_failures += 1
        sink = self.sink
        self._finish(keep=False)
        if sink is not None:
            sink.fail(status)

    def _finish(self, keep: bool) -> None:
        """The backend's part is over: give back the connection, the process, the memory."""
        if self.state == _QUEUED:
            self._host().waiting.remove(self._unqueue)
        self.state = _DONE
        self.sink = None
        if self.task is not None:
            self.task.cancel()
            self.task = None
        if self.spool is not None:
            self.spool.close()
            self.spool = None
        conn, self.conn = self.conn, None
        proc, self.proc = self.proc, None
        if conn is not None:
            conn.user = None
            # kept only when no other request waits on this process: a backend with a
            # single worker (php-cgi) serves one connection at a time, and an idle kept
            # connection would hold it while the others wait in its listen backlog
            if keep and self.fcgi is not None and self.fcgi.ended and proc is not None \
                    and self.backend.host.keep_conn and self.stdin_done and proc.load == 1:
                conn.resume_reading()
                proc.keep(conn)
            else:
                conn.close()
        if proc is not None:
            proc.load -= 1
            proc.last_used = time.monotonic()
            self._host().wake()
        if self.counted:
            self.counted = False
            self._host().active.discard(self)
            self.rt.stats.backend_active -= 1


PLUGIN = FastCgi

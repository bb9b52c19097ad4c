"""mod_status: the server's state at a URL, and (emberd's addition) its memory.

* ``status.status-url``: an HTML page (uptime, requests, traffic,
  connections); ``?json`` gives lighttpd's JSON keys, ``?auto`` the
  Apache-style text that monitoring tools read.
* ``status.statistics-url``: ``key: value`` lines of every counter, with
  the FastCGI backends as lighttpd names them (``fastcgi.backend.<label>.<n>.load``).
* ``status.config-url``: the modules and versions of this build.
* ``status.memory-url``: the memory view (``core.memview``) as JSON (the
  stdlib json: ujson would cost 1.5 MB of RSS here, for a page read now and then) --
  what the bug-#3084 reporters had to patch malloc_stats() in to see.

The URLs are matched exactly, after the other ``uri_clean`` handlers (put
mod_auth before mod_status in ``server.modules`` to protect them).
"""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from .. import __version__
from ..config import catalog
from ..config.schema import Directive, Scope, Type
from ..core.memview import snapshot
from ..core.runtime import Runtime
from ..http.message import Request, Response
from . import Plugin

NAME = "mod_status"
_NO_STORE = ("Cache-Control", "no-store")


def _url(key: str, doc: str) -> Directive:
    return Directive(key, Type.STRING, Scope.REQUEST, "", doc, module=NAME)


def _flatten(prefix: str, value: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        for i, v in enumerate(value):
            _flatten(f"{prefix}.{i}", v, out)
    else:
        out.append((prefix, value))


class Status(Plugin):
    name = NAME
    directives = (
        _url("status.status-url", "URL of the status page (?json, ?auto for machines)"),
        _url("status.statistics-url", "URL of the counters as key: value lines"),
        _url("status.config-url", "URL of the build's modules and versions"),
        _url("status.memory-url", "URL of the memory view (JSON; emberd's addition)"),
    )

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        # (time, requests, bytes out) once a second: the 5-second averages of ?json
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=6)

    def tick(self) -> None:
        s = self.rt.stats
        self._samples.append((time.monotonic(), s.requests, s.bytes_out))

    def uri_clean(self, req: Request) -> Response | None:
        conf = req.conf
        path = req.path
        if path == conf["status.memory-url"]:
            return self._json(snapshot(self.rt.shared, self.rt.shared.connections))
        if path == conf["status.status-url"]:
            if req.query == "json":
                return self._json(self._summary())
            if req.query == "auto":
                return self._text(self._auto())
            return self._page()
        if path == conf["status.statistics-url"]:
            return self._text(self._statistics())
        if path == conf["status.config-url"]:
            return self._config()
        return None

    # -- answers ---------------------------------------------------------------------------

    @staticmethod
    def _json(data: Any) -> Response:
        return Response(200, [("Content-Type", "application/json"), _NO_STORE],
                        [json.dumps(data, indent=1).encode() + b"\n"])

    @staticmethod
    def _text(lines: list[tuple[str, Any]]) -> Response:
        body = "".join(f"{k}: {v}\n" for k, v in lines)
        return Response(200, [("Content-Type", "text/plain; charset=utf-8"), _NO_STORE],
                        [body.encode()])

    def _averages(self) -> tuple[int, int]:
        if len(self._samples) < 2:
            return 0, 0
        (t0, r0, b0), (t1, r1, b1) = self._samples[0], self._samples[-1]
        span = max(t1 - t0, 1e-3)
        return round((r1 - r0) / span), round((b1 - b0) / span)

    def _summary(self) -> dict[str, int]:
        s = self.rt.stats
        busy = s.connections
        rps, bps = self._averages()
        return {"RequestsTotal": s.requests, "TrafficTotal": s.bytes_out,
                "Uptime": int(time.time() - s.started), "BusyServers": busy,
                "IdleServers": max(0, self.rt.config["server.max-connections"] - busy),
                "RequestAverage5s": rps, "TrafficAverage5s": bps}

    def _auto(self) -> list[tuple[str, Any]]:
        v = self._summary()
        return [("Total Accesses", v["RequestsTotal"]),
                ("Total kBytes", v["TrafficTotal"] // 1024), ("Uptime", v["Uptime"]),
                ("BusyServers", v["BusyServers"]), ("IdleServers", v["IdleServers"])]

    def _statistics(self) -> list[tuple[str, Any]]:
        out: list[tuple[str, Any]] = []
        view = snapshot(self.rt.shared, self.rt.shared.connections)
        procs = view["backends"].pop("processes")
        _flatten("emberd", view, out)
        counts: dict[str, int] = {}
        for p in procs:
            n = counts[p["label"]] = counts.get(p["label"], -1) + 1
            base = f"fastcgi.backend.{p['label']}.{n}"
            out += [(f"{base}.load", p["load"]), (f"{base}.state", p["state"]),
                    (f"{base}.pid", p["pid"] if p["pid"] is not None else "-")]
        out.append(("fastcgi.active-requests", view["backends"]["active"]))
        return out

    def _page(self) -> Response:
        v = self._summary()
        s = self.rt.stats
        up = v["Uptime"]
        rows = [("Uptime", f"{up // 86400} d {up % 86400 // 3600} h {up % 3600 // 60} min"),
                ("Started", time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(s.started))),
                ("Requests", f"{s.requests} ({v['RequestAverage5s']}/s over 5 s)"),
                ("Traffic out", f"{s.bytes_out // 1024} KiB"),
                ("Connections", f"{s.connections} open ({s.connections_h1} HTTP/1.1, "
                 f"{s.connections_h2} HTTP/2), at most {self.rt.config['server.max-connections']}"),
                ("Responses", ", ".join(f"{k}: {n}" for k, n in
                                        sorted(s.responses_by_class.items())))]
        conns = []
        for conn in list(self.rt.shared.connections):
            driver = conn.driver
            proto = "HTTP/2" if hasattr(driver, "sess") else "HTTP/1.1"
            req = getattr(driver, "req", None)
            doing = (f"{req.method} {req.target}" if req is not None and req.target else
                     f"{len(driver.streams)} streams" if proto == "HTTP/2" else "idle")
            conns.append((f"{conn.remote_addr}:{conn.remote_port}", proto, doing))
        from html import escape as cell  # only for the page
        body = "".join((
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>emberd status</title>"
            "</head><body><h1>emberd status</h1>\n<table>\n",
            "".join(f"<tr><th>{cell(k)}</th><td>{cell(str(x))}</td></tr>\n" for k, x in rows),
            "</table>\n<h2>Connections</h2>\n<table>\n"
            "<tr><th>client</th><th>protocol</th><th>request</th></tr>\n",
            "".join(f"<tr><td>{cell(a)}</td><td>{p}</td><td>{cell(d)}</td></tr>\n"
                    for a, p, d in conns),
            "</table>\n</body></html>\n"))
        return Response(200, [("Content-Type", "text/html; charset=utf-8"), _NO_STORE],
                        [body.encode()])

    def _config(self) -> Response:
        mods = [p.name for p in self.rt.config.plugins]
        built = sorted(c.name for c in catalog.emberd_modules() if c.present())
        import platform  # only for this page

        return self._json({"version": __version__, "python": platform.python_version(),
                           "modules_loaded": mods, "modules_built_in": built,
                           "config": self.rt.config.path})


PLUGIN = Status

"""The control API's endpoints, as a FastCGI handler.

Every answer is JSON; an error is ``{"error": ..., "status": ...}`` with the
same HTTP status.  Requests that change something (PUT, POST) must carry
``X-Requested-With`` or an ``Origin`` naming this host: a browser sends
stored Basic/Digest credentials with any cross-site form, but a form can
set neither header.  Commands run as argument vectors from the
configuration; nothing from a request reaches a shell.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import ujson

from .. import __version__
from ..config import catalog
from ..fcgi.responder import Reply, Request
from . import files
from .tunables import Refused, Tunables

MAX_JSON = 64 * 1024  # a PUT /api/config body
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_JSON = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]

Route = Callable[[Request], Awaitable[Reply]]


def reply(status: int, data: Any) -> Reply:
    return Reply(status, list(_JSON), ujson.dumps(data).encode())


def error(status: int, message: str, **extra: Any) -> Reply:
    return reply(status, {"error": message, "status": status, **extra})


def _rss_kb(pid: int | str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemFree", "MemAvailable", "Cached"):
                out[name.lower() + "_kb"] = int(rest.split()[0])
    return out


class App:
    def __init__(self, settings: dict[str, Any], log: Callable[[str], None]) -> None:
        self.settings = settings
        self.log = log
        self.prefix = settings["control.url-prefix"].rstrip("/")
        self.tunables = Tunables(settings)
        self.started = time.monotonic()
        self.routes: dict[str, dict[str, Route]] = {
            "/status": {"GET": self.status},
            "/config": {"GET": self.get_config, "PUT": self.put_config},
            "/upload": {"POST": self.upload},
            "/reboot": {"POST": self.reboot},
            "/firmware": {"POST": self.firmware},
        }

    async def __call__(self, req: Request) -> Reply:
        p = req.params
        path = p.get("SCRIPT_NAME", "") + p.get("PATH_INFO", "")
        if self.prefix and path.startswith(self.prefix):
            path = path[len(self.prefix):]
        methods = self.routes.get(path.rstrip("/") or "/")
        if methods is None:
            return error(404, f"no endpoint {path}")
        method = p.get("REQUEST_METHOD", "GET")
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            r = error(405, f"{method} is not allowed on {path}")
            r.headers.append(("Allow", ", ".join(methods)))
            return r
        if method not in ("GET", "HEAD") and not self._same_origin(p):
            self.log(f"{method} {path}: refused, no X-Requested-With and no matching Origin")
            return error(403, "cross-site request refused: send X-Requested-With, or an "
                         "Origin naming this host")
        try:
            return await handler(req)
        except Refused as exc:
            return error(exc.status, str(exc))

    @staticmethod
    def _same_origin(p: dict[str, str]) -> bool:
        if p.get("HTTP_X_REQUESTED_WITH"):
            return True
        origin = p.get("HTTP_ORIGIN")
        host = p.get("HTTP_HOST") or p.get("SERVER_NAME", "")
        return origin is not None and origin == f"{p.get('REQUEST_SCHEME', 'http')}://{host}"

    # -- endpoints ------------------------------------------------------------------------

    async def status(self, req: Request) -> Reply:
        uptime = load = None
        with contextlib.suppress(OSError, ValueError), open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        with contextlib.suppress(OSError, ValueError), open("/proc/loadavg") as f:
            load = [float(x) for x in f.read().split()[:3]]
        pid = self.tunables.emberd_pid()
        return reply(200, {
            "uptime_s": uptime,
            "load": load,
            "memory": _meminfo(),
            "emberd": {"pid": pid, "running": pid is not None,
                       "rss_kb": _rss_kb(pid) if pid is not None else None},
            "control": {"pid": os.getpid(), "rss_kb": _rss_kb("self"),
                        "uptime_s": round(time.monotonic() - self.started, 1)},
            "versions": {"emberd": __version__, "python": platform.python_version(),
                         "kernel": os.uname().release},
            "modules": sorted(c.name for c in catalog.emberd_modules() if c.present()),
        })

    async def get_config(self, req: Request) -> Reply:
        return reply(200, {"tunables": self.tunables.current(),
                           "overrides": self.tunables.overrides()})

    async def put_config(self, req: Request) -> Reply:
        if req.content_length > MAX_JSON:
            return error(413, f"a configuration change is at most {MAX_JSON} bytes")
        body = bytearray()
        while piece := await req.read():
            body += piece
            if len(body) > MAX_JSON:
                return error(413, f"a configuration change is at most {MAX_JSON} bytes")
        try:
            changes = ujson.loads(bytes(body))
        except ValueError as exc:
            return error(400, f"not JSON: {exc}")
        if not isinstance(changes, dict) or not changes:
            return error(400, 'expected an object of settings, e.g. {"server.max-connections": 16}')
        restart = self.tunables.change(changes)
        self.log(f"configuration changed: {', '.join(sorted(changes))}")
        r = reply(200, {"changed": sorted(changes), "restart_needed": restart,
                        "tunables": self.tunables.current()})
        r.after = lambda: self.tunables.reload(self.log)
        return r

    async def upload(self, req: Request) -> Reply:
        query = parse_qs(req.params.get("QUERY_STRING", ""))
        name = files.safe_name(next(iter(query.get("name", [])), None))
        got = await files.receive(req, self.settings["control.upload-dir"], name,
                                  self.settings["control.upload-max-size"] * 1024)
        self.log(f"upload stored: {got.path} ({got.size} bytes)")
        return reply(201, {"name": name, "size": got.size, "sha256": got.sha256})

    async def reboot(self, req: Request) -> Reply:
        await req.drain()
        argv = list(self.settings["control.reboot-command"])
        if not argv:
            return error(501, "rebooting is not configured (control.reboot-command)")
        self.log("reboot requested")
        return await self._run(argv, 202, {"status": "rebooting"})

    async def firmware(self, req: Request) -> Reply:
        argv = list(self.settings["control.firmware-command"])
        if not argv:
            await req.drain()
            return error(501, "firmware updates are not configured (control.firmware-command)")
        want = req.params.get("HTTP_X_FIRMWARE_SHA256", "")
        if not _SHA256.fullmatch(want):
            await req.drain()
            return error(400, "X-Firmware-SHA256: the image's sha256 in hex is required")
        got = await files.receive(req, self.settings["control.upload-dir"], "firmware.img",
                                  self.settings["control.firmware-max-size"] * 1024)
        try:
            if got.sha256 != want.lower():
                return error(400, f"sha256 mismatch: the image has {got.sha256}")
            self.log(f"firmware image received ({got.size} bytes); running {argv[0]}")
            return await self._run([*argv, got.path], 200,
                                   {"status": "installed", "size": got.size})
        finally:
            with contextlib.suppress(OSError):
                os.unlink(got.path)

    async def _run(self, argv: list[str], status: int, ok: dict[str, Any]) -> Reply:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT)
        except OSError as exc:
            return error(500, f"cannot run {argv[0]}: {exc.strerror}")
        try:
            out, _ = await asyncio.wait_for(proc.communicate(),
                                            self.settings["control.command-timeout"])
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return error(504, f"{argv[0]} did not finish in "
                         f"{self.settings['control.command-timeout']} s")
        tail = out[-2000:].decode("utf-8", "replace")
        if proc.returncode:
            self.log(f"{argv[0]} failed with exit status {proc.returncode}: {tail.strip()}")
            return error(500, f"{argv[0]} failed", exit_status=proc.returncode, output=tail)
        return reply(status, {**ok, "output": tail})

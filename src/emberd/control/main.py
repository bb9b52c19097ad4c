"""The ``emberd-control`` command: load the configuration, listen, serve until SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import signal
import socket
import stat
import sys
import time
from typing import Any

from .. import __version__
from ..cli import keep_ssl_out
from ..config.errors import ConfigError
from ..core import memory
from . import settings as control_settings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
TRIM_INTERVAL = 60.0  # seconds between malloc_trim() calls: memory stays flat when idle


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp}: (emberd-control) {message}\n")
    sys.stderr.flush()


def bind(path: str, mode: int, group: str, backlog: int) -> socket.socket:
    """A listening unix socket at ``path`` (replacing a stale socket, nothing else)."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # nobody answers: left over from a crash
        else:
            raise OSError(f"another process serves {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chmod(path, mode)
    if group:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
    sock.listen(backlog)
    return sock


async def run(settings: dict[str, Any], sock: socket.socket) -> None:
    import asyncio

    from ..fcgi.responder import serve
    from .app import App

    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def trim() -> None:
        memory.trim(128 * 1024)
        loop.call_later(TRIM_INTERVAL, trim)

    loop.call_later(TRIM_INTERVAL, trim)
    server = loop.create_task(serve(sock, App(settings, log), log,
                                    int(settings["control.listen-backlog"])))
    await stop
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="emberd-control",
                                 description="the device's control API (a FastCGI responder)")
    ap.add_argument("--config", "-f", required=True, help="emberd-control's configuration")
    ap.add_argument("-t", action="store_true", help="check the configuration and exit")
    ap.add_argument("-v", "--version", action="version", version=f"emberd-control {__version__}")
    args = ap.parse_args(argv)
    try:
        settings = control_settings.load(args.config)
    except ConfigError as exc:
        errors = getattr(exc, "errors", [exc])
        for e in errors:
            print(f"emberd-control: {e}", file=sys.stderr)
        return 1
    if args.t:
        print("Syntax OK")
        return 0
    # held until the event loop handles them (a signal that arrived while asyncio was
    # swapping handlers would be lost): see run()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    memory.set_arena_max(1)
    keep_ssl_out()  # before asyncio is imported: libssl costs ~10 MB of RSS
    import asyncio

    from ..fcgi.responder import listening_stdin

    sock = listening_stdin()
    path = ""
    if sock is None:
        path = str(settings["control.socket"])
        try:
            sock = bind(path, int(settings["control.socket-mode"]),
                        str(settings["control.socket-group"]),
                        int(settings["control.listen-backlog"]))
        except (OSError, KeyError) as exc:
            log(f"cannot listen on {path}: {exc}")
            return 1
    log(f"started (pid {os.getpid()}), serving on {path or 'fd 0'}")
    try:
        asyncio.run(run(settings, sock))
    finally:
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)
        log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The servers under soak: their generated configurations, starting them, stopping them.

A *stack* is what one soak run measures: emberd-control as its own service
on a unix socket (as on the device), and in front of it either emberd or
lighttpd on a loopback port, both forwarding ``/api/`` to that socket with
FastCGI.  So lighttpd and emberd serve the very same backend, and the
backend's own curve is measured under each of them.

The soak writes its own configurations -- emberd's defaults but for what the
workload needs, like bug #3084's lighttpd.conf: request and response bodies
streamed to the backend (emberd also keeps the backend connection, its
``keep-conn``), and

* ``server.max-connections = 64`` so that the burst's 50 connections fit;
* no per-connection request cap: ``h2.max-requests-per-connection = 0``
  and ``server.max-keep-alive-requests = 65535`` (its largest value; 0
  would mean no keep-alive).  A 10-minute soak is 60,000 requests; longer
  ones over HTTP/1.1 reconnect before 65,535 requests (h2load is started
  again for each such span, ``soak_load.steady_spans``; the built-in
  client reconnects on its own).

``--emberd-config FILE`` (e.g. the device's ``rootfs/etc/emberd/emberd.conf``)
soaks that configuration instead: it is included and the same settings are
forced over it with ``:=``, plus Basic auth on /api/ (the load sends the header) since the load
carries no credentials.  lighttpd gets the equivalent of the generated
configuration.  Every file a server writes (logs, pid file, uploads, temp
files, the socket) is inside the run's directory -- the socket goes to a
second, short temp directory when that path is too long for a unix socket
-- and every process is started here and stopped here by its PID.  emberd
runs as the device's init script starts it, with Python's objects through
malloc (``memory.ALLOCATOR_ENVIRONMENT``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from ..core.memory import ALLOCATOR_ENVIRONMENT

UPLOAD_NAME = "soak.bin"
UPLOAD_PATH = f"/api/upload?name={UPLOAD_NAME}"
MAX_CONNECTIONS = 64
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
SUN_PATH_MAX = 107  # bytes of a unix socket path (sun_path is 108 with its NUL)

EMBERD, LIGHTTPD, CONTROL = "emberd", "lighttpd", "emberd-control"
SERVERS = (EMBERD, LIGHTTPD)


class StartError(RuntimeError):
    """A server did not come up; the message ends with the tail of its log."""


def _command(script: str, module: str) -> list[str]:
    """The console script next to this Python, else ``python -m module``."""
    exe = Path(sys.executable).parent / script
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


def lighttpd_exe() -> str | None:
    found = shutil.which("lighttpd")
    if found:
        return found
    return "/usr/sbin/lighttpd" if Path("/usr/sbin/lighttpd").exists() else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def q(text: object) -> str:
    """A lighttpd string literal."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


# The API is protected as on the device, with Basic (a header the load tools can send):
# every request of the soak goes through mod_auth.
USER, PASSWORD, REALM = "soak", "soak-password", "soak"


def auth_conf(work: Path, set_: str) -> list[str]:
    """mod_auth settings for /api/ (the same text works for emberd and lighttpd)."""
    return [f'auth.backend {set_} "plain"',
            f"auth.backend.plain.userfile {set_} {q(work / 'users')}",
            f'auth.require {set_} ( "/api/" => ( "method" => "basic", "realm" => "{REALM}", '
            '"require" => "valid-user" ) )']


def control_conf(work: Path, sock: Path) -> str:
    return "\n".join([
        "# Written by emberd.tools.soak: emberd-control as a service, everything in a temp dir.",
        f"control.socket = {q(sock)}",
        f"control.upload-dir = {q(work / 'uploads')}",
        f"control.tunables-file = {q(work / 'tunables.conf')}",
        f"control.emberd-config = {q(work / 'emberd.conf')}",
        f"control.emberd-pid-file = {q(work / 'emberd.pid')}",
        "control.reboot-command = ( )",
        "control.firmware-command = ( )",
        "",
    ])


def emberd_conf(work: Path, port: int, sock: Path, base: Path | None = None) -> str:
    """The soak's configuration; over ``base`` (included) when one is given."""
    set_ = ":=" if base is not None else "="
    lines = ["# Written by emberd.tools.soak: the bug-#3084 workload's server."]
    if base is not None:
        lines += [f"include {q(base)}", 'server.username := ""', 'server.groupname := ""']
    else:
        lines.append('server.modules = ( "mod_auth", "mod_authn_file", "mod_fastcgi" )')
    lines += auth_conf(work, set_)
    settings = [
        ("server.bind", '"127.0.0.1"'),
        ("server.port", str(port)),
        ("server.document-root", q(work / "www")),
        ("server.pid-file", q(work / "emberd.pid")),
        ("server.errorlog", q(work / "emberd.log")),
        ("server.upload-dirs", f"( {q(work / 'tmp')} )"),
        ("server.max-connections", str(MAX_CONNECTIONS)),
        ("server.max-keep-alive-requests", "65535"),
        ("h2.max-requests-per-connection", "0"),
        ("server.stream-request-body", "1"),
        ("server.stream-response-body", "1"),
        ("fastcgi.server", f'( "/api/" => ( "control" => ( "socket" => {q(sock)}, '
                           '"check-local" => "disable", "keep-conn" => "enable" ) ) )'),
    ]
    lines += [f"{key} {set_} {value}" for key, value in settings]
    return "\n".join([*lines, ""])


def lighttpd_conf(work: Path, port: int, sock: Path) -> str:
    return "\n".join([
        "# Written by emberd.tools.soak: lighttpd in front of the same emberd-control.",
        'server.modules = ( "mod_auth", "mod_authn_file", "mod_fastcgi" )',
        *auth_conf(work, "="),
        f"server.document-root = {q(work / 'www')}",
        'server.bind = "127.0.0.1"',
        f"server.port = {port}",
        f"server.errorlog = {q(work / 'lighttpd.log')}",
        f"server.upload-dirs = ( {q(work / 'tmp')} )",
        f"server.max-connections = {MAX_CONNECTIONS}",
        "server.max-keep-alive-requests = 65535",
        "server.stream-request-body = 1",
        "server.stream-response-body = 1",
        f'fastcgi.server = ( "/api/" => ( ( "socket" => {q(sock)},',
        '    "check-local" => "disable" ) ) )',
        "",
    ])


@dataclass(slots=True)
class Proc:
    """A process this tool started: its name in the report, its Popen and its log."""

    name: str
    popen: subprocess.Popen[bytes]
    logs: tuple[Path, ...]  # its standard output and error, then its error log if any

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        tails = []
        for log in self.logs:
            try:
                text = log.read_text("utf-8", "replace").splitlines()
            except OSError:
                continue
            if text:
                tails.append(f"--- {log.name}\n" + "\n".join(text[-lines:]))
        return "\n".join(tails) or "(nothing logged)"

    def stop(self) -> None:
        """SIGTERM to this process (by PID), SIGKILL if it lingers."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@dataclass
class Stack:
    """emberd-control plus ``server`` ("emberd" or "lighttpd") under ``work``."""

    server: str
    work: Path
    emberd_base: Path | None = None  # a configuration to soak instead of the generated one
    port: int = 0
    processes: list[Proc] = field(default_factory=list)
    sock_dir: Path | None = None  # the short temp directory of the socket, when needed

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        for d in ("www", "uploads", "tmp"):
            (self.work / d).mkdir(parents=True, exist_ok=True)
        (self.work / "users").write_text(f"{USER}:{PASSWORD}\n")
        sock = self.work / "control.sock"
        if len(bytes(sock)) > SUN_PATH_MAX:
            self.sock_dir = Path(tempfile.mkdtemp(prefix="emberd-soak-", dir="/tmp"))
            sock = self.sock_dir / "control.sock"
        conf = self.work / "control.conf"
        conf.write_text(control_conf(self.work, sock))
        control = self._spawn(CONTROL, [*_command("emberd-control", "emberd.control.main"),
                                        "--config", str(conf)])
        self.processes.append(control)
        _wait(control, lambda: "started (pid" in control.log_tail(5))  # listening by then
        self.port = free_port()
        if self.server == EMBERD:
            conf = self.work / "emberd.conf"
            conf.write_text(emberd_conf(self.work, self.port, sock, self.emberd_base))
            cmd = [*_command("emberd", "emberd.cli"), "-D", "-f", str(conf)]
            env = {**os.environ, **ALLOCATOR_ENVIRONMENT}
        elif self.server == LIGHTTPD:
            exe = lighttpd_exe()
            if exe is None:
                raise StartError("lighttpd is not installed")
            conf = self.work / "lighttpd.conf"
            conf.write_text(lighttpd_conf(self.work, self.port, sock))
            cmd = [exe, "-D", "-f", str(conf)]
            env = None
        else:
            raise ValueError(f"unknown server {self.server!r}")
        # the server goes first in the list: it is the process the run is named after
        self.processes.insert(0, self._spawn(self.server, cmd, env))
        _wait(self.processes[0], lambda: _listening(self.port))

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> Proc:
        out_path = self.work / f"{name}.out"
        with open(out_path, "wb") as out:
            popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=self.work, env=env)
        return Proc(name, popen, (out_path, self.work / f"{name}.log"))

    def stop(self) -> None:
        """The front server first (it holds connections to the backend), then the backend."""
        for proc in self.processes:
            proc.stop()
        if self.sock_dir is not None:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
            self.sock_dir = None

    def dead(self) -> list[Proc]:
        return [p for p in self.processes if not p.alive()]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _wait(proc: Proc, ready: Callable[[], bool]) -> None:
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:
        if not proc.alive():
            raise StartError(f"{proc.name} exited with status {proc.popen.returncode}:\n"
                             + proc.log_tail())
        if ready():
            return
        time.sleep(0.05)
    raise StartError(f"{proc.name} did not come up in {START_TIMEOUT:.0f} s:\n"
                     + proc.log_tail())

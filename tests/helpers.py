"""Starting emberd for tests, and a raw HTTP/1.x client.

``Emberd`` runs the real ``emberd`` executable as lighttpd's test harness
runs lighttpd: the test binds 127.0.0.1 on an ephemeral port and hands the
socket over by systemd socket activation (fd 3, LISTEN_FDS=1, LISTEN_PID of
the child).  ``InProcess`` runs a Server in a thread of the test process,
for tests that read its statistics.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

EMBERD = str(Path(sys.executable).parent / "emberd")


@dataclass
class Reply:
    status: int
    reason: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def parse_replies(data: bytes, head_only: set[int] | None = None) -> list[Reply]:
    """Split a stream of HTTP/1.x responses (Content-Length framed, or to EOF)."""
    out: list[Reply] = []
    head_only = head_only or set()
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"incomplete response head: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = ([*lines[0].split(" ", 2), ""])[:3]
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        n = len(out)
        if n in head_only or int(status) in (204, 304) or 100 <= int(status) < 200:
            body, data = b"", rest
        elif length is None:
            body, data = rest, b""
        else:
            body, data = rest[:length], rest[length:]
        out.append(Reply(int(status), reason, version, headers, body))  # type: ignore[arg-type]
    return out


def wait_for(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``cond()`` until it holds; AssertionError after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def raw(port: int, request: bytes, host: str = "127.0.0.1", half_close: bool = True,
        timeout: float = 20.0) -> bytes:
    """Send bytes, optionally half-close, read until the server closes."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(request)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = bytearray()
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
        return bytes(out)


def get(port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET",
        body: bytes = b"", version: str = "1.1") -> Reply:
    hdrs = {"Host": "localhost", "Connection": "close", **(headers or {})}
    if body:
        hdrs.setdefault("Content-Length", str(len(body)))
    req = f"{method} {path} HTTP/{version}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    replies = parse_replies(raw(port, req.encode("latin-1") + body),
                            head_only={0} if method == "HEAD" else None)
    assert len(replies) == 1, replies
    return replies[0]


@dataclass
class Emberd:
    """The emberd executable, serving a configuration written to ``workdir``."""

    workdir: Path
    config: str
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    sock: socket.socket | None = None

    @property
    def conf_path(self) -> Path:
        return self.workdir / "emberd.conf"

    @property
    def errorlog(self) -> Path:
        return self.workdir / "error.log"

    def start(self) -> Emberd:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conf_path.write_text(
            'server.systemd-socket-activation = "enable"\n'
            f'server.errorlog = "{self.errorlog}"\n' + self.config)
        fd = self.sock.fileno()

        def hand_over() -> None:
            os.dup2(fd, 3)
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())

        self.proc = subprocess.Popen(
            [EMBERD, "-D", "-f", str(self.conf_path), *self.extra_args],
            preexec_fn=hand_over, pass_fds=(3,), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.workdir)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.proc is not None
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise AssertionError(f"emberd exited with {self.proc.returncode}:\n{out}\n"
                                     f"{self.log()}")
            if "started (pid" in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"emberd did not start:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.errorlog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.sock is not None:
            self.sock.close()
        return self.proc.returncode


class InProcess:
    """A Server running in a thread of the test process (no signals)."""

    def __init__(self, config_text: str, workdir: Path) -> None:
        from emberd.cli import keep_ssl_out
        from emberd.config.loader import load
        from emberd.core.server import Server

        keep_ssl_out()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.close()
        text = (f'server.bind = "127.0.0.1"\nserver.port = {self.port}\n'
                f'server.errorlog = "{workdir / "error.log"}"\n' + config_text)
        (workdir / "emberd.conf").write_text(text)
        self.server = Server(load(str(workdir / "emberd.conf")))
        self.server.bind()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        time.sleep(0.2)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve(signals=False))

    @property
    def stats(self):  # type: ignore[no-untyped-def]
        return self.server.shared.stats

    def call(self, fn, *args):  # type: ignore[no-untyped-def]
        """Run fn(*args) on the server's loop and wait for it."""
        done = threading.Event()
        result: list[object] = []

        def run() -> None:
            result.append(fn(*args))
            done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(10)
        return result[0] if result else None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.server.shutdown_now)
        self.thread.join(10)
        self.server.close()
        self.loop.close()

"""The error log: a file, a pipe to a command, standard error, or syslog.

Lines look like lighttpd's: ``2026-11-26 19:40:53: (where) message``.
``reopen()`` (on SIGHUP) reopens a file so that log rotation works; a piped
command (``"|/usr/bin/logger"``) is started once and kept.  Writing never
raises: a log that cannot be written must not take the server down.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

_FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
    "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}


class ErrorLog:
    def __init__(self, target: str = "", syslog_facility: str | None = None,
                 high_precision: bool = False) -> None:
        self.target = target
        self.high_precision = high_precision
        self.fd = 2
        self._pipe: subprocess.Popen[bytes] | None = None
        self._syslog: object | None = None
        if syslog_facility is not None:
            import syslog  # only where the configuration asks for it

            syslog.openlog("emberd", syslog.LOG_PID,
                           _FACILITIES.get(syslog_facility, 3) << 3)
            self._syslog = syslog
        else:
            self.open()

    def open(self) -> None:
        target = self.target
        if not target:
            self.fd = 2
        elif target.startswith("|"):
            if self._pipe is None:
                self._pipe = subprocess.Popen(target[1:], shell=True, stdin=subprocess.PIPE,
                                              close_fds=True)
            assert self._pipe.stdin is not None
            self.fd = self._pipe.stdin.fileno()
        else:
            fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            if self.fd > 2:
                os.close(self.fd)
            self.fd = fd

    def reopen(self) -> None:
        if self.target and not self.target.startswith("|") and self._syslog is None:
            try:
                self.open()
            except OSError as exc:
                self.write("errorlog", f"cannot reopen {self.target}: {exc.strerror}")

    def stamp(self) -> str:
        now = time.time()
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        if self.high_precision:
            text += f".{int((now % 1) * 1_000_000):06d}"
        return text

    def write(self, where: str, message: str) -> None:
        if self._syslog is not None:
            self._syslog.syslog(3, f"({where}) {message}")  # type: ignore[attr-defined]
            return
        line = f"{self.stamp()}: ({where}) {message}\n".encode("utf-8", "replace")
        try:
            os.write(self.fd, line)
        except OSError:
            if self.fd != 2:
                with contextlib.suppress(OSError):
                    os.write(2, line)

    def close(self) -> None:
        if self.fd > 2 and self._pipe is None:
            os.close(self.fd)
        self.fd = 2
        if self._pipe is not None:
            assert self._pipe.stdin is not None
            self._pipe.stdin.close()
            self._pipe.wait(timeout=5)
            self._pipe = None
        sys.stderr.flush()

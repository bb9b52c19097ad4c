"""emberd settings the control API may read and change (GET and PUT /api/config).

A change is checked three ways before anything is written: the key must be
in ``control.tunables``, the value must fit the directive (emberd's own
schema: type, range, choices), and emberd's whole configuration with the
change must load -- the check ``emberd -tt`` makes.  Only then is the
tunables file (which emberd's configuration includes) replaced: written to
a temp file, fsync'ed, the old one kept as ``.prev``, renamed into place.
Its lines use ``:=`` so that they override what the main file sets.
The caller applies the change with a graceful reload (SIGUSR1) once the
response has been sent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from ..config.errors import ConfigError
from ..config.loader import load
from ..config.parser import parse
from ..config.schema import Directive, Type, ValueProblem, coerce, format_default
from ..config.settings import ServerConfig

_SCALAR = (Type.BOOL, Type.SHORT, Type.INT, Type.STRING)


class Refused(Exception):
    """A change that is not made: ``status`` and the reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Tunables:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.allowed: tuple[str, ...] = settings["control.tunables"]
        self.path: str = settings["control.tunables-file"]
        self.main: str = settings["control.emberd-config"]
        self.pid_file: str = settings["control.emberd-pid-file"]

    def _config(self, text: str | None = None) -> ServerConfig:
        try:
            if text is None:
                return load(self.main)
            return load(os.path.join(os.path.dirname(self.main), "<change>"), text)
        except ConfigError as exc:
            raise Refused(500 if text is None else 400, str(exc)) from None

    def _directive(self, config: ServerConfig, key: str) -> Directive:
        if key not in self.allowed:
            raise Refused(400, f"{key} is not a tunable; tunables: " + ", ".join(self.allowed))
        d = config.directives.get(key)
        if d is None or d.type not in _SCALAR:
            raise Refused(400, f"{key} cannot be set through the API")
        return d

    def current(self) -> dict[str, Any]:
        """Every tunable: its value in effect, default, unit, range and meaning."""
        config = self._config()
        out: dict[str, Any] = {}
        for key in self.allowed:
            d = config.directives.get(key)
            if d is None:
                continue
            out[key] = {"value": config[key], "default": format_default(d), "unit": d.unit,
                        "range": d.range_text(), "doc": d.doc, "restart": d.restart}
        return out

    def overrides(self) -> dict[str, Any]:
        """What the tunables file sets now."""
        if not os.path.exists(self.path):
            return {}
        try:
            tree = parse(self.path)
        except ConfigError as exc:
            raise Refused(500, f"the tunables file is damaged: {exc}") from None
        return {k: a.value for k, a in tree.root.values.items()
                if not k.startswith(("var.", "env."))}

    def change(self, changes: dict[str, Any]) -> list[str]:
        """Check and write ``changes`` (None resets a key); the keys that need a restart."""
        config = self._config()
        merged = self.overrides()
        restart: list[str] = []
        for key, value in changes.items():
            d = self._directive(config, key)
            if value is None:
                merged.pop(key, None)
                continue
            if isinstance(value, bool):
                value = "enable" if value else "disable"
            if not isinstance(value, (int, str)):
                raise Refused(400, f"{key}: expected a number, string or boolean")
            try:
                coerce(d, value, lambda m: None)
            except ValueProblem as exc:
                raise Refused(400, f"{key}: {exc}") from None
            merged[key] = value
            if d.restart:
                restart.append(key)
        text = render(merged)
        self._config(f'include "{self.main}"\n' + text)  # the whole configuration must load
        self._write(text)
        return restart

    def _write(self, text: str) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(self.path)}.tmp-{os.getpid()}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if os.path.exists(self.path):
                prev_tmp = tmp + ".prev"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(prev_tmp)
                os.link(self.path, prev_tmp)
                os.replace(prev_tmp, self.path + ".prev")
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise Refused(507 if exc.errno in (28, 122) else 500,
                          f"cannot write {self.path}: {exc.strerror}") from None
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def emberd_pid(self) -> int | None:
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists(f"/proc/{pid}") else None

    def reload(self, log: Any) -> None:
        """Ask emberd to load its configuration again (graceful: SIGUSR1)."""
        pid = self.emberd_pid()
        if pid is None:
            log(f"emberd is not running (pid file {self.pid_file}): the change applies at "
                "its next start")
            return
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError as exc:
            log(f"cannot signal emberd (pid {pid}): {exc.strerror}")


def _literal(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(values: dict[str, Any]) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    lines = [f"# Written by emberd-control at {stamp} UTC: change it with PUT /api/config.",
             "# ':=' overrides what the main configuration sets."]
    lines += [f"{k} := {_literal(v)}" for k, v in sorted(values.items())]
    return "\n".join(lines) + "\n"

"""emberd-control's configuration: ``control.*`` keys in lighttpd syntax, one schema table.

The same parser and schema machinery as emberd's own configuration reads
it, so errors carry file:line and ``emberd-control -t`` checks it.
"""

from __future__ import annotations

from typing import Any

from ..config.loader import load_table
from ..config.schema import Directive, Scope, Type, ValueProblem

KIB = 1024


def _octal(text: str) -> int:
    if not text or any(c not in "01234567" for c in text):
        raise ValueProblem(f"{text!r} is not an octal mode like \"0660\"")
    return int(text, 8)


def _c(key: str, type_: Type, default: Any, doc: str, **kw: Any) -> Directive:
    return Directive(key, type_, Scope.SERVER, default, doc, module="emberd-control", **kw)


# emberd settings that PUT /api/config may change unless control.tunables says otherwise:
# the memory knobs and the timeouts
DEFAULT_TUNABLES = (
    "server.max-connections", "server.max-keep-alive-requests", "server.max-keep-alive-idle",
    "server.max-read-idle", "server.max-write-idle", "server.max-request-size",
    "server.max-request-field-size", "server.stream-request-body",
    "server.stream-response-body", "emberd.body-memory-max", "emberd.chunk-reserve",
    "emberd.maintenance-interval", "emberd.malloc-trim", "emberd.malloc-top-pad",
    "emberd.request-pool-size", "emberd.memory-stats-interval", "h2.max-concurrent-streams",
    "h2.initial-window-size", "h2.connection-window-size",
)

CONTROL: tuple[Directive, ...] = (
    _c("control.socket", Type.STRING, "/run/emberd-control.sock",
       "unix socket to serve FastCGI on (ignored when started with a listening socket on "
       "fd 0, as emberd's bin-path does)"),
    _c("control.socket-mode", Type.STRING, "0660", "permissions of control.socket, in octal",
       normalize=_octal),
    _c("control.socket-group", Type.STRING, "", "group of control.socket (e.g. the group "
       "emberd runs as); empty: unchanged"),
    _c("control.listen-backlog", Type.INT, 1024, "connections waiting to be accepted on "
       "control.socket (emberd opens one per request in flight: an HTTP/2 burst needs many)",
       min=1, max=65535),
    _c("control.url-prefix", Type.STRING, "/api", "URL path under which the API is served"),
    _c("control.upload-dir", Type.STRING, "/var/lib/emberd/uploads",
       "where POST /api/upload stores files"),
    _c("control.upload-max-size", Type.INT, 16 * KIB, "largest upload", unit="KiB", min=1,
       max=1 << 30),
    _c("control.firmware-max-size", Type.INT, 256 * KIB, "largest firmware image",
       unit="KiB", min=1, max=1 << 30),
    _c("control.tunables-file", Type.STRING, "/var/lib/emberd/tunables.conf",
       "file of generated settings that emberd's configuration includes"),
    _c("control.tunables", Type.LIST, DEFAULT_TUNABLES,
       "emberd settings GET/PUT /api/config may read and change"),
    _c("control.emberd-config", Type.STRING, "/etc/emberd/emberd.conf",
       "emberd's main configuration (changes are checked against it)"),
    _c("control.emberd-pid-file", Type.STRING, "/run/emberd.pid",
       "emberd's pid file: where a changed configuration is applied (SIGUSR1) and whose "
       "memory /api/status reports"),
    _c("control.reboot-command", Type.LIST, ("/sbin/reboot",),
       "argument vector run by POST /api/reboot (empty: refused)"),
    _c("control.firmware-command", Type.LIST, (),
       "argument vector run by POST /api/firmware with the image path appended (empty: "
       "refused)"),
    _c("control.command-timeout", Type.INT, 300, "time a command may take", unit="s", min=1,
       max=86400),
)


def load(path: str) -> dict[str, Any]:
    """The settings of ``path``; ConfigError with file:line when they are wrong."""
    values = load_table(path, CONTROL)
    if isinstance(values["control.socket-mode"], str):  # the default is not normalized
        values["control.socket-mode"] = _octal(values["control.socket-mode"])
    return values

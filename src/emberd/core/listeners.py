"""Listening sockets: from configuration tokens, or inherited from systemd.

A token names a listener the way ``$SERVER["socket"]`` does: ``":80"`` (every
address), ``"127.0.0.1:8080"``, ``"[::1]:8080"``, ``"/run/emberd.sock"`` (a
unix socket).  The global listener's token is ``server.bind`` plus
``":" + server.port`` (no port for a unix socket), as lighttpd writes it.

With ``server.systemd-socket-activation``, sockets passed in LISTEN_FDS (for
this process, per LISTEN_PID) are used instead of binding: each is matched
to a configured token by its address, and one that matches none becomes a
listener of its own.  Configured tokens that no passed socket matches are
bound as usual.  lighttpd's test harness starts servers this way.

A listener whose settings (``config.for_socket(token)``: global values and
its ``$SERVER["socket"]`` block) enable ``ssl.engine`` speaks TLS: its
``tls`` is the Endpoint holding its certificates, built by
``tls_endpoints()`` before anything is served (or, at a reload, before the
old listeners are touched) so that a bad certificate stops start-up and
keeps a reload from applying.  An inherited socket that matches no token
follows the global ``ssl.engine``.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config.settings import ServerConfig
    from ..tls.endpoint import Endpoint

SD_LISTEN_FDS_START = 3


class ListenError(Exception):
    pass


class TlsListenError(ListenError):
    """TLS settings of a listener that cannot be served (one line per problem)."""


@dataclass(slots=True, eq=False)
class Listener:
    token: str
    sock: socket.socket
    inherited: bool = False
    tls: Endpoint | None = None  # set for a listener with ssl.engine

    def close(self) -> None:
        self.sock.close()


def global_token(values: dict[str, Any]) -> str:
    bind: str = values["server.bind"]
    if bind.startswith("/"):
        return bind
    host = f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind
    return f"{host}:{values['server.port']}"


def parse_token(token: str, use_ipv6: bool) -> tuple[int, Any]:
    """(address family, address) for socket.bind."""
    if token.startswith("/"):
        return socket.AF_UNIX, token
    if token.startswith("["):
        end = token.find("]")
        host, rest = token[1:end], token[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
        family = socket.AF_INET6
    else:
        host, _, port = token.rpartition(":")
        if not _:
            host, port = token, ""
        family = socket.AF_INET
        if not host:
            if use_ipv6:
                family, host = socket.AF_INET6, "::"
            else:
                host = "0.0.0.0"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"{token}: no valid port")
    if family == socket.AF_INET6:
        return family, (host, int(port), 0, 0)
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_UNSPEC, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ListenError(f"{token}: cannot resolve {host}: {exc}") from None
    fam, _, _, _, addr = infos[0]
    return fam, addr


def bind(token: str, values: dict[str, Any]) -> Listener:
    """Create, bind and listen on the socket for ``token``."""
    family, addr = parse_token(token, values["server.use-ipv6"])
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.set_inheritable(False)
        if family == socket.AF_UNIX:
            _remove_stale_unix_socket(addr)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY,
                                1 if values["server.set-v6only"] else 0)
            if values["server.defer-accept"] and hasattr(socket, "TCP_DEFER_ACCEPT"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        sock.bind(addr)
        if family == socket.AF_UNIX and values["server.socket-perms"]:
            os.chmod(addr, int(values["server.socket-perms"], 8))
        sock.listen(values["server.listen-backlog"])
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {token}: {exc.strerror or exc}") from None
    except ValueError:
        sock.close()
        raise ListenError(f"server.socket-perms is not an octal mode: "
                          f"{values['server.socket-perms']!r}") from None
    return Listener(token, sock)


def _remove_stale_unix_socket(path: str) -> None:
    """Remove a socket file left by a previous run, if nobody listens on it."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return
    except OSError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
    else:
        raise ListenError(f"{path}: another process is listening on this socket")
    finally:
        probe.close()


def _token_of(sock: socket.socket) -> str:
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return str(addr)
    if sock.family == socket.AF_INET6:
        return f"[{addr[0]}]:{addr[1]}"
    return f"{addr[0]}:{addr[1]}"


def _same_address(token: str, sock: socket.socket, use_ipv6: bool) -> bool:
    try:
        family, addr = parse_token(token, use_ipv6)
    except ListenError:
        return False
    if family != sock.family:
        return False
    got = sock.getsockname()
    if family == socket.AF_UNIX:
        return bool(got == addr)
    return bool(got[1] == addr[1] and (got[0] == addr[0] or addr[0] in ("0.0.0.0", "::")))


def inherited_sockets() -> list[socket.socket]:
    """Sockets passed by systemd (LISTEN_FDS) to this very process; clears the variables."""
    env = os.environ
    try:
        pid = int(env.get("LISTEN_PID", "0"))
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(var, None)
    if pid != os.getpid() or count <= 0:
        return []
    out = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ListenError(f"LISTEN_FDS: descriptor {fd} is not a socket: "
                              f"{exc.strerror}") from None
        sock.setblocking(False)
        sock.set_inheritable(False)
        out.append(sock)
    return out


def open_listeners(tokens: list[str], values: dict[str, Any],
                   inherited: list[socket.socket]) -> list[Listener]:
    """Listeners for ``tokens`` (the global one first), using inherited sockets.

    As lighttpd does, the global listener is not bound when sockets were
    inherited and ``server.bind`` is empty: the passed sockets replace it.
    """
    out: list[Listener] = []
    unused = list(inherited)
    use_ipv6 = values["server.use-ipv6"]
    try:
        for i, token in enumerate(tokens):
            match = next((s for s in unused if _same_address(token, s, use_ipv6)), None)
            if match is not None:
                unused.remove(match)
                out.append(Listener(token, match, inherited=True))
            elif i == 0 and inherited and not values["server.bind"]:
                continue
            else:
                out.append(bind(token, values))
        out.extend(Listener(_token_of(s), s, inherited=True) for s in unused)
    except ListenError:
        for listener in out:
            listener.close()
        raise
    return out


def config_tokens(config: ServerConfig) -> list[str]:
    """The listener tokens a configuration asks for: the global one, then $SERVER["socket"]s."""
    tokens = [global_token(config.values)]
    tokens += [t for t in config.socket_tokens() if t not in tokens]
    return tokens


def tls_endpoints(config: ServerConfig, tokens: Iterable[str],
                  log: Callable[[str, str], None]) -> dict[str, Endpoint]:
    """The TLS endpoints of the listeners among ``tokens`` (none without ssl.engine).

    Certificates are read here, before privileges are dropped; TlsListenError
    lists every problem.  Nothing TLS is imported unless some listener
    enables ssl.engine.
    """
    tokens = list(tokens)
    if not any(config.for_socket(t).get("ssl.engine") for t in tokens):
        return {}
    from ..tls.endpoint import build_endpoints
    from ..tls.errors import TlsSetupError

    try:
        return build_endpoints(config, tokens, log)
    except TlsSetupError as exc:
        raise TlsListenError("\n".join(f"TLS: {p}" for p in exc.problems)) from None


def attach_tls(listeners: Iterable[Listener], endpoints: dict[str, Endpoint]) -> None:
    """Give each listener its endpoint (None: plain TCP)."""
    for li in listeners:
        li.tls = endpoints.get(li.token)

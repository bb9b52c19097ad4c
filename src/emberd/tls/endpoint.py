"""TLS listeners: their library contexts, and the choice of one per handshake (SNI).

An ``Endpoint`` belongs to a listener whose ``ssl.engine`` is on.  It holds
one library context per distinct set of certificate settings -- the
listener's own, and those of ``$HTTP["host"]`` (and ``remoteip``) blocks
that set certificate keys -- all built and checked at start-up, so a
missing file or a key that does not match stops the server with a message
naming the file rather than failing handshakes later.  During a handshake
``context_for()`` evaluates the configuration's conditions with the name
the client sent (SNI) as the host, and the client's address, and returns
the matching context; a combination no block foresaw alone (two
overlapping host blocks) is built then, once.

The backend module is imported here, when the first TLS listener is set
up: a configuration without ``ssl.engine`` never loads a TLS library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ..config.conditions import Field
from . import credentials
from .certificates import Certificate
from .errors import TlsSetupError
from .settings import TlsSettings, misplaced, overlay, settings_from, sni_blocks, where

if TYPE_CHECKING:
    from ..config.settings import ServerConfig

Log = Callable[[str, str], None]

BACKENDS = {"mbedtls": "emberd.tls.mbedtls_backend", "openssl": "emberd.tls.openssl_backend"}
_MISSING = {
    "mbedtls": 'python-mbedtls is not installed (pip install python-mbedtls, the "tls" '
               'extra; or set ssl.backend = "openssl")',
    "openssl": "this Python has no ssl module (built without OpenSSL); use "
               'ssl.backend = "mbedtls"',
}


class Session(Protocol):
    """One connection's TLS state, as both backends implement it."""

    def receive(self, data: memoryview | bytes) -> None: ...
    def handshake(self) -> bool: ...
    def read_into(self, view: memoryview) -> int: ...
    def write(self, data: memoryview | bytes) -> None: ...
    def take_output(self) -> list[bytes]: ...
    def close_notify(self) -> None: ...
    def alpn(self) -> str | None: ...
    def version(self) -> str: ...
    def cipher(self) -> str: ...
    def peer_certificate(self) -> bytes | None: ...
    def peer_verified(self) -> bool: ...
    def verified_chain(self) -> list[bytes] | None: ...


class Context(Protocol):
    """A library context for one set of certificate settings."""

    settings: TlsSettings
    authorities: list[Certificate]

    def session(self) -> Session: ...


def backend(name: str) -> Any:
    """The backend module (imports its library); ImportError if it is missing."""
    return importlib.import_module(BACKENDS[name])


def build_context(settings: TlsSettings, place: str, log: Log) -> Context:
    """Load the files ``settings`` name into a library context; TlsSetupError if unusable."""
    try:
        module = backend(settings.backend)
    except ImportError:
        raise TlsSetupError([f'ssl.backend "{settings.backend}": '
                             f"{_MISSING[settings.backend]}"]) from None
    creds = credentials.load(settings, place)
    try:
        ctx: Context = module.make_context(settings, creds)
    except TlsSetupError as exc:
        raise TlsSetupError([f"{place}: {p}" if place else p for p in exc.problems]) from None
    for w in creds.warnings:
        log("tls", f"warning: {w}")
    return ctx


class _HandshakeFacts:
    """What the conditions can see during a handshake."""

    __slots__ = ("host", "remote", "token")

    def __init__(self, host: str, remote: str, token: str) -> None:
        self.host, self.remote, self.token = host, remote, token

    def cond_value(self, field: Field, header: str | None) -> str | None:
        if field is Field.HOST:
            return self.host
        if field is Field.REMOTE_IP:
            return self.remote
        if field is Field.SCHEME:
            return "https"
        if field is Field.SERVER_SOCKET:
            return self.token
        return None


class Endpoint:
    """A TLS listener's contexts and settings."""

    def __init__(self, token: str, config: ServerConfig, default: Context, sni: bool,
                 contexts: dict[TlsSettings, Context], log: Log) -> None:
        self.token = token
        self.default = default
        self.backend = default.settings.backend
        self.handshake_timeout: int = config.for_socket(token)["ssl.handshake-timeout"]
        self._config = config
        self._sni = sni
        self._contexts = contexts
        self._log = log

    def context_for(self, server_name: str | None, remote_addr: str) -> Context:
        """The context for a client asking for ``server_name`` (None: no SNI)."""
        if not self._sni:
            return self.default
        values, _ = self._config.for_request(
            _HandshakeFacts(server_name or "", remote_addr, self.token))
        settings = settings_from(values)
        ctx = self._contexts.get(settings)
        if ctx is None:
            try:
                ctx = build_context(settings, f"SNI {server_name}", self._log)
            except TlsSetupError as exc:
                for p in exc.problems:
                    self._log("tls", f"{p}; using the certificate of {self.token}")
                ctx = self.default
            self._contexts[settings] = ctx
        return ctx


def build_endpoints(config: ServerConfig, tokens: Iterable[str], log: Log) -> dict[str, Endpoint]:
    """Endpoints for the listeners among ``tokens`` with ssl.engine on; TlsSetupError lists
    every problem (each naming its file and, where known, its configuration line)."""
    problems = list(misplaced(config))
    built: dict[TlsSettings, Context] = {}
    endpoints: dict[str, Endpoint] = {}
    extra = sni_blocks(config)

    def get(settings: TlsSettings, place: str) -> Context | None:
        ctx = built.get(settings)
        if ctx is None:
            try:
                ctx = built[settings] = build_context(settings, place, log)
            except TlsSetupError as exc:
                problems.extend(exc.problems)
                return None
        return ctx

    for token in tokens:
        values = config.for_socket(token)
        if not values.get("ssl.engine"):
            continue
        settings = settings_from(values)
        if not settings.pemfile:
            at = where(config, "ssl.engine", True)
            problems.append(f"{at}: " * bool(at) + f"TLS is enabled on {token} but "
                            "ssl.pemfile is not set")
            continue
        default = get(settings, where(config, "ssl.pemfile", settings.pemfile))
        contexts: dict[TlsSettings, Context] = {}
        sni = False
        for index in extra:
            block = overlay(config, token, index)
            if block is None:
                continue
            sni = True
            alt = settings_from(block)
            cond = config.blocks[index].condition
            loc = config.tree.blocks[index].loc
            ctx = get(alt, f"{loc}: {cond.text()}" if cond is not None else str(loc))
            if ctx is not None:
                contexts[alt] = ctx
        if default is None:
            continue
        contexts[settings] = default
        endpoints[token] = Endpoint(token, config, default, sni, contexts, log)
    if problems:
        raise TlsSetupError(problems)
    return endpoints

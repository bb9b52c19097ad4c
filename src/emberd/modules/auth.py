"""mod_auth: HTTP Basic and Digest authentication for URL prefixes (lighttpd's mod_auth).

Theory of operation:

* ``auth.require`` maps URL path prefixes to what a request needs there:
  a method ("basic" or "digest"), a realm and a rule ("valid-user", or
  "user=a|user=b|group=g").  The table is parsed once, when the
  configuration is read (``parse_require``); a mistake is an error with
  ``file:line``.  The first prefix that matches the clean path applies
  (lighttpd's ``array_match_key_prefix()``, in the order of the file; a
  later prefix that an earlier one shadows is reported as a warning).
* The check runs in ``uri_clean`` (lighttpd's handle_uri_clean), before
  the path is mapped to a file or handed to a backend, so it covers static
  files and FastCGI alike, over HTTP/1.1 and HTTP/2.
* Passwords come from a backend named by ``auth.backend``.  Backends live
  in other modules (``mod_authn_file``: "htpasswd", "htdigest", "plain")
  and are found through the ``auth_backend(name)`` method of a loaded
  plugin, as lighttpd's backends register with ``http_auth_backend_set()``.
  A user file that cannot be read makes the protected paths answer 503:
  there is no default password, and the error log says how to create the
  file.
* Basic: ``Authorization: Basic base64(user:password)`` is checked by the
  backend.  Digest (RFC 7616, qop=auth, MD5 and SHA-256 and their -sess
  forms): the backend gives H(A1) = H(user:realm:password) and the response
  is recomputed.  A nonce is ``hex(time):hex(random):mac``, the mac an
  HMAC-SHA-256 of the first two fields under ``nonce-secret`` (or a random
  secret of the process), so that only nonces emberd made are accepted.  A
  nonce older than 600 s (lighttpd's limit) is *stale*: the client is asked
  to retry with a fresh one (``stale=true``) without asking the user again.
* Invalid credentials (an unknown user, a wrong password) get their 401
  one second later, without holding up anything else (``Delayed``, a
  Deferred response on a timer), and the connection is not kept: with
  HTTP/1.1 ``Connection: close``, with HTTP/2 a GOAWAY once the stream is
  done (``auth.http-goaway-invalid-creds``).  A password guesser gets one
  try per second and connection -- lighttpd's ``auth.delay-invalid-creds``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any, Protocol

from ..config.errors import Diagnostics
from ..config.schema import Directive, Scope, Type, ValueProblem, coerce_entry
from ..config.settings import ServerConfig
from ..config.values import Array, Value
from ..core.runtime import Runtime
from ..digests import compare_digest, hmac_sha256, md5, random_bytes, sha256
from ..http.message import Deferred, Request, Response, Sink
from ..http.status import error_page
from . import Plugin

NAME = "mod_auth"
BACKENDS = ("htpasswd", "htdigest", "plain")
# lighttpd answers invalid credentials at its next once-a-second tick (0..1 s,
# connections.c); emberd waits a whole second, so every guess costs one.
DELAY = 1.0
NONCE_TTL = 600  # seconds a nonce is accepted (lighttpd: 10 minutes)
BASIC_MAX = 1363  # base64 characters of "user:password" (lighttpd: 1023 decoded bytes)
DIGEST_MAX = 1024  # length of a Digest user name (lighttpd's userbuf)
# the random secret of nonces when auth.require has no "nonce-secret": nonces of
# this process stay valid across reloads, and a restart makes them stale
_PROCESS_SECRET = random_bytes(32)
_CHALLENGE_ORDER = ("SHA-256", "MD5")  # lighttpd offers the stronger first


class Unavailable(Exception):
    """The backend cannot check anyone (its user file is missing): 503."""


class Misconfigured(Exception):
    """The backend cannot serve this method (Digest with htpasswd): 500."""


# -- auth.require -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Require:
    """One entry of ``auth.require``: what a request under ``prefix`` needs."""

    prefix: str
    method: str  # "basic" or "digest"
    realm: str
    valid_user: bool
    users: frozenset[str]
    groups: frozenset[str]
    hosts: tuple[str, ...]  # accepted, never matched (lighttpd: "not implemented")
    algorithms: tuple[str, ...]  # "SHA-256" and/or "MD5", in the order challenges go out
    nonce_secret: bytes | None
    userhash: bool

    def allows(self, user: str, groups: frozenset[str]) -> bool:
        """lighttpd's http_auth_match_rules(): the user, or one of its groups, is named."""
        return self.valid_user or user in self.users or bool(self.groups & groups)


def _k(key: str, type_: Type, default: Any, doc: str, **kw: Any) -> Directive:
    return Directive(key, type_, Scope.REQUEST, default, doc, module=NAME, **kw)


REQUIRE_KEYS: tuple[Directive, ...] = (
    _k("method", Type.STRING, "", "how the client authenticates (required)",
       choices=("basic", "digest")),
    _k("realm", Type.STRING, "", "the realm shown to the user (required; Digest hashes it "
       "into the password digest)"),
    _k("require", Type.STRING, "", 'who may enter (required): "valid-user", or '
       '"user=NAME|group=NAME|..." (groups from auth.backend.plain.groupfile)'),
    _k("algorithm", Type.STRING, "MD5", 'Digest hash: "MD5", "SHA-256" or "MD5|SHA-256" '
       "(one challenge each); a \"-sess\" suffix is accepted"),
    _k("nonce-secret", Type.STRING, "", "key of the nonces' HMAC (default: a random key "
       "of the process, so nonces turn stale at a restart)"),
    _k("userhash", Type.BOOL, False, "Digest: offer userhash (RFC 7616 3.4.4: the client "
       "may send H(user:realm) instead of the name)"),
)
_REQUIRE_KEY = {d.key: d for d in REQUIRE_KEYS}
_ALIASES = {"nonce_secret": "nonce-secret"}  # lighttpd accepts both spellings


def parse_rule(text: str) -> tuple[bool, frozenset[str], frozenset[str], tuple[str, ...]]:
    """lighttpd's mod_auth_require_parse(): valid-user, or user=/group=/host= tokens."""
    if text == "valid-user":
        return True, frozenset(), frozenset(), ()
    expect = '(expecting "valid-user" or "user=a|user=b|group=g|host=h")'
    users: list[str] = []
    groups: list[str] = []
    hosts: list[str] = []
    tokens = text.split("|")
    if len(tokens) > 1 and tokens[-1] == "":
        tokens.pop()  # lighttpd stops at a trailing '|'
    for token in tokens:
        kind, eq, name = token.partition("=")
        if kind == "valid-user":
            raise ValueProblem(f'"require" => "{text}": valid-user cannot be combined with '
                               f"other rules {expect}")
        if not eq:
            raise ValueProblem(f'"require" => "{text}": missing "=" in "{token}" {expect}')
        if not name:
            raise ValueProblem(f'"require" => "{text}": nothing after "=" in "{token}" '
                               f"{expect}")
        if kind == "user":
            users.append(name)
        elif kind == "group":
            groups.append(name)
        elif kind == "host":
            hosts.append(name)
        else:
            raise ValueProblem(f'"require" => "{text}": unknown rule "{kind}" {expect}')
    return False, frozenset(users), frozenset(groups), tuple(hosts)


def parse_algorithms(text: str) -> tuple[str, ...]:
    """lighttpd's mod_auth_algorithms_parse(): "MD5", "SHA-256", joined by '|'."""
    if not text:
        return ("MD5",)
    found: set[str] = set()
    for token in text.split("|"):
        name = token.upper()
        name = name.removesuffix("-SESS")
        if name not in _CHALLENGE_ORDER:
            hint = " (emberd implements MD5 and SHA-256)" if name == "SHA-512-256" else ""
            raise ValueProblem(f'"algorithm" => "{text}": "{token}" is not a Digest '
                               f'algorithm; use "MD5", "SHA-256" or "MD5|SHA-256"{hint}')
        found.add(name)
    return tuple(a for a in _CHALLENGE_ORDER if a in found)


def _explain(d: Directive, raw: Value, why: str) -> str:
    if d.key == "method" and raw == "extern":
        return ('"extern" is not supported by emberd (nothing sets REMOTE_USER before '
                'mod_auth); use "basic" or "digest"')
    return why


def _require(prefix: str, spec: Array) -> Require:
    where = f'"{prefix}"'
    if not spec.is_keyed():
        raise ValueProblem(f'{where}: expected ( "method" => "...", "realm" => "...", '
                           '"require" => "..." )')
    v = coerce_entry(where, spec, _REQUIRE_KEY, _ALIASES, _explain)
    for key in ("method", "realm", "require"):
        if key not in v or (key != "realm" and not v[key]):
            raise ValueProblem(f'{where}: "{key}" is missing' +
                               ("" if key not in v else " or empty"))
    try:
        valid, users, groups, hosts = parse_rule(v["require"])
        algorithms = parse_algorithms(v.get("algorithm", ""))
    except ValueProblem as exc:
        raise ValueProblem(f"{where}: {exc}") from None
    secret = v.get("nonce-secret", "")
    return Require(
        prefix=prefix, method=v["method"], realm=v["realm"], valid_user=valid, users=users,
        groups=groups, hosts=hosts, algorithms=algorithms,
        nonce_secret=secret.encode("utf-8") if secret else None,
        userhash=v.get("userhash", False))


def parse_require(table: dict[str, Array]) -> tuple[Require, ...]:
    """``auth.require`` as Require entries, in the order of the file."""
    return tuple(_require(prefix, spec) for prefix, spec in table.items())


def _backend_name(name: str) -> str:
    if name and name not in BACKENDS:
        raise ValueProblem(f'"{name}" is not supported by emberd; use "htpasswd", '
                           '"htdigest" or "plain" (mod_authn_file)')
    return name


# -- Digest (RFC 7616) ------------------------------------------------------------------

_HASH_SIZE = {"MD5": 16, "SHA-256": 32}


def digest_hex(algorithm: str, data: bytes) -> str:
    """H(data) in lower-case hex, for "MD5" or "SHA-256"."""
    if algorithm == "MD5":
        return str(md5(data, usedforsecurity=False).hexdigest())
    return str(sha256(data).hexdigest())


def ha1(algorithm: str, user: bytes, realm: bytes, password: bytes) -> str:
    """H(A1) = H(user:realm:password): what htdigest files hold."""
    return digest_hex(algorithm, user + b":" + realm + b":" + password)


def response_digest(algorithm: str, ha1_hex: str, method: str, uri: bytes, nonce: bytes,
                    nc: bytes, cnonce: bytes, qop: bytes, sess: bool = False) -> str:
    """The request-digest a client sends (RFC 7616 3.4.1; RFC 2069 without qop)."""
    a1 = ha1_hex.encode("ascii")
    if sess:
        a1 = digest_hex(algorithm, a1 + b":" + nonce + b":" + cnonce).encode("ascii")
    a2 = digest_hex(algorithm, method.encode("ascii") + b":" + uri).encode("ascii")
    if qop:
        return digest_hex(algorithm, b":".join((a1, nonce, nc, cnonce, qop, a2)))
    return digest_hex(algorithm, b":".join((a1, nonce, a2)))


def userhash(algorithm: str, user: bytes, realm: bytes) -> str:
    """H(user:realm), what a client sends as username with userhash=true."""
    return digest_hex(algorithm, user + b":" + realm)


def make_nonce(key: bytes, now: int, rnd: int | None = None) -> str:
    """``hex(time):hex(random):mac`` (lighttpd's layout with a nonce-secret)."""
    if rnd is None:
        rnd = int.from_bytes(random_bytes(4), "big")
    head = f"{now:x}:{rnd:08x}"
    mac = hmac_sha256(key, head.encode("ascii")).hex()[:32]
    return f"{head}:{mac}"


NONCE_OK, NONCE_STALE, NONCE_FOREIGN = "ok", "stale", "foreign"


def check_nonce(key: bytes, nonce: str, now: int, ttl: int = NONCE_TTL) -> str:
    """NONCE_OK; NONCE_STALE when expired or unreadable (lighttpd); NONCE_FOREIGN
    when emberd did not make it (another secret, another process)."""
    ts_text, sep, rest = nonce.partition(":")
    if not sep or not 0 < len(ts_text) <= 16 or not _is_hex(ts_text):
        return NONCE_STALE
    ts = int(ts_text, 16)
    if ts > now or now - ts > ttl:
        return NONCE_STALE
    rnd_text, sep, _ = rest.partition(":")
    if not sep or len(rnd_text) != 8 or not _is_hex(rnd_text):
        return NONCE_FOREIGN
    expect = make_nonce(key, ts, int(rnd_text, 16))
    if not compare_digest(expect.encode("ascii"), nonce.encode("ascii", "replace")):
        return NONCE_FOREIGN
    return NONCE_OK


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def parse_params(text: str) -> dict[str, str]:
    """The ``key=value, key="quoted"`` list after "Digest " (RFC 7616 3.4, RFC 9110 11.2).

    Quoted-pairs are unescaped; a malformed list yields what was read before it.
    """
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in "= \t,":
            i += 1
        key = text[start:i].lower()
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=" or not key:
            return out
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            if i >= n:
                return out  # unterminated
            i += 1
            out[key] = "".join(value)
        else:
            start = i
            while i < n and text[i] not in ", \t":
                i += 1
            out[key] = text[start:i]
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            return out
    return out


def _unquote(value: str) -> bytes:
    """Percent-decoding to bytes (urllib.parse's unquote_to_bytes, without importing it)."""
    raw = value.encode("utf-8", "surrogateescape")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        if raw[i] == 0x25 and i + 3 <= n and all(
                c in b"0123456789abcdefABCDEF" for c in raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return bytes(out)


def _ext_value(text: str) -> bytes | None:
    """An RFC 8187 ext-value (``username*=UTF-8''j%C3%B6rg``) decoded; None if invalid."""
    charset, q1, rest = text.partition("'")
    _lang, q2, value = rest.partition("'")
    if not q1 or not q2 or charset.lower() not in ("utf-8", "iso-8859-1"):
        return None
    raw = _unquote(value)
    if charset.lower() == "utf-8":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if len(raw) > DIGEST_MAX or any(b < 0x20 or b == 0x7F for b in raw):
        return None
    return raw


# -- backends ---------------------------------------------------------------------------


class Backend(Protocol):
    """What mod_auth asks a password backend (lighttpd's http_auth_backend_t).

    Methods raise Unavailable when the user file cannot be read, and
    Misconfigured when the backend cannot do what is asked.
    """

    def ready(self, req: Request) -> None:
        """Raise Unavailable unless users can be checked at all."""

    def basic(self, req: Request, require: Require, user: bytes, password: bytes) -> bool:
        """Whether ``password`` is ``user``'s."""
        ...

    def digest(self, req: Request, algorithm: str, user: bytes, realm: bytes,
               hashed: bool) -> tuple[bytes, str] | None:
        """(user name, H(A1) in hex) of ``user`` -- or, when ``hashed``, of the user
        whose H(user:realm) is ``user``; None if there is no such user."""
        ...

    def groups(self, req: Request, user: bytes) -> frozenset[str]:
        """The groups ``user`` belongs to."""
        ...


# -- delayed answers ----------------------------------------------------------------------


class Delayed(Deferred):
    """A response sent ``delay`` seconds later, from a timer of the event loop.

    Nothing waits in the meantime: the connection's other streams and every
    other connection are served as usual; a client that goes away cancels the
    timer (``abort``).
    """

    __slots__ = ("_delay", "_handle", "_sink")

    def __init__(self, resp: Response, delay: float) -> None:
        super().__init__(resp.status, resp.headers, resp.parts)
        self._delay = delay
        self._handle: asyncio.TimerHandle | None = None
        self._sink: Sink | None = None

    def start(self, sink: Sink) -> None:
        self._sink = sink
        self._handle = asyncio.get_running_loop().call_later(self._delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        sink, self._sink = self._sink, None
        if sink is None:
            return
        resp = Response(self.status, list(self.headers), self.parts)
        self.parts = []
        sink.head(resp)
        sink.end()

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._sink = None
        self.parts = []


def _error_body(req: Request, status: int) -> tuple[list[tuple[str, str]], bytes]:
    """The error document a delayed response carries (server.errorfile-prefix or built-in)."""
    prefix: str = req.conf.get("server.errorfile-prefix", "")
    if prefix:
        try:
            with open(f"{prefix}{status}.html", "rb") as f:
                return [("Content-Type", "text/html")], f.read(1 << 20)
        except OSError:
            pass
    return [("Content-Type", "text/html")], error_page(status)


# -- the module ---------------------------------------------------------------------------


class Auth(Plugin):
    name = NAME
    directives = (
        Directive("auth.backend", Type.STRING, Scope.REQUEST, "",
                  'where users and passwords are: "htpasswd", "htdigest" or "plain" '
                  "(mod_authn_file)", module=NAME, normalize=_backend_name),
        Directive("auth.require", Type.KVLIST, Scope.REQUEST, (),
                  "URL path prefix => ( entry keys ): who may enter there, and how (the "
                  "first matching prefix applies)", module=NAME, normalize=parse_require,
                  entry_keys=REQUIRE_KEYS),
    )
    feature_flags = (
        Directive("auth.delay-invalid-creds", Type.BOOL, Scope.SERVER, True,
                  "answer invalid credentials 1 s later, without holding up anything else "
                  "(the connection is closed after the answer either way)", module=NAME),
        Directive("auth.http-goaway-invalid-creds", Type.BOOL, Scope.SERVER, True,
                  "HTTP/2: send GOAWAY after a response to invalid credentials (a second "
                  "one on that connection closes it)", module=NAME),
    )

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        provided = {n for p in config.plugins for n in getattr(p, "auth_backends", ())}
        backends = config.assigned("auth.backend")
        for name, loc in backends:
            if name and name not in provided:
                diags.error(loc, f'auth.backend "{name}" needs mod_authn_file (add it to '
                            "server.modules)")
        requires = [(t, loc) for t, loc in config.assigned("auth.require") if t]
        only = {name for name, _ in backends}
        for table, loc in requires:
            if not any(only):
                diags.error(loc, 'auth.require: auth.backend is not set (use "htpasswd", '
                            '"htdigest" or "plain")')
            seen: list[str] = []
            for r in table:
                for earlier in seen:
                    if r.prefix.startswith(earlier):
                        diags.warn(loc, f'auth.require: "{r.prefix}" never matches: '
                                   f'"{earlier}" comes first and matches it (put longer '
                                   "prefixes first)")
                        break
                seen.append(r.prefix)
                if r.prefix and not r.prefix.startswith("/"):
                    diags.warn(loc, f'auth.require: "{r.prefix}" never matches: URL paths '
                               'start with "/"')
                if r.hosts:
                    diags.warn(loc, f'auth.require "{r.prefix}": "host=" rules are not '
                               "implemented (lighttpd: the same) and never match")
                if r.method == "digest" and only == {"htpasswd"}:
                    diags.error(loc, f'auth.require "{r.prefix}": "method" => "digest" '
                                'cannot work with auth.backend "htpasswd" (it holds one-way '
                                'hashes): use "htdigest" or "plain", or "basic"')

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self._backends: dict[str, Backend | None] = {}

    def _backend(self, name: str) -> Backend | None:
        """The backend called ``name`` (looked up once the plugins all exist)."""
        if name not in self._backends:
            found: Backend | None = None
            for p in self.rt.plugins:
                get = getattr(p, "auth_backend", None)
                if get is not None:
                    found = get(name)
                    if found is not None:
                        break
            self._backends[name] = found
        return self._backends[name]

    # -- the check ------------------------------------------------------------------------

    def uri_clean(self, req: Request) -> Response | None:
        table: tuple[Require, ...] = req.conf["auth.require"]
        if not table:
            return None
        path = req.path
        if req.conf["server.force-lowercase-filenames"]:
            path = path.lower()
            require = next((r for r in table if path.startswith(r.prefix.lower())), None)
        else:
            require = next((r for r in table if path.startswith(r.prefix)), None)
        if require is None:
            return None
        name: str = req.conf["auth.backend"]
        backend = self._backend(name) if name else None
        if backend is None:
            self._log(f"auth.backend not configured for {req.path}" if not name else
                      f'auth.backend "{name}" is not available for {req.path}')
            return Response(500)
        try:
            backend.ready(req)
            if require.method == "basic":
                return self._basic(req, require, backend)
            return self._digest(req, require, backend)
        except Unavailable as exc:
            self._log(f"{req.path}: {exc} -> 503")
            return Response(503)
        except Misconfigured as exc:
            self._log(f"{req.path}: {exc} -> 500")
            return Response(500)

    def _log(self, message: str) -> None:
        self.rt.log("mod_auth", message)

    def _granted(self, req: Request, user: bytes, auth_type: str) -> None:
        req.user = user.decode("utf-8", "surrogateescape")
        req.env["AUTH_TYPE"] = auth_type

    def _denied(self, req: Request, headers: list[tuple[str, str]]) -> Response:
        """Invalid credentials: 401, one second later (lighttpd's keep_alive = -1)."""
        req.keep_alive = False  # HTTP/1.1: Connection: close; HTTP/2: GOAWAY
        if not self.rt.features.get("auth.delay-invalid-creds", True):
            return Response(401, headers)
        extra, body = _error_body(req, 401)
        headers = headers + extra + [("Content-Length", str(len(body)))]
        return Delayed(Response(401, headers, [body]), DELAY)

    # -- Basic ----------------------------------------------------------------------------

    @staticmethod
    def _basic_challenge(require: Require) -> list[tuple[str, str]]:
        return [("WWW-Authenticate", f'Basic realm="{_quote(require.realm)}", '
                 'charset="UTF-8"')]

    def _basic(self, req: Request, require: Require, backend: Backend) -> Response | None:
        value = req.header("authorization")
        if value is None or value[:6].lower() != "basic ":
            return Response(401, self._basic_challenge(require))
        b64 = value[6:].strip()
        if len(b64) > BASIC_MAX:
            return Response(401, self._basic_challenge(require))
        try:
            raw = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if not raw:
            self._log(f"decoding base64-string failed {b64[:64]!r} -> 400")
            return Response(400)
        user, colon, password = raw.partition(b":")
        if not colon:
            self._log("Basic credentials without ':' -> 400")
            return Response(400)
        ok = backend.basic(req, require, user, password)
        if ok and not require.allows(user.decode("utf-8", "surrogateescape"),
                                     self._groups(req, require, backend, user)):
            self._log(f"user {_show(user)} is not allowed in {req.path} "
                      f"(require {_rules(require)}), IP: {req.remote_addr}")
            return self._denied(req, self._basic_challenge(require))
        if not ok:
            self._log(f"password doesn't match for {req.path} username: {_show(user)} "
                      f"IP: {req.remote_addr}")
            return self._denied(req, self._basic_challenge(require))
        self._granted(req, user, "Basic")
        return None

    @staticmethod
    def _groups(req: Request, require: Require, backend: Backend,
                user: bytes) -> frozenset[str]:
        return backend.groups(req, user) if require.groups else frozenset()

    # -- Digest ---------------------------------------------------------------------------

    def _digest_challenge(self, require: Require, stale: str = "") -> list[tuple[str, str]]:
        """One WWW-Authenticate per algorithm (only the client's when the nonce is stale)."""
        key = require.nonce_secret or _PROCESS_SECRET
        now = int(time.time())
        out: list[tuple[str, str]] = []
        for algorithm in (stale,) if stale else require.algorithms:
            value = (f'Digest realm="{_quote(require.realm)}", charset="UTF-8", '
                     f'algorithm={algorithm}, nonce="{make_nonce(key, now)}", qop="auth"')
            if require.userhash:
                value += ", userhash=true"
            if stale:
                value += ", stale=true"
            out.append(("WWW-Authenticate", value))
        return out

    def _digest(self, req: Request, require: Require, backend: Backend) -> Response | None:
        value = req.header("authorization")
        if value is None or value[:7].lower() != "digest ":
            return Response(401, self._digest_challenge(require))
        p = parse_params(value[7:])
        qop = p.get("qop")
        if not (("username" in p) != ("username*" in p) and "realm" in p and "nonce" in p
                and "uri" in p and "response" in p
                and (qop is None or ("nc" in p and "cnonce" in p))):
            self._log("digest: missing field -> 400")
            return Response(400)
        hashed = p.get("userhash", "").lower() == "true"
        if "username" in p:
            user = p["username"].encode("latin-1", "replace")
        else:
            ext = _ext_value(p["username*"]) if not hashed else None
            if ext is None:
                self._log('digest: invalid "username*" -> 400')
                return Response(400)
            user = ext
        if p["realm"] != require.realm:
            self._log("digest: realm mismatch")
            return Response(401, self._digest_challenge(require))
        name = p.get("algorithm", "MD5").upper()
        sess = name.endswith("-SESS")
        algorithm = name.removesuffix("-SESS")
        if algorithm not in require.algorithms:
            self._log(f"digest: algorithm {p.get('algorithm')!r} not offered")
            return Response(401, self._digest_challenge(require))
        if sess and "cnonce" not in p:
            self._log("digest: -sess without cnonce -> 400")
            return Response(400)
        response = p["response"]
        if len(response) != 2 * _HASH_SIZE[algorithm] or not _is_hex(response):
            self._log(f"digest: ({response[:80]!r}): invalid format -> 400")
            return Response(400)
        if qop is not None and qop.lower() != "auth":
            self._log(f"digest: qop={qop!r} not supported -> 400")
            return Response(400)
        uri = p["uri"].encode("latin-1", "replace")
        if uri != req.target.encode("utf-8", "surrogateescape"):
            self._log(f"digest: auth failed: uri mismatch ({req.target} != {p['uri']}), "
                      f"IP: {req.remote_addr} -> 400")
            return Response(400)
        nonce = p["nonce"]
        state = check_nonce(require.nonce_secret or _PROCESS_SECRET, nonce, int(time.time()))
        if state == NONCE_STALE:
            return Response(401, self._digest_challenge(require, stale=algorithm))
        found = backend.digest(req, algorithm, user, require.realm.encode("utf-8"), hashed)
        if found is None:
            self._log(f"digest: auth failed for {_show(user)}: unknown user, "
                      f"IP: {req.remote_addr}")
            return self._denied(req, self._digest_challenge(require))
        user, stored = found
        expect = response_digest(
            algorithm, stored, req.method, uri, nonce.encode("latin-1", "replace"),
            p.get("nc", "").encode("latin-1", "replace"),
            p.get("cnonce", "").encode("latin-1", "replace"),
            (qop or "").encode("latin-1", "replace"), sess)
        if not compare_digest(expect.encode("ascii"), response.lower().encode("ascii")):
            self._log(f"digest: auth failed for {_show(user)}: wrong password, "
                      f"IP: {req.remote_addr}")
            return self._denied(req, self._digest_challenge(require))
        if state == NONCE_FOREIGN:
            # right password, but a nonce emberd did not make (an old process's):
            # the client retries with a fresh one without asking the user
            return Response(401, self._digest_challenge(require, stale=algorithm))
        if not require.allows(user.decode("utf-8", "surrogateescape"),
                              self._groups(req, require, backend, user)):
            self._log(f"user {_show(user)} is not allowed in {req.path} "
                      f"(require {_rules(require)})")
            return Response(401, self._digest_challenge(require))
        self._granted(req, user, "Digest")
        return None


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _show(user: bytes) -> str:
    return repr(user.decode("utf-8", "replace"))[1:-1][:128]


def _rules(require: Require) -> str:
    parts = [f"user={u}" for u in sorted(require.users)]
    parts += [f"group={g}" for g in sorted(require.groups)]
    return "|".join(parts) or "nobody"


def user_file_hint(backend: str, path: str) -> str:
    """The command that creates a missing user file (named in the error log)."""
    if backend == "htdigest":
        return f"emberd-passwd --digest REALM {path} USER"
    if backend == "plain":
        return f"emberd-passwd --plain {path} USER"
    return f"emberd-passwd {path} USER"


PLUGIN = Auth

"""The core directive table: lighttpd's ``server.*`` keys and emberd's own.

Defaults and units are lighttpd 1.4.85's (``src/configfile.c``,
``src/server.c``, ``src/network.c``) unless the doc line says otherwise.
Knobs lighttpd does not have live under ``emberd.*`` so a lighttpd user sees
at a glance what is new.  Modules register their own keys in their files.
"""

from __future__ import annotations

import os
import resource
from typing import Any

from .. import __version__
from ..mimetypes import DEFAULT_TYPES, MimeTable
from .schema import Derived, Directive, Getter, Scope, Type, ValueProblem

SERVER, SOCKET, REQUEST = Scope.SERVER, Scope.SOCKET, Scope.REQUEST
BOOL, SHORT, INT, STRING = Type.BOOL, Type.SHORT, Type.INT, Type.STRING
LIST, KVSTRING, KVANY = Type.LIST, Type.KVSTRING, Type.KVANY

KIB = 1024
MIB = 1024 * 1024


def chunk_size(value: int) -> int:
    """lighttpd's chunk size rule: 0 means 8192, else a power of two >= 1024."""
    if value == 0:
        return 8192
    size = 1024
    while size < value:
        size <<= 1
    return size


def _default_max_fds(_: Getter) -> int:
    # lighttpd raises the soft limit to 4096 when the hard limit allows it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    if soft < 4096 and (hard == resource.RLIM_INFINITY or hard >= 4096):
        return 4096
    return max(32, min(soft, 4096))


def _default_max_conns(get: Getter) -> int:
    # each HTTP/2 connection may hold several streams, each with backend and
    # temp-file descriptors: lighttpd keeps connections to 1/10 of the fds.
    factor = 10 if get("server.feature-flags")["server.h2proto"] else 3
    return min(65535, max(1, int(get("server.max-fds")) // factor))


def _default_top_pad(get: Getter) -> int:
    return 128 * KIB if get("server.max-connections") <= 16 else 512 * KIB


def _default_upload_dirs(_: Getter) -> tuple[str, ...]:
    return (os.environ.get("TMPDIR") or "/var/tmp",)


def _default_port(get: Getter) -> int:
    try:
        return 443 if get("ssl.engine") else 80
    except KeyError:  # a build without TLS has no ssl.engine
        return 80


def _mime_table(table: dict[str, str]) -> MimeTable:
    # lighttpd rewrites the obsolete application/javascript to text/javascript
    if table.get(".js") == "application/javascript":
        table = {**table, ".js": "text/javascript"}
    return MimeTable(table)


def _d(key: str, type_: Type, scope: Scope, default: Any, doc: str, **kw: Any) -> Directive:
    return Directive(key, type_, scope, default, doc, **kw)


FEATURE_FLAGS: tuple[Directive, ...] = (
    _d("server.h2proto", BOOL, SERVER, True,
       "HTTP/2 (prior knowledge on cleartext, ALPN h2 with TLS); disable to serve HTTP/1.x only"),
    _d("server.h2c", BOOL, SERVER, False,
       "accept the deprecated 'Upgrade: h2c' from HTTP/1.1 (off since lighttpd 1.4.83)"),
    _d("server.absolute-dir-redirect", BOOL, SERVER, False,
       "send an absolute URL (scheme and host) in the Location of directory redirects"),
    _d("server.graceful-shutdown-timeout", INT, SERVER, 8,
       "how long a graceful shutdown or restart waits for requests in flight "
       "(0 waits for ever)", unit="s", max=86400),
    _d("server.errorlog-high-precision", BOOL, SERVER, False,
       "timestamps with microseconds in the error log"),
)

_PARSEOPTS: tuple[Directive, ...] = (
    _d("header-strict", BOOL, SERVER, True,
       "reject request header lines with control characters"),
    _d("host-strict", BOOL, SERVER, True,
       "reject Host values that are not valid host names or addresses"),
    _d("host-normalize", BOOL, SERVER, False, "normalise the Host value"),
    _d("method-get-body", BOOL, SERVER, False, "allow a body with GET requests"),
    _d("url-normalize", BOOL, SERVER, True, "normalise the request target at all"),
    _d("url-normalize-unreserved", BOOL, SERVER, True,
       "decode percent-encoded unreserved characters"),
    _d("url-normalize-required", BOOL, SERVER, False,
       "decode all percent-encoding that is not required"),
    _d("url-ctrls-reject", BOOL, SERVER, True, "reject control characters in the target"),
    _d("url-invalid-utf8-reject", BOOL, SERVER, True,
       "reject targets that decode to invalid UTF-8"),
    _d("url-path-2f-decode", BOOL, SERVER, True, "decode %2F in the path"),
    _d("url-path-2f-reject", BOOL, SERVER, False, "reject %2F in the path"),
    _d("url-path-backslash-trans", BOOL, SERVER, False, "turn '\\' into '/' in the path"),
    _d("url-path-dotseg-remove", BOOL, SERVER, True,
       "resolve '.' and '..' segments in the path"),
    _d("url-path-dotseg-reject", BOOL, SERVER, False,
       "reject paths with '.' or '..' segments"),
    _d("url-query-20-plus", BOOL, SERVER, False, "turn %20 into '+' in the query string"),
)

CORE: tuple[Directive, ...] = (
    # -- process and modules ------------------------------------------------
    _d("server.modules", LIST, SERVER, (),
       "modules to load, in order (emberd -V lists the ones in this build)", restart=True),
    _d("server.compat-module-load", BOOL, SERVER, True,
       "add mod_indexfile, mod_dirlisting and mod_staticfile as lighttpd does"),
    _d("server.feature-flags", KVANY, SERVER, {},
       "feature switches and the graceful-shutdown timeout", subkeys=FEATURE_FLAGS),
    _d("server.pid-file", STRING, SERVER, "", "write the process id to this file",
       restart=True),
    _d("server.username", STRING, SERVER, "",
       "user to switch to after the sockets are bound", restart=True),
    _d("server.groupname", STRING, SERVER, "",
       "group to switch to after the sockets are bound", restart=True),
    _d("server.chroot", STRING, SERVER, "", "directory to chroot into after start-up",
       restart=True),
    _d("server.core-files", BOOL, SERVER, False, "allow core dumps", restart=True),
    _d("server.event-handler", STRING, SERVER, "linux-sysepoll",
       "the event interface (emberd maps these to Python's selectors)",
       choices=("linux-sysepoll", "epoll", "poll", "select"), restart=True),
    _d("server.network-backend", STRING, SERVER, "sendfile",
       "how static files are written: sendfile(2) for plain HTTP/1.1, or read into "
       "pooled chunks", choices=("sendfile", "linux-sendfile", "writev", "write")),
    _d("server.max-worker", SHORT, SERVER, 0,
       "worker processes; emberd always runs one process (0)", max=0),
    _d("server.stat-cache-engine", STRING, SERVER, "simple",
       "cache file metadata for 2 s (simple) or not at all",
       choices=("simple", "disable", "none")),
    _d("emberd.stat-cache-max-entries", INT, SERVER, 1024,
       "files the stat cache remembers at most; the oldest go first", unit="entries",
       max=1 << 20),
    _d("server.errorlog-use-syslog", BOOL, SERVER, False, "send the error log to syslog"),
    _d("server.syslog-facility", STRING, SERVER, "daemon", "syslog facility of the error log"),
    # -- listening ----------------------------------------------------------
    _d("server.bind", STRING, SERVER, "",
       "address or unix socket path to listen on (empty: all IPv4 addresses)", restart=True),
    _d("server.port", SHORT, SERVER, Derived(_default_port, "80 (443 with ssl.engine)"),
       "TCP port to listen on", restart=True),
    _d("server.systemd-socket-activation", BOOL, SERVER, False,
       "use the sockets passed by systemd (LISTEN_FDS) instead of binding", restart=True),
    _d("server.listen-backlog", INT, SOCKET, 1024, "listen(2) backlog", unit="connections",
       min=1, max=65535, restart=True),
    _d("server.socket-perms", STRING, SOCKET, "",
       "permissions of a unix listening socket, in octal (e.g. \"0660\")", restart=True),
    _d("server.use-ipv6", BOOL, SOCKET, False,
       "listen on IPv6 when server.bind is empty", restart=True),
    _d("server.set-v6only", BOOL, SOCKET, True,
       "IPv6 sockets accept IPv6 only (IPV6_V6ONLY)", restart=True),
    _d("server.defer-accept", BOOL, SOCKET, False,
       "wake up only when the client has sent data (TCP_DEFER_ACCEPT)", restart=True),
    # -- limits -------------------------------------------------------------
    _d("server.max-fds", INT, SERVER, Derived(_default_max_fds, "4096 if the hard limit "
                                               "allows, else the soft limit"),
       "file descriptor limit set at start", unit="fds", min=32, max=1048576, restart=True),
    _d("server.max-connections", SHORT, SERVER,
       Derived(_default_max_conns, "server.max-fds / 10 with HTTP/2 (/ 3 without)"),
       "connections served at once; emberd stops accepting while at the limit",
       unit="connections", min=1),
    _d("server.max-request-field-size", SHORT, SERVER, 8192,
       "size of the whole request head (request line and headers); 431 beyond",
       unit="bytes", min=256),
    _d("emberd.max-request-target-size", INT, SERVER, 8192,
       "length of the request target (path and query); 414 beyond", unit="bytes",
       min=64, max=65535),
    _d("server.max-request-size", INT, REQUEST, 0,
       "largest request body; 413 beyond (0: no limit)", unit="KiB"),
    _d("server.max-keep-alive-requests", SHORT, REQUEST, 1000,
       "requests on one HTTP/1.1 connection before it is closed (0: no keep-alive)"),
    _d("server.max-keep-alive-idle", SHORT, REQUEST, 5,
       "idle time of a kept-alive connection before it is closed", unit="s"),
    _d("server.max-read-idle", SHORT, REQUEST, 60,
       "time a client may take to send the next part of a request", unit="s"),
    _d("server.max-write-idle", SHORT, REQUEST, 360,
       "time a client may take to accept the next part of a response", unit="s"),
    # -- buffers and bodies (memory) ----------------------------------------
    _d("server.chunkqueue-chunk-sz", INT, SERVER, 8192,
       "size of the pooled buffers all request and response bytes live in; rounded up "
       "to a power of two, at least 1024 (0: 8192)", unit="bytes", max=1 << 30,
       normalize=chunk_size, restart=True),
    _d("server.upload-dirs", LIST, SERVER,
       Derived(_default_upload_dirs, '( env TMPDIR or "/var/tmp" )'),
       "directories for request bodies too large for memory, tried in order"),
    _d("server.upload-temp-file-size", INT, SERVER, MIB,
       "size at which a body's temp file is closed and a new one started (0: default)",
       unit="bytes", normalize=lambda v: v or MIB),
    _d("server.stream-request-body", SHORT, REQUEST, 0,
       "0: read the whole body before the backend sees it; 1: stream it, buffering "
       "what the backend has not taken; 2: stream it with minimal buffering", max=2),
    _d("server.stream-response-body", SHORT, REQUEST, 0,
       "0: buffer the whole backend response; 1: stream it; 2: stream it with "
       "minimal buffering", max=2),
    # -- request parsing ----------------------------------------------------
    _d("server.http-parseopts", KVSTRING, SERVER, {},
       "strictness of request parsing and URL normalisation", subkeys=_PARSEOPTS),
    _d("server.protocol-http11", BOOL, REQUEST, True,
       "answer HTTP/1.1 requests as HTTP/1.1 (disable: as HTTP/1.0)"),
    # -- responses ----------------------------------------------------------
    _d("server.document-root", STRING, REQUEST, "", "directory that URLs map to (required)"),
    _d("server.name", STRING, REQUEST, "",
       "host name used in redirects when the request has none"),
    _d("server.tag", STRING, REQUEST, f"emberd/{__version__}",
       'value of the Server header ("" omits the header)'),
    _d("server.errorfile-prefix", STRING, REQUEST, "",
       "files <prefix><status>.html are sent as error pages"),
    _d("server.error-handler", STRING, REQUEST, "", "URL that serves error responses"),
    _d("server.error-handler-404", STRING, REQUEST, "", "URL that serves 404 responses"),
    _d("server.error-intercept", BOOL, REQUEST, False,
       "replace backend error responses with the error handler"),
    _d("server.force-lowercase-filenames", BOOL, REQUEST, False,
       "lowercase the path before mapping it to a file"),
    _d("server.follow-symlink", BOOL, REQUEST, True,
       "serve files through symbolic links (disable: 403 for any link in the path)"),
    _d("server.range-requests", BOOL, REQUEST, True, "honour Range requests for static files"),
    _d("mimetype.assign", KVSTRING, REQUEST, DEFAULT_TYPES,
       "file suffix => Content-Type; the longest matching suffix wins", normalize=_mime_table),
    _d("mimetype.use-xattr", BOOL, REQUEST, False,
       "take the Content-Type from the file's extended attribute"),
    _d("mimetype.xattr-name", STRING, SERVER, "Content-Type",
       "extended attribute (in the user namespace) holding the Content-Type"),
    _d("etag.use-inode", BOOL, REQUEST, True, "the inode number goes into ETags"),
    _d("etag.use-mtime", BOOL, REQUEST, True, "the modification time goes into ETags"),
    _d("etag.use-size", BOOL, REQUEST, True, "the file size goes into ETags"),
    # -- logging ------------------------------------------------------------
    _d("server.errorlog", STRING, REQUEST, "",
       'error log file, or "|command" to pipe it ("": standard error)'),
    _d("server.breakagelog", STRING, REQUEST, "",
       "file receiving backends' standard error (\"\": the error log)"),
    _d("debug.log-request-header-on-error", BOOL, SERVER, False,
       "log the request head when a request is rejected"),
    _d("debug.log-request-header", BOOL, REQUEST, False, "log every request head"),
    _d("debug.log-response-header", BOOL, REQUEST, False, "log every response head"),
    _d("debug.log-request-handling", BOOL, REQUEST, False,
       "log how each request is handled"),
    _d("debug.log-file-not-found", BOOL, REQUEST, False, "log requests for missing files"),
    _d("debug.log-condition-handling", BOOL, REQUEST, False,
       "log how conditions are evaluated"),
    _d("debug.log-timeouts", BOOL, REQUEST, False, "log connections closed by a timeout"),
    _d("debug.log-state-handling", BOOL, REQUEST, False, "log connection state changes"),
    # -- HTTP/2 -------------------------------------------------------------
    _d("h2.max-concurrent-streams", INT, SERVER, 8,
       "streams a client may have open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS)",
       unit="streams", min=1, max=256),
    _d("h2.initial-window-size", INT, SERVER, 65536,
       "bytes a client may send on a stream before emberd acknowledges them "
       "(SETTINGS_INITIAL_WINDOW_SIZE)", unit="bytes", min=1024, max=2**31 - 1),
    _d("h2.connection-window-size", INT, SERVER, 262144,
       "bytes a client may send on a connection before emberd acknowledges them "
       "(raised with a WINDOW_UPDATE at the start)", unit="bytes", min=65535,
       max=2**31 - 1),
    _d("h2.max-header-list-size", INT, SERVER, 65535,
       "decoded request header bytes announced as SETTINGS_MAX_HEADER_LIST_SIZE; "
       "server.max-request-field-size still answers 431 beyond its own limit",
       unit="bytes", min=1024, max=16 * MIB),
    _d("h2.max-frame-size", INT, SERVER, 16384,
       "largest frame payload emberd accepts (SETTINGS_MAX_FRAME_SIZE)", unit="bytes",
       min=16384, max=16777215),
    _d("h2.max-header-block-size", INT, SERVER, 65536,
       "raw bytes of one HEADERS frame and its CONTINUATION frames; a larger block "
       "ends the connection (lighttpd: 64 KiB; the h2 library alone would take 1 MiB)",
       unit="bytes", min=4096, max=16 * MIB),
    _d("h2.max-requests-per-connection", INT, SERVER, 0,
       "streams after which emberd sends a graceful GOAWAY so the client reconnects "
       "(0: no limit; server.max-keep-alive-requests applies to HTTP/1.x only)",
       unit="requests"),
    _d("h2.max-closed-streams", INT, SERVER, 100,
       "closed streams the h2 library remembers per connection (to tell late frames "
       "from protocol errors); it would keep 65536", unit="streams", min=8, max=65536),
    # -- emberd memory knobs ------------------------------------------------
    _d("emberd.maintenance-interval", INT, SERVER, 64,
       "period of the maintenance tick that releases free slabs, trims the request "
       "pool and calls malloc_trim (lighttpd: 64 s)", unit="s", min=1, max=3600),
    _d("emberd.chunk-slab-size", INT, SERVER, 64 * KIB,
       "size of each mmap'd slab the chunk pool carves chunks from; a slab is "
       "returned to the system when none of its chunks is in use", unit="bytes",
       min=4 * KIB, max=64 * MIB, restart=True),
    _d("emberd.chunk-reserve", INT, SERVER, 1,
       "free slabs kept mapped at the maintenance tick for the next burst",
       unit="slabs", max=65535),
    _d("emberd.body-memory-max", INT, REQUEST, 64 * KIB,
       "request body bytes kept in chunks; the rest of a body goes to a temp file in "
       "server.upload-dirs (lighttpd: 64 KiB)", unit="bytes", max=64 * MIB),
    _d("emberd.request-pool-size", INT, SERVER,
       Derived(lambda get: get("server.max-connections"), "server.max-connections"),
       "request objects kept for reuse by HTTP/2 streams", unit="requests", max=65535),
    _d("emberd.malloc-arena-max", INT, SERVER, 2,
       "mallopt(M_ARENA_MAX) at start on glibc (0: leave glibc's default)", unit="arenas",
       max=64, restart=True),
    _d("emberd.malloc-trim", BOOL, SERVER, True,
       "call malloc_trim() at each maintenance tick on glibc"),
    _d("emberd.malloc-top-pad", INT, SERVER,
       Derived(_default_top_pad, "524288 (131072 when server.max-connections <= 16)"),
       "free memory malloc_trim() leaves at the top of the heap", unit="bytes",
       max=64 * MIB),
    _d("emberd.memory-stats-interval", INT, SERVER, 0,
       "log one line of memory statistics every N seconds (0: off)", unit="s", max=86400),
)


# -- TLS (ssl.*) ---------------------------------------------------------------
# lighttpd's mod_openssl/mod_mbedtls keys, and emberd's ssl.backend and
# ssl.handshake-timeout.  They exist only in builds that contain emberd.tls; a
# build without TLS reports any ssl.* key as "not part of this build".

def _tls_check(check: str) -> Any:
    """A normalizer calling emberd.tls.<check> (pure Python; no TLS library is loaded)."""

    def normalize(value: Any) -> Any:
        from ..tls import ciphers, settings

        fn = {"ciphers": ciphers.check, "version": settings.protocol_version}[check]
        if check == "ciphers" and value == "":
            return value
        try:
            return fn(value)
        except ValueError as exc:
            raise ValueProblem(str(exc)) from None

    return normalize


def _always(what: str) -> Any:
    def normalize(value: bool) -> bool:
        if not value:
            raise ValueProblem(f"emberd always {what}; this cannot be disabled")
        return value

    return normalize


_SSL_CONF_CMD: tuple[Directive, ...] = (
    _d("MinProtocol", STRING, SOCKET, "TLSv1.2",
       'oldest protocol accepted: "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" ("None": the '
       "library's oldest); Mbed TLS 2.28 has no TLS 1.3", normalize=_tls_check("version")),
    _d("MaxProtocol", STRING, SOCKET, "None",
       'newest protocol offered ("None": the newest the library has)',
       normalize=_tls_check("version")),
    _d("CipherString", STRING, SOCKET, "",
       "TLS 1.2 cipher suites; replaces ssl.cipher-list", normalize=_tls_check("ciphers")),
)

TLS: tuple[Directive, ...] = (
    _d("ssl.engine", BOOL, SOCKET, False,
       "serve HTTPS on this listener (server.port then defaults to 443)", restart=True),
    _d("ssl.backend", STRING, SERVER, "mbedtls",
       "TLS library: Mbed TLS through python-mbedtls, or OpenSSL through Python's ssl "
       "module (loads libssl; has TLS 1.3)", choices=("mbedtls", "openssl")),
    _d("ssl.pemfile", STRING, REQUEST, "",
       "PEM file: the certificate, its chain (each certificate followed by its issuer) "
       "and, unless ssl.privkey is set, the private key; global, in $SERVER[\"socket\"], "
       "or in $HTTP[\"host\"] for SNI"),
    _d("ssl.privkey", STRING, REQUEST, "", "PEM file with the private key (unencrypted)"),
    _d("ssl.ca-file", STRING, REQUEST, "",
       "PEM file with the CAs that issue client certificates (ssl.verifyclient.*)"),
    _d("ssl.verifyclient.activate", BOOL, REQUEST, False,
       "ask clients for a certificate, checked against ssl.ca-file"),
    _d("ssl.verifyclient.enforce", BOOL, REQUEST, True,
       "refuse the handshake without a valid client certificate (disable: requests go "
       "on, SSL_CLIENT_VERIFY tells backends)"),
    _d("ssl.verifyclient.depth", SHORT, REQUEST, 9,
       "issuer certificates allowed above a client certificate", max=255),
    _d("ssl.verifyclient.username", STRING, REQUEST, "",
       'client certificate variable that becomes REMOTE_USER, e.g. "SSL_CLIENT_S_DN_CN"'),
    _d("ssl.verifyclient.exportcert", BOOL, REQUEST, False,
       "pass the client certificate to backends as SSL_CLIENT_CERT (PEM)"),
    _d("ssl.cipher-list", STRING, SOCKET, "EECDH+AESGCM:CHACHA20:!PSK:!DHE",
       "TLS 1.2 cipher suites in OpenSSL's syntax (the subset in "
       "porting-from-lighttpd.md); unknown names are errors",
       normalize=_tls_check("ciphers")),
    _d("ssl.openssl.ssl-conf-cmd", KVSTRING, SOCKET, {},
       "OpenSSL configuration commands; emberd reads the keys below",
       subkeys=_SSL_CONF_CMD),
    _d("ssl.honor-cipher-order", BOOL, SOCKET, True,
       "choose the suite in the server's order (always on in emberd)",
       normalize=_always("prefers the server's cipher order")),
    _d("ssl.disable-client-renegotiation", BOOL, SOCKET, True,
       "refuse client-initiated renegotiation (always on in emberd)",
       normalize=_always("refuses renegotiation")),
    _d("ssl.handshake-timeout", INT, SOCKET, 10,
       "time a client may take for the TLS handshake, from the connection's start (emberd; "
       "lighttpd applies server.max-read-idle)", unit="s", min=1, max=3600),
)


def _tls_in_build() -> bool:
    from .catalog import TLS as TLS_COMPONENT

    return TLS_COMPONENT.present()


if _tls_in_build():
    CORE = CORE + TLS

"""CGI/1.1 on both sides of a backend: the environment sent, the head read back.

``environment()`` builds the variables lighttpd sends to FastCGI backends
(``http_cgi_headers()``): REQUEST_URI, SCRIPT_NAME and PATH_INFO after the
prefix split, SCRIPT_FILENAME, DOCUMENT_ROOT, the SERVER_* and REMOTE_*
variables, HTTPS, REDIRECT_STATUS for PHP's force-redirect, and every request
header as HTTP_* -- except ``Proxy`` (httpoxy) and names that would clash
with another header once '-' and '_' are folded together.

``HeadParser`` reads a backend's response head: header lines up to an empty
line, ``Status:`` for the status, ``Location:`` alone meaning 302, a bounded
size.  Anything malformed is a ``BadHead`` (answered with 502).
"""

from __future__ import annotations

from dataclasses import dataclass

from .message import Request


@dataclass(frozen=True, slots=True)
class CgiOptions:
    docroot: str = ""  # the host's "docroot": SCRIPT_FILENAME for a remote backend
    strip_request_uri: str = ""
    break_scriptfilename_for_php: bool = False
    authorizer: bool = False
    server_tag: str = ""


def _varname(header: str) -> str:
    return "HTTP_" + "".join(c.upper() if c.isalnum() else "_" for c in header)


def environment(req: Request, script_name: str, path_info: str,
                opts: CgiOptions) -> list[tuple[str, str]]:
    """The CGI variables for ``req``, in lighttpd's order."""
    env: list[tuple[str, str]] = []
    add = env.append
    if not opts.authorizer:
        length = req.content_length if req.content_length is not None else \
            req.body.size if req.body is not None else 0
        add(("CONTENT_LENGTH", str(length)))
    add(("QUERY_STRING", req.query or ""))
    uri = req.target
    strip = opts.strip_request_uri.rstrip("/")
    if strip and uri.startswith(strip + "/"):
        uri = uri[len(strip):]
    add(("REQUEST_URI", uri))
    if req.error_status == 0:
        add(("REDIRECT_STATUS", "200"))
    ph = req.physical
    if not opts.authorizer:
        add(("SCRIPT_NAME", script_name))
        if path_info:
            add(("PATH_INFO", path_info))
            base = opts.docroot or ph.doc_root
            add(("PATH_TRANSLATED", base.rstrip("/") + path_info))
    if opts.docroot:
        add(("SCRIPT_FILENAME", opts.docroot.rstrip("/") + script_name))
        add(("DOCUMENT_ROOT", opts.docroot))
    else:
        if opts.break_scriptfilename_for_php:
            add(("SCRIPT_FILENAME", ph.path + path_info))
        else:
            add(("SCRIPT_FILENAME", ph.path))
        add(("DOCUMENT_ROOT", ph.doc_root))
    add(("REQUEST_METHOD", req.method))
    add(("SERVER_PROTOCOL", req.protocol))
    add(("SERVER_SOFTWARE", opts.server_tag))
    add(("GATEWAY_INTERFACE", "CGI/1.1"))
    add(("REQUEST_SCHEME", req.scheme))
    if req.scheme == "https":
        add(("HTTPS", "on"))
    add(("SERVER_PORT", str(req.local_port)))
    add(("SERVER_ADDR", req.local_addr))
    name = req.conf.get("server.name") or req.authority
    name = name[:name.find("]") + 1] if name.startswith("[") else name.partition(":")[0]
    add(("SERVER_NAME", name or req.local_addr))
    add(("REMOTE_ADDR", req.remote_addr))
    add(("REMOTE_PORT", str(req.remote_port)))
    if req.user:
        add(("REMOTE_USER", req.user))
        add(("AUTH_TYPE", req.env.get("AUTH_TYPE", "Basic")))
    headers: dict[str, str] = {}
    for k, v in req.headers:
        if not v:
            continue
        if k == "content-type":
            var = "CONTENT_TYPE"
        elif k == "proxy":
            continue  # httpoxy: backends read HTTP_PROXY as their proxy
        else:
            var = _varname(k)
            if "_" in k and any(_varname(o) == var and o != k for o, _ in req.headers):
                continue  # "x_a" would pose as "x-a": drop the ambiguous one
        headers[var] = f"{headers[var]}, {v}" if var in headers else v
    env.extend(headers.items())
    for k, v in req.env.items():
        if k != "AUTH_TYPE":
            add((k, v))
    return env


class BadHead(Exception):
    """The backend's response head is not valid CGI output."""


class HeadParser:
    """Collects a CGI response head; ``feed`` returns the body bytes after it, once complete."""

    __slots__ = ("_buf", "done", "headers", "max_size", "status")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self.done = False
        self.status = 200
        self.headers: list[tuple[str, str]] = []

    def started(self) -> bool:
        """Part of a head has arrived."""
        return self.done or bool(self._buf)

    def feed(self, data: bytes) -> bytes | None:
        """Body bytes that followed the head (None while the head is incomplete)."""
        buf = self._buf
        buf += data
        end = buf.find(b"\r\n\r\n")
        sep = 4
        lf = buf.find(b"\n\n")
        if lf >= 0 and (end < 0 or lf < end):
            end, sep = lf, 2
        if end < 0:
            if len(buf) > self.max_size:
                raise BadHead(f"response head larger than {self.max_size} bytes")
            return None
        if end > self.max_size:
            raise BadHead(f"response head larger than {self.max_size} bytes")
        head = bytes(buf[:end]).decode("latin-1")
        rest = bytes(buf[end + sep :])
        self._buf = bytearray()
        self._parse(head)
        self.done = True
        return rest

    def _parse(self, head: str) -> None:
        status: int | None = None
        location = False
        for line in head.replace("\r\n", "\n").split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                raise BadHead("folded header line")
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or not all(
                    33 <= ord(c) < 127 for c in name):
                raise BadHead(f"malformed header line {line[:60]!r}")
            value = value.strip()
            low = name.lower()
            if low == "status":
                code = value[:3]
                if not (code.isdigit() and 100 <= int(code) <= 999) or (
                        len(value) > 3 and value[3] != " "):
                    raise BadHead(f"malformed Status: {value[:40]!r}")
                status = int(code)
                continue
            if low == "location":
                location = True
            self.headers.append((name, value))
        if status is None:
            status = 302 if location else 200
        self.status = status

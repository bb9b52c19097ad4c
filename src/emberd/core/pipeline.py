"""The request path: from a parsed request to a response, for every protocol.

Theory of operation (lighttpd's ``http_response_prepare()``):

1. ``prepare``: the target is decoded and simplified, the host checked, and
   the settings that apply to this request are worked out from the
   conditions (``$HTTP["url"]`` sees the clean path).
2. ``uri_raw`` and ``uri_clean`` hooks (redirects, rewrites, access rules);
   a module may claim the request here by setting ``req.handler``
   (a FastCGI prefix with ``check-local`` disabled).
3. The path is mapped under ``server.document-root``; ``physical`` hooks
   (aliases) may change where it points.
4. The physical path is checked: a directory without its trailing slash is
   redirected (301), a missing file is a 404 -- unless a file is found
   further up the path, whose remainder then becomes PATH_INFO.
5. ``req.handler``, or else the ``subrequest`` hooks, produce the response
   (index files, static files, backends).  If none does: OPTIONS gets the allowed methods, methods
   lighttpd does not serve files for get 501, the rest 403.
6. ``finish``: error documents for 4xx/5xx (``server.errorfile-prefix``,
   ``server.error-handler``), ``response_start`` hooks, bodies removed
   where the status has none.

Nothing here knows about sockets or framing; HTTP/1.1 and HTTP/2 call it
with a Request and write out what comes back.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from ..addr import check_host, normalize_host
from ..http.message import FilePart, OpenFile, Request, Response
from ..http.status import error_page
from ..http.target import BadTarget, parse_target, quote_path
from .runtime import Runtime

ALLOW = "OPTIONS, GET, HEAD, POST"
_FILE_METHODS = frozenset(("GET", "HEAD", "POST", "QUERY"))
# status codes whose responses carry no body
_NO_BODY = frozenset((204, 205, 304))


def error(status: int, headers: list[tuple[str, str]] | None = None) -> Response:
    """An error response; its document is filled in by ``finish``."""
    return Response(status, headers)


def prepare(rt: Runtime, req: Request) -> Response | None:
    """Decode the target, check the host, pick the settings; a Response if it fails."""
    req.conf = rt.config.values  # until the conditions can be evaluated
    try:
        target = parse_target(req.target, rt.parseopts)
    except BadTarget as exc:
        rt.log("request", f"{exc} -> {exc.status}: {req.target!r}")
        return error(exc.status)
    req.path = target.path
    req.query = target.query
    host = target.authority or req.header("host") or ""
    if host:
        opts = rt.parseopts
        scheme_port = 443 if req.scheme == "https" else 80
        norm = (check_host(host) if opts["host-strict"] else
                normalize_host(host) if opts["host-normalize"] else host.lower())
        if norm is None:
            rt.log("request", f"invalid Host {host!r} -> 400")
            return error(400)
        if norm.endswith(f":{scheme_port}"):
            norm = norm[: -len(f":{scheme_port}")]
        req.authority = norm
    req.conf, req.match = rt.config.for_request(req)
    return None


def _run(hooks: list[Callable[[Request], Response | None]], req: Request) -> Response | None:
    for hook in hooks:
        resp = hook(req)
        if resp is not None:
            return resp
    return None


def redirect_to_directory(req: Request, absolute: bool) -> Response:
    location = quote_path(req.path) + "/"
    if req.query is not None:
        location += "?" + req.query
    if absolute:
        host = req.authority or req.conf["server.name"] or req.local_addr
        location = f"{req.scheme}://{host}{location}"
    return Response(301, [("Location", location)])


def _physical_check(rt: Runtime, req: Request) -> Response | None:
    """lighttpd's http_response_physical_path_check(): 301, 404, 403 or PATH_INFO."""
    ph = req.physical
    conf = req.conf
    try:
        st = rt.statcache.stat(ph.path)
    except OSError as exc:
        if exc.errno == errno.EACCES:
            return error(403)
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG):
            return error(500)
        if (exc.errno == errno.ENOTDIR or not ph.path.endswith("/")) and _path_info(rt, req):
            return None
        if conf["debug.log-file-not-found"]:
            rt.log("request", f"file not found: {req.path} -> {ph.path}")
        return error(404)
    if stat.S_ISDIR(st.st_mode):
        if not req.path.endswith("/"):
            return redirect_to_directory(req, rt.features["server.absolute-dir-redirect"])
    elif ph.path.endswith("/"):
        return error(404)  # a file asked for as a directory
    return None


def _path_info(rt: Runtime, req: Request) -> bool:
    """Find a regular file further up the path; the rest becomes PATH_INFO."""
    ph = req.physical
    root = ph.doc_root.rstrip("/")
    path = ph.path
    while True:
        cut = path.rfind("/")
        if cut <= len(root):
            return False
        path = path[:cut]
        try:
            st = rt.statcache.stat(path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            return False
        ph.path_info = ph.path[len(path):]
        ph.path = path
        if req.path.endswith(ph.path_info):
            ph.rel_path = req.path[: len(req.path) - len(ph.path_info)]
        return True


def route(rt: Runtime, req: Request) -> Response:
    """Steps 2-5: the hooks and the file system decide the response."""
    hooks = rt.hooks
    if req.path == "*":
        if req.method == "OPTIONS":
            return Response(200, [("Allow", ALLOW)])
        return error(400)
    resp = _run(hooks["uri_raw"], req) or _run(hooks["uri_clean"], req)
    if resp is not None:
        return resp
    conf = req.conf
    ph = req.physical
    ph.doc_root = conf["server.document-root"]
    ph.rel_path = req.path.lower() if conf["server.force-lowercase-filenames"] else req.path
    ph.path = ph.doc_root.rstrip("/") + ph.rel_path
    resp = _run(hooks["physical"], req)
    if resp is not None:
        return resp
    if req.handler is not None:  # claimed by its URL: the file system is not consulted
        return req.handler(req)
    resp = _physical_check(rt, req) or _run(hooks["subrequest"], req)
    if resp is not None:
        return resp
    if req.method == "OPTIONS":
        return Response(200, [("Allow", ALLOW)])
    if req.method not in _FILE_METHODS:
        return error(501)
    return error(403)


def _error_file(rt: Runtime, req: Request, resp: Response) -> bool:
    """Send <server.errorfile-prefix><status>.html if it exists."""
    prefix = req.conf["server.errorfile-prefix"]
    if not prefix:
        return False
    path = f"{prefix}{resp.status}.html"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    size = os.fstat(fd).st_size
    resp.parts = [FilePart(OpenFile(fd, size), 0, size)] if size else []
    if not size:
        os.close(fd)
    resp.set_header("Content-Type", "text/html")
    return True


def _error_handler(rt: Runtime, req: Request, resp: Response) -> Response | None:
    """Answer an error with the page at server.error-handler(-404), keeping the status."""
    conf = req.conf
    url = (conf["server.error-handler-404"] if resp.status == 404 else "") \
        or conf["server.error-handler"]
    if not url or req.error_status:
        return None
    status = req.error_status = resp.status
    method = req.method
    req.target = url
    req.method = "GET" if method != "HEAD" else "HEAD"
    req.physical.path_info = ""
    inner = prepare(rt, req) or route(rt, req)
    req.method = method
    if inner.status >= 400:
        inner.close()
        return None
    if inner.status == 200:
        inner.status = status
    return inner


def finish(rt: Runtime, req: Request, resp: Response, backend: bool = False) -> Response:
    """Step 6: error documents, response_start hooks, bodies that must be empty.

    A ``backend`` response keeps its own body for errors unless
    ``server.error-intercept`` is set (lighttpd's rule).
    """
    status = resp.status
    if status in _NO_BODY:
        resp.close()
        if status != 304:
            resp.remove_header("Content-Length")
    elif status >= 400 and (req.conf["server.error-intercept"] if backend
                            else not resp.parts):
        resp.close()
        resp.remove_header("Content-Length")
        handled = _error_handler(rt, req, resp)
        if handled is not None:
            resp = handled
        elif not _error_file(rt, req, resp):
            resp.parts = [error_page(status)]
            resp.set_header("Content-Type", "text/html")
    for hook in rt.hooks["response_start"]:
        hook(req, resp)
    return resp


def handle(rt: Runtime, req: Request) -> Response:
    """The whole request path for one request."""
    resp = prepare(rt, req) or route(rt, req)
    return finish(rt, req, resp)

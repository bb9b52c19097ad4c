"""Sending a file as a response (lighttpd's ``http_response_send_file()``).

Used by mod_staticfile, by error documents and (later) by X-Sendfile:

* the file is opened once and fstat'ed, so what is sent is what was
  checked; with ``server.follow-symlink`` disabled, a symbolic link anywhere
  in the path is refused (403) and the final component is opened O_NOFOLLOW;
* Content-Type from ``mimetype.assign`` (longest matching suffix) or the
  file's extended attribute; a type found nowhere is sent as
  application/octet-stream without caching headers, as lighttpd does, so a
  misconfigured server does not get scripts cached as downloads;
* ETag from inode, size and mtime per ``etag.use-*`` (lighttpd's hash, so
  the values are the same as lighttpd's), and Last-Modified;
* preconditions (RFC 9110 13.2.2): If-Match and If-Unmodified-Since give
  412, If-None-Match 304 (412 for unsafe methods), If-Modified-Since 304;
* Range (``server.range-requests``, HTTP/1.1 only, GET and HEAD, after
  If-Range): one range is a 206 with Content-Range, several a
  multipart/byteranges body, none satisfiable a 416.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import sys

from ..http import ranges
from ..http.dates import http_date, parse_http_date
from ..http.message import FilePart, OpenFile, Part, Request, Response
from .runtime import Runtime

_O_FLAGS = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def etag(st: os.stat_result, inode: bool, mtime: bool, size: bool) -> str:
    """lighttpd's ETag: a DEK hash over the chosen stat fields, in quotes."""
    fields: list[int] = []
    if inode:
        fields.append(st.st_ino)
    if size:
        fields.append(st.st_size)
    if mtime:
        fields.append(int(st.st_mtime))
        fields.append(st.st_mtime_ns % 1_000_000_000)
    return _dek_etag(tuple(fields)) if fields else ""


@functools.lru_cache(maxsize=256)
def _dek_etag(fields: tuple[int, ...]) -> str:
    data = b"".join((f & 0xFFFFFFFFFFFFFFFF).to_bytes(8, sys.byteorder) for f in fields)
    h = len(data)
    for b in data:
        h = ((h << 5) ^ (h >> 27) ^ b) & 0xFFFFFFFF
    return f'"{h}"'


def etag_matches(tag: str, header: str, weak_ok: bool) -> bool:
    """Whether ``header`` (an If-Match / If-None-Match list) names ``tag``."""
    if header.strip() == "*":
        return True
    if not tag:
        return False
    for item in header.split(","):
        item = item.strip()
        if item.startswith("W/"):
            if not weak_ok:
                continue
            item = item[2:]
        if item == tag:
            return True
    return False


def _xattr_type(path: str, name: str) -> str | None:
    try:
        return os.getxattr(path, "user." + name).decode("ascii", "replace")
    except (OSError, AttributeError):
        return None


def open_file(rt: Runtime, req: Request, path: str) -> tuple[int, os.stat_result] | Response:
    """Open ``path`` for reading under the request's symlink rule, or an error response."""
    follow = req.conf["server.follow-symlink"]
    if not follow and rt.statcache.contains_symlink(path):
        if req.conf["debug.log-request-handling"]:
            rt.log("files", f"access denied: symbolic link in {path}")
        return Response(403)
    try:
        fd = os.open(path, _O_FLAGS | (0 if follow else os.O_NOFOLLOW))
    except OSError as exc:
        return Response(404 if exc.errno in (errno.ENOENT, errno.ENOTDIR) else 403)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return Response(403)
    return fd, st


def _preconditions(req: Request, tag: str, mtime: int, lmod: str) -> int:
    """0 to go on, or 304 / 412."""
    if_match = req.header("if-match")
    if if_match is not None and not etag_matches(tag, if_match, weak_ok=False):
        return 412
    ius = req.header("if-unmodified-since")
    if if_match is None and ius is not None:
        when = parse_http_date(ius)
        if when is not None and mtime > when:
            return 412
    safe = req.method in ("GET", "HEAD", "QUERY")
    inm = req.header("if-none-match")
    if inm is not None:
        if etag_matches(tag, inm, weak_ok=req.header("range") is None):
            return 304 if safe else 412
        return 0
    ims = req.header("if-modified-since")
    if ims is not None and safe and lmod:
        if ims == lmod:
            return 304
        when = parse_http_date(ims)
        if when is not None and mtime <= when:
            return 304
    return 0


def _if_range_allows(req: Request, tag: str, lmod: str) -> bool:
    value = req.header("if-range")
    if value is None:
        return True
    if value.startswith(('"', "W/")):
        return bool(tag) and value == tag  # strong comparison only
    return value == lmod


def send_file(rt: Runtime, req: Request, path: str, etags: bool = True) -> Response:
    opened = open_file(rt, req, path)
    if isinstance(opened, Response):
        return opened
    fd, st = opened
    conf = req.conf
    resp = Response(200)
    ctype = conf["mimetype.assign"].lookup(os.path.basename(path))
    if ctype is None and conf["mimetype.use-xattr"]:
        ctype = _xattr_type(path, rt.config["mimetype.xattr-name"])
    resp.headers.append(("Content-Type", ctype or "application/octet-stream"))
    tag = lmod = ""
    mtime = int(st.st_mtime)
    if ctype is not None:
        if etags:
            tag = etag(st, conf["etag.use-inode"], conf["etag.use-mtime"],
                       conf["etag.use-size"])
            if tag:
                resp.headers.append(("ETag", tag))
        lmod = http_date(mtime)
        resp.headers.append(("Last-Modified", lmod))
        verdict = _preconditions(req, tag, mtime, lmod)
        if verdict:
            os.close(fd)
            resp.status = verdict
            if verdict == 412:
                resp.headers = []
            return resp
    size = st.st_size
    file = OpenFile(fd, size)
    ranged = conf["server.range-requests"]
    if ranged:
        resp.headers.append(("Accept-Ranges", "bytes"))
    spec = req.header("range")
    if (spec is not None and ranged and size and req.method in ("GET", "HEAD")
            and req.version != "1.0" and _if_range_allows(req, tag, lmod)):
        wanted = ranges.parse(spec, size)
        if wanted is not None:
            return _ranged(resp, file, wanted, size, ctype)
    if size:
        resp.parts = [FilePart(file, 0, size)]
    else:
        file.close()
    return resp


def _ranged(resp: Response, file: OpenFile, wanted: list[tuple[int, int]], size: int,
            ctype: str | None) -> Response:
    if not wanted:
        file.close()
        resp.status = 416
        resp.headers = [("Content-Range", f"bytes */{size}")]
        return resp
    resp.status = 206
    if len(wanted) == 1:
        first, last = wanted[0]
        resp.headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
        resp.parts = [FilePart(file, first, last - first + 1)]
        return resp
    parts: list[Part] = []
    for i, (first, last) in enumerate(wanted):
        head = ranges.part_header(first, last, size, ctype)
        parts.append(head[2:] if i == 0 else head)
        parts.append(FilePart(file, first, last - first + 1))
    parts.append(ranges.END)
    resp.set_header("Content-Type", ranges.MULTIPART_TYPE)
    resp.parts = parts
    return resp

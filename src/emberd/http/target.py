"""The request target: from the raw bytes of the request line to a safe path.

``parse_target()`` splits off the query string and the authority of an
absolute-form target, percent-decodes the path and simplifies it the way
lighttpd does (``burl_normalize()`` then ``buffer_path_simplify()``):

* control characters in the target and a decoded NUL are errors (400);
* ``%2F`` is decoded to ``/`` unless ``url-path-2f-decode`` is disabled (it
  then stays ``%2F``), and is refused with ``url-path-2f-reject``;
* the decoded path must be UTF-8 unless ``url-invalid-utf8-reject`` is
  disabled;
* ``\\`` becomes ``/`` with ``url-path-backslash-trans``;
* ``.`` and ``..`` segments are refused with ``url-path-dotseg-reject``;
  otherwise they are resolved, never above ``/``, and repeated slashes are
  collapsed -- always, because this path is what is mapped to files.

So the returned path starts with ``/``, contains no NUL and no ``..``
segment: joined to a document root it cannot leave it except through a
symbolic link (see ``server.follow-symlink``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_HEX = frozenset("0123456789abcdefABCDEF")
_CTRL = re.compile("[\x00-\x1f\x7f]")


class BadTarget(ValueError):
    """The target cannot be served: ``status`` says how to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True, slots=True)
class Target:
    path: str  # decoded and simplified; "*" for OPTIONS *
    query: str | None  # raw, as sent; None when there was no '?'
    authority: str | None  # from an absolute-form target
    scheme: str | None


def _decode(raw: str, keep_2f: bool, utf8: bool) -> str:
    if "%" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "%":
            h = raw[i + 1 : i + 3]
            if len(h) != 2 or not _HEX.issuperset(h):
                raise BadTarget(400, f"invalid percent-encoding {raw[i:i + 3]!r}")
            if keep_2f and h in ("2f", "2F"):
                out += b"%2F"
            else:
                out.append(int(h, 16))
            i += 3
        else:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
    if 0 in out:
        raise BadTarget(400, "NUL byte in the path")
    try:
        return out.decode("utf-8") if utf8 else out.decode("utf-8", "surrogateescape")
    except UnicodeDecodeError:
        raise BadTarget(400, "path is not valid UTF-8 after decoding") from None


def simplify(path: str) -> str:
    """Resolve '.' and '..', collapse '//', never go above '/'; keeps a trailing '/'."""
    parts: list[str] = []
    segments = path.split("/")
    for seg in segments:
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    out = "/" + "/".join(parts)
    if len(out) > 1 and segments[-1] in ("", ".", ".."):
        out += "/"
    return out


def parse_target(raw: str, opts: Mapping[str, bool]) -> Target:
    """Split and normalise a request target (``opts``: ``server.http-parseopts``)."""
    if opts["url-ctrls-reject"] and _CTRL.search(raw):
        raise BadTarget(400, "control character in the request target")
    if raw == "*":
        return Target("*", None, None, None)
    scheme = authority = None
    rest = raw
    if not raw.startswith("/"):
        head, sep, tail = raw.partition("://")
        if not sep or head.lower() not in ("http", "https"):
            raise BadTarget(400, "request target is not a path or an http(s) URL")
        scheme = head.lower()
        authority, slash, after = tail.partition("/")
        rest = "/" + after if slash else "/"
        if "?" in authority:
            authority, _, q = authority.partition("?")
            rest = "/?" + q
        if not authority:
            raise BadTarget(400, "absolute URL without a host")
    path, qmark, query = rest.partition("?")
    if opts["url-path-2f-reject"] and ("%2f" in path or "%2F" in path):
        raise BadTarget(400, "encoded slash (%2F) in the path")
    decoded = _decode(path, not opts["url-path-2f-decode"], opts["url-invalid-utf8-reject"])
    if opts["url-path-backslash-trans"]:
        decoded = decoded.replace("\\", "/")
    if opts["url-path-dotseg-reject"] and any(
        seg in (".", "..") for seg in decoded.split("/")
    ):
        raise BadTarget(400, "'.' or '..' segment in the path")
    return Target(simplify(decoded), query if qmark else None, authority, scheme)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                  b"-._~/!$&'()*+,;=:@")


def quote_path(path: str) -> str:
    """Percent-encode a decoded path for a Location header (reserved ``/`` kept)."""
    raw = path.encode("utf-8", "surrogateescape")
    if all(b in _SAFE for b in raw):
        return path
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)

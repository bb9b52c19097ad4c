"""Conditions: ``$HTTP["url"] =~ "^/api/"`` and friends.

A condition names what it looks at (a Field, plus a header name for
``$REQUEST_HEADER[...]``), an operator and a string.  The string is
normalised when the configuration is read, as lighttpd does: host names and
IP literals are put in canonical form, ``remote-ip`` values with ``==``/``!=``
may carry a CIDR mask, regular expressions are compiled once.

Matching follows lighttpd's ``config_check_cond_nocache_eval()``:

* ``==``/``!=`` compare strings; for the host the port is optional on either
  side; for remote-ip the client address is tested against the network.
* ``=~``/``!~`` search (not anchored) with Python's ``re`` (lighttpd uses
  PCRE2; the common syntax is the same).  Captures ``%1..%9`` are kept for
  modules that substitute them.
* ``=^``/``=$`` test a prefix or a suffix.
* A missing value (no such header) compares as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from ..addr import Network, normalize_host, parse_network
from .errors import ConfigError, Location


class Field(Enum):
    URL = "url"
    HOST = "host"
    REMOTE_IP = "remote-ip"
    SCHEME = "scheme"
    QUERY_STRING = "query-string"
    REQUEST_METHOD = "request-method"
    REQUEST_HEADER = "request-header"
    SERVER_SOCKET = "socket"


class Op(Enum):
    EQ = "=="
    NE = "!="
    MATCH = "=~"
    NOMATCH = "!~"
    PREFIX = "=^"
    SUFFIX = "=$"


# $HTTP["..."] names; some are shorthands for a request header.
_HTTP_NAMES: dict[str, tuple[Field, str | None]] = {
    "url": (Field.URL, None),
    "host": (Field.HOST, None),
    "remoteip": (Field.REMOTE_IP, None),
    "remote-ip": (Field.REMOTE_IP, None),
    "scheme": (Field.SCHEME, None),
    "querystring": (Field.QUERY_STRING, None),
    "query-string": (Field.QUERY_STRING, None),
    "request-method": (Field.REQUEST_METHOD, None),
    "referer": (Field.REQUEST_HEADER, "Referer"),
    "useragent": (Field.REQUEST_HEADER, "User-Agent"),
    "user-agent": (Field.REQUEST_HEADER, "User-Agent"),
    "cookie": (Field.REQUEST_HEADER, "Cookie"),
    "language": (Field.REQUEST_HEADER, "Accept-Language"),
}

# lighttpd allows at most 9 captures (%1..%9) per condition.
MAX_CAPTURES = 9


def _escape(value: str) -> str:
    return value.replace('"', '\\"')


@dataclass(frozen=True, slots=True, eq=False)
class Condition:
    obj: str  # HTTP, SERVER or REQUEST_HEADER, as written
    name: str  # the text in brackets, as written
    field: Field
    header: str | None  # lower-cased header name for REQUEST_HEADER
    op: Op
    value: str  # normalised
    regex: re.Pattern[str] | None
    network: Network | None

    def text(self) -> str:
        """The condition in configuration syntax (used for -p and block paths)."""
        return f'${self.obj}["{_escape(self.name)}"] {self.op.value} "{_escape(self.value)}"'

    def matches(self, subject: str | None) -> tuple[bool, tuple[str, ...]]:
        """Whether ``subject`` satisfies the condition, and regex captures (%0..%9)."""
        s = subject or ""
        op = self.op
        if op is Op.EQ or op is Op.NE:
            if self.network is not None:
                hit = s in self.network
            elif self.field is Field.HOST:
                hit = _host_equal(s, self.value)
            else:
                hit = s == self.value
            return hit == (op is Op.EQ), ()
        if op is Op.MATCH or op is Op.NOMATCH:
            assert self.regex is not None
            m = self.regex.search(s)
            if op is Op.NOMATCH:
                return m is None, ()
            if m is None:
                return False, ()
            return True, (m.group(0), *(g or "" for g in m.groups()))
        if op is Op.PREFIX:
            return s.startswith(self.value), ()
        return s.endswith(self.value), ()


def _host_equal(authority: str, value: str) -> bool:
    """lighttpd compares host names whether or not a ':port' is present."""
    if value.startswith("/") or not authority or len(authority) == len(value):
        return authority == value
    if len(authority) > len(value):
        return (authority[len(value)] == ":" and len(authority) - len(value) <= 6
                and authority.startswith(value))
    return value[len(authority)] == ":" and value.startswith(authority)


def make_condition(obj: str, name: str, op: Op, value: str, loc: Location) -> Condition:
    """Build a condition from its parsed parts; ConfigError when it cannot be one."""
    header: str | None = None
    if obj == "HTTP":
        found = _HTTP_NAMES.get(name)
        if found is None:
            raise ConfigError(loc, f'unknown condition $HTTP["{name}"]; expected one of '
                              + ", ".join(sorted(_HTTP_NAMES)))
        field, header = found
    elif obj == "SERVER":
        if name != "socket":
            raise ConfigError(loc, f'unknown condition $SERVER["{name}"]; only '
                              '$SERVER["socket"] exists')
        field = Field.SERVER_SOCKET
    elif obj == "REQUEST_HEADER":
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ConfigError(loc, f'invalid header name in $REQUEST_HEADER["{name}"]')
        field, header = Field.REQUEST_HEADER, name
    else:
        raise ConfigError(loc, f"unknown condition ${obj}[...]; expected $HTTP, "
                          "$REQUEST_HEADER or $SERVER")
    if header is not None:
        header = header.lower()

    regex = None
    network = None
    if op in (Op.MATCH, Op.NOMATCH):
        try:
            regex = re.compile(value)
        except re.error as exc:
            raise ConfigError(loc, f'invalid regular expression "{value}": {exc}') from None
        if regex.groups > MAX_CAPTURES:
            raise ConfigError(loc, f'regular expression "{value}" has {regex.groups} '
                              f"captures; at most {MAX_CAPTURES} can be used (%1..%9)")
    elif field is Field.REMOTE_IP:
        if op in (Op.EQ, Op.NE) and not value.startswith("/"):
            network = parse_network(value)
            if network is None:
                raise ConfigError(loc, f'invalid IP address or network "{value}" '
                                  "(expected e.g. 192.168.0.0/16 or 2001:db8::/32)")
            value = str(network)
    elif field is Field.HOST and op is not Op.SUFFIX and not value.startswith("/"):
        if value:
            norm = normalize_host(value)
            if norm is None:
                raise ConfigError(loc, f'invalid host name "{value}"')
            value = norm
    elif (field is Field.SERVER_SOCKET and op in (Op.EQ, Op.NE)
          and not value.startswith((":", "/", "\\", "[]"))
          and normalize_host(value) is None):
        raise ConfigError(loc, f'invalid socket address "{value}" (expected ":port", '
                          '"host:port", "[ipv6]:port" or "/unix/path")')
    return Condition(obj, name, field, header, op, value, regex, network)

"""The directive schema: what a key means, its type, scope, default and range.

A Directive is defined once -- in the core table (``directives.py``) or in
the table of the module that owns it -- and that one definition drives
parsing (type coercion), validation (scope and range), ``emberd -p``
(defaults) and ``docs/configuration.md``.

Types follow lighttpd's ``T_CONFIG_*`` coercions (``configfile-glue.c``):

* BOOL accepts ``enable|enabled|true|1`` / ``disable|disabled|false|0`` in any
  case, or an integer (non-zero is true);
* SHORT is 0..65535 (65536 is taken as 65535) and INT is 0..2^63-1; both
  accept a string of digits, so values can come from ``env.*``;
* LIST is a list of strings, KVSTRING a list of ``key => string``, KVLIST a
  list of ``key => list``, KVANY a list of ``key => anything`` whose known
  keys may have their own sub-schema (``server.feature-flags``).

Scopes: SERVER directives belong in the global scope only, SOCKET ones in
the global scope or a ``$SERVER["socket"] == ...`` block, REQUEST ones
anywhere.  lighttpd only warns about a misplaced directive and then ignores
it; emberd refuses it, because an ignored setting is a silent surprise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .values import INT_MAX, Array, Value, type_name


class Type(Enum):
    BOOL = "boolean"
    SHORT = "integer 0..65535"
    INT = "integer"
    STRING = "string"
    LIST = "list of strings"
    KVSTRING = "list of key => string"
    KVLIST = "list of key => list"
    KVANY = "list of key => value"


class Scope(Enum):
    SERVER = "server"
    SOCKET = "socket"
    REQUEST = "request"


Getter = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Derived:
    """A default computed from other settings (``get(key)`` reads them)."""

    compute: Callable[[Getter], Any]
    text: str  # how the docs describe it


@dataclass(frozen=True, slots=True)
class Directive:
    key: str
    type: Type
    scope: Scope
    default: Any
    doc: str
    unit: str = ""
    min: int | None = None
    max: int | None = None
    choices: tuple[str, ...] = ()
    module: str = "core"
    # maps the coerced value to the value used at run time (e.g. rounding)
    normalize: Callable[[Any], Any] | None = None
    # known keys of a KVANY/KVSTRING directive, each typed by its own entry
    subkeys: tuple[Directive, ...] = ()
    # a graceful restart (SIGUSR1) cannot apply a change of this directive
    restart: bool = False
    # keys of each entry of a nested table (the hosts of fastcgi.server), for the docs;
    # ``normalize`` checks them
    entry_keys: tuple[Directive, ...] = ()

    def range_text(self) -> str:
        if self.choices:
            return " | ".join(f'"{c}"' for c in self.choices)
        if self.type is Type.BOOL:
            return "enable | disable"
        if self.min is None and self.max is None:
            if self.type is Type.SHORT:
                return "0..65535"
            return ""
        lo = "0" if self.min is None else str(self.min)
        hi = "" if self.max is None else str(self.max)
        return f"{lo}..{hi}"


class ValueProblem(ValueError):
    """A value that does not fit its directive; the caller adds the location."""


_TRUE = frozenset(("enable", "enabled", "true", "1"))
_FALSE = frozenset(("disable", "disabled", "false", "0"))


def to_bool(value: Value) -> bool | None:
    """lighttpd's config_plugin_value_to_bool(); None when it is neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        low = value.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    return None


def _to_int(d: Directive, value: Value) -> int:
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise ValueProblem(f"expected {_expect(d)}, found string \"{value}\"")
        number = int(text)
    elif isinstance(value, int):
        number = value
    else:
        raise ValueProblem(f"expected {_expect(d)}, found a list")
    if d.type is Type.SHORT:
        if number == 65536:
            number = 65535  # lighttpd clamps this one value
        elif number > 65535:
            raise ValueProblem(f"{number} is out of range 0..65535")
    elif number > INT_MAX:
        raise ValueProblem(f"{number} is too large")
    if (d.min is not None and number < d.min) or (d.max is not None and number > d.max):
        raise ValueProblem(f"{number}{_unit(d)} is out of range {d.range_text()}")
    return number


def _unit(d: Directive) -> str:
    return f" {d.unit}" if d.unit else ""


def _expect(d: Directive) -> str:
    what = d.type.value
    article = "an" if what[0] in "aeiou" else "a"
    return f"{article} {what} ({d.unit})" if d.unit else f"{article} {what}"


def _need_array(d: Directive, value: Value, example: str) -> Array:
    if not isinstance(value, Array):
        raise ValueProblem(f"expected a {d.type.value} like {d.key} = {example}, "
                           f"found {type_name(value)} {_show(value)}")
    return value


def _show(value: Value) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value) if isinstance(value, int) else ""


def coerce(d: Directive, value: Value, warn: Callable[[str], None]) -> Any:
    """The typed value of ``value`` for directive ``d``; ValueProblem if it does not fit.

    ``warn`` receives messages about parts that are accepted but ignored
    (unknown keys of a KVANY directive with a sub-schema).
    """
    t = d.type
    if t is Type.BOOL:
        b = to_bool(value)
        if b is None:
            raise ValueProblem(f'expected "enable" or "disable", found {type_name(value)} '
                               f"{_show(value)}".rstrip())
        result: Any = b
    elif t is Type.SHORT or t is Type.INT:
        result = _to_int(d, value)
    elif t is Type.STRING:
        if not isinstance(value, str):
            raise ValueProblem(f'expected a string like {d.key} = "...", found '
                               f"{type_name(value)} {_show(value)}".rstrip())
        if d.choices and value not in d.choices:
            raise ValueProblem(f'"{value}" is not one of {d.range_text()}')
        result = value
    elif t is Type.LIST:
        arr = _need_array(d, value, '( "...", "..." )')
        if not arr.is_vlist():
            raise ValueProblem(f'expected a list of strings like {d.key} = ( "...", "..." )')
        result = tuple(v for _, v in arr.entries)
        if d.choices:
            for v in result:
                if v not in d.choices:
                    raise ValueProblem(f'"{v}" is not one of {d.range_text()}')
    elif t is Type.KVSTRING:
        arr = _need_array(d, value, '( "..." => "..." )')
        if not all(k is not None and isinstance(v, str) for k, v in arr.entries):
            raise ValueProblem(f'expected a list of key => string like {d.key} = '
                               '( "..." => "..." )')
        result = _typed_map(d, {k: v for k, v in arr.entries if k is not None}, warn)
    elif t is Type.KVLIST:
        arr = _need_array(d, value, '( "..." => ( ... ) )')
        if not all(k is not None and isinstance(v, Array) for k, v in arr.entries):
            raise ValueProblem(f'expected a list of key => list like {d.key} = '
                               '( "..." => ( ... ) )')
        result = {k: v for k, v in arr.entries if k is not None}
    else:
        arr = _need_array(d, value, '( "..." => ... )')
        if not arr.is_keyed():
            raise ValueProblem(f'expected a list of key => value like {d.key} = '
                               '( "..." => ... )')
        result = _typed_map(d, {k: v for k, v in arr.entries if k is not None}, warn)
    if d.normalize is not None:
        result = d.normalize(result)
    return result


def _typed_map(d: Directive, raw: dict[str, Value], warn: Callable[[str], None]) -> Any:
    if not d.subkeys:
        return raw
    known = {s.key: s for s in d.subkeys}
    out: dict[str, Any] = {}
    for k, v in raw.items():
        sub = known.get(k)
        if sub is None:
            warn(f'{d.key}: unknown key "{k}" (ignored); known keys: '
                 + ", ".join(sorted(known)))
            continue
        try:
            out[k] = coerce(sub, v, warn)
        except ValueProblem as exc:
            raise ValueProblem(f'"{k}": {exc}') from None
    return out


def coerce_entry(where: str, spec: Array, known: Mapping[str, Directive],
                 aliases: Mapping[str, str] | None = None,
                 explain: Callable[[Directive, Value, str], str] | None = None) -> dict[str, Any]:
    """One keyed entry of a nested table (a host of fastcgi.server, a path of
    auth.require) typed by ``known``; unknown keys are errors.  ``explain`` may
    reword a value problem; ValueProblem names ``where`` and the key."""
    out: dict[str, Any] = {}
    for k, raw in spec.entries:
        assert k is not None
        key = aliases.get(k, k) if aliases else k
        d = known.get(key)
        if d is None:
            raise ValueProblem(f'{where}: unknown key "{k}"; known keys: '
                               + ", ".join(sorted(known)))
        try:
            out[key] = coerce(d, raw, lambda m: None)
        except ValueProblem as exc:
            why = explain(d, raw, str(exc)) if explain is not None else str(exc)
            raise ValueProblem(f'{where}: "{k}": {why}') from None
    return out


def with_sub_defaults(d: Directive, value: Mapping[str, Any], get: Getter) -> dict[str, Any]:
    """A sub-schema map completed with the defaults of the keys not given."""
    out = dict(value)
    for sub in d.subkeys:
        if sub.key not in out:
            out[sub.key] = resolve_default(sub, get)
    return out


def resolve_default(d: Directive, get: Getter) -> Any:
    default = d.default
    if isinstance(default, Derived):
        return default.compute(get)
    if d.subkeys:
        return with_sub_defaults(d, {}, get)
    return default


def format_default(d: Directive) -> str:
    """The default as the docs show it."""
    default = d.default
    if isinstance(default, Derived):
        return default.text
    if d.subkeys:
        return "see the keys below"
    if d.type is Type.BOOL:
        return "enable" if default else "disable"
    if isinstance(default, str):
        return f'"{default}"' if default else '"" (unset)'
    if isinstance(default, tuple):
        return "( " + ", ".join(f'"{v}"' for v in default) + " )" if default else "( ) (empty)"
    if isinstance(default, dict):
        return "built-in table" if default else "( ) (empty)"
    return f"{default}{_unit(d)}"

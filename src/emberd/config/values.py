"""The values of the configuration language: strings, integers and lists.

A lighttpd list (``( ... )``) is an ordered sequence of entries, each with an
optional string key (``"k" => v``); keyed and unkeyed entries may be mixed.
``+`` merges values as lighttpd's ``configparser_merge_data()`` does:
string + string and string + integer concatenate, integer + integer adds,
list + list appends, and a key already present is an error unless the new
entry is the same scalar.
"""

from __future__ import annotations

from collections.abc import Iterator

# lighttpd parses integers with strtol() into a long; emberd uses the 64-bit
# range everywhere so that a config means the same on armhf and aarch64.
INT_MAX = 2**63 - 1


class Array:
    """An ordered lighttpd list; keys are case-sensitive as in lighttpd."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[str | None, Value]] | None = None) -> None:
        self.entries: list[tuple[str | None, Value]] = entries if entries is not None else []

    def get(self, key: str) -> Value | None:
        for k, v in self.entries:
            if k == key:
                return v
        return None

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[tuple[str | None, Value]]:
        return iter(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Array) and self.entries == other.entries

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Array({self.entries!r})"

    def copy(self) -> Array:
        return Array([(k, copy_value(v)) for k, v in self.entries])

    def append(self, key: str | None, value: Value) -> None:
        self.entries.append((key, value))

    def is_vlist(self) -> bool:
        """Every entry is an unkeyed string: ``("a", "b")``."""
        return all(k is None and isinstance(v, str) for k, v in self.entries)

    def is_keyed(self) -> bool:
        """Every entry has a key: ``("k" => ...)``."""
        return all(k is not None for k, _ in self.entries)


Value = str | int | Array


def copy_value(v: Value) -> Value:
    return v.copy() if isinstance(v, Array) else v


def type_name(v: Value) -> str:
    if isinstance(v, Array):
        return "list"
    if isinstance(v, int):
        return "integer"
    return "string"


class MergeError(ValueError):
    """Raised by merge(); the parser adds the location."""


def merge(left: Value, right: Value) -> Value:
    """``left + right`` as lighttpd defines it; ``left`` is not modified."""
    if isinstance(left, Array):
        if not isinstance(right, Array):
            raise MergeError(f"cannot merge a list with a {type_name(right)}")
        out = left.copy()
        for key, value in right.entries:
            if key is not None and key in out:
                old = out.get(key)
                if not isinstance(value, Array) and type(old) is type(value) and old == value:
                    continue  # lighttpd ignores an identical repeated key => value
                raise MergeError(f'duplicate list key "{key}"')
            out.append(key, copy_value(value))
        return out
    if isinstance(right, Array):
        raise MergeError(f"cannot merge a {type_name(left)} with a list")
    if isinstance(left, int) and isinstance(right, int):
        total = left + right
        if total > INT_MAX:
            raise MergeError(f"integer overflow: {left} + {right}")
        return total
    return f"{left}{right}"

"""Typed settings, and which of them apply to a given request.

ServerConfig holds the value of every known directive in the global scope
(explicit or default) and, for each conditional block, the typed values set
in it.  ``for_request()`` evaluates the conditions against the facts of a
request and overlays the values of the blocks that match, in the order the
blocks first appear in the file (lighttpd's order: later blocks win).  The
result is a plain dict (shared by requests that match the same blocks), so
a module reads a setting at the cost of a dict lookup.

Evaluation is tri-state as in lighttpd's ``config_check_cond_nocache()``: a
block is TRUE when its parent is TRUE, the previous branch of its else chain
(if any) is FALSE, and its own condition holds; a block whose parent is not
TRUE, or whose previous branch is not FALSE, is SKIPPED (neither it nor the
rest of its chain applies).  Because parents and previous branches have
smaller indexes, one pass in index order decides every block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .conditions import Condition, Field, Op
from .errors import ConfigError, Location
from .schema import Directive
from .tree import ConfigTree

if TYPE_CHECKING:
    from ..modules import Plugin

_TRUE, _FALSE, _SKIP = 1, 0, -1

# merged dictionaries kept for recurring combinations of matching blocks
_CACHE_MAX = 16


class Facts(Protocol):
    """What conditions look at; the HTTP layer's request implements it."""

    def cond_value(self, field: Field, header: str | None) -> str | None: ...


@dataclass(slots=True, eq=False)
class CompiledBlock:
    index: int
    condition: Condition | None  # None: a plain else
    parent: int  # index of the enclosing block; 0 is the global scope
    prev: int  # index of the previous branch of an else chain, or -1
    values: dict[str, Any]


@dataclass(slots=True, eq=False)
class Match:
    """Which blocks applied to a request, and their regex captures (for %1..%9)."""

    blocks: tuple[int, ...]
    captures: dict[int, tuple[str, ...]]


NO_MATCH = Match((), {})


@dataclass(slots=True, eq=False)
class ServerConfig:
    path: str
    tree: ConfigTree
    directives: dict[str, Directive]
    plugins: list[type[Plugin]]
    values: dict[str, Any]
    explicit: set[str]
    blocks: list[CompiledBlock]  # index 0 is the global scope (values empty)
    warnings: list[ConfigError] = field(default_factory=list)
    _cache: dict[tuple[int, ...], dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def module_names(self) -> list[str]:
        return [p.name for p in self.plugins]

    def evaluate(self, facts: Facts) -> tuple[list[int], dict[int, tuple[str, ...]]]:
        """Indexes of the blocks that apply, in order, and their regex captures."""
        blocks = self.blocks
        state = [_TRUE] + [_SKIP] * (len(blocks) - 1)
        matched: list[int] = []
        captures: dict[int, tuple[str, ...]] = {}
        for b in blocks[1:]:
            if state[b.parent] != _TRUE or (b.prev >= 0 and state[b.prev] != _FALSE):
                continue  # stays SKIP
            cond = b.condition
            caps: tuple[str, ...] = ()
            if cond is None:
                hit = True
            else:
                hit, caps = cond.matches(facts.cond_value(cond.field, cond.header))
            if hit:
                state[b.index] = _TRUE
                matched.append(b.index)
                if caps:
                    captures[b.index] = caps
            else:
                state[b.index] = _FALSE
        return matched, captures

    def for_request(self, facts: Facts) -> tuple[dict[str, Any], Match]:
        """The settings for a request (a shared dict: read it, never change it)."""
        if len(self.blocks) == 1:
            return self.values, NO_MATCH
        matched, captures = self.evaluate(facts)
        key = tuple(i for i in matched if self.blocks[i].values)
        values = self._cache.get(key)
        if values is None:
            values = dict(self.values)
            for i in key:
                values.update(self.blocks[i].values)
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = values
        return values, Match(tuple(matched), captures)

    def captures_for(self, match: Match, key: str) -> tuple[str, ...]:
        """Captures of the condition of the block that set ``key`` (lighttpd's %n)."""
        for index in reversed(match.blocks):
            if key in self.blocks[index].values:
                return match.captures.get(index, ())
        return ()

    def assigned(self, key: str) -> list[tuple[Any, Location | None]]:
        """Every value written for ``key`` (global and in blocks) with where it was written."""
        out: list[tuple[Any, Location | None]] = []
        for b in self.blocks:
            if b.index == 0:
                if key not in self.explicit:
                    continue
                value = self.values[key]
            elif key in b.values:
                value = b.values[key]
            else:
                continue
            a = self.tree.blocks[b.index].values.get(key)
            out.append((value, a.loc if a is not None else None))
        return out

    def socket_tokens(self) -> list[str]:
        """Extra listeners: the ``$SERVER["socket"] == "..."`` blocks, in order."""
        out: list[str] = []
        for b in self.blocks[1:]:
            c = b.condition
            if (c is not None and c.field is Field.SERVER_SOCKET and c.op is Op.EQ
                    and c.value not in out):
                out.append(c.value)
        return out

    def for_socket(self, token: str) -> dict[str, Any]:
        """Global values overlaid with the top-level ``$SERVER["socket"] == token`` block."""
        values = dict(self.values)
        for b in self.blocks[1:]:
            c = b.condition
            if (b.parent == 0 and c is not None and c.field is Field.SERVER_SOCKET
                    and c.op is Op.EQ and c.value == token):
                values.update(b.values)
        return values

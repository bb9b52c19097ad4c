"""The parsed configuration: a tree of blocks holding raw assignments.

Block 0 is the global block; every condition (``$HTTP["host"] == "x" { }``)
is a block whose parent is the block it was written in.  Blocks of an
``else`` chain point to the previous branch through ``prev``.  As in
lighttpd, a block is identified by its path (the conditions from the top),
so writing the same condition twice adds to the same block.  Blocks are
numbered in the order they were first seen; parents and previous branches
always have smaller numbers, which is what lets the matcher evaluate them in
one pass.

Values here are untyped (strings, integers, lists); ``schema`` gives them
types, ranges and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .conditions import Condition
from .errors import Location
from .values import Value

BUILTIN = Location("<built-in>", 0, 0)


@dataclass(slots=True, eq=False)
class Assignment:
    key: str
    value: Value
    loc: Location


@dataclass(slots=True, eq=False)
class Block:
    index: int
    path: str
    condition: Condition | None  # None: the global block, or a plain 'else'
    parent: Block | None
    prev: Block | None = None
    loc: Location = BUILTIN
    values: dict[str, Assignment] = field(default_factory=dict)
    children: list[Block] = field(default_factory=list)

    @property
    def is_else(self) -> bool:
        return self.condition is None and self.parent is not None


@dataclass(slots=True, eq=False)
class ConfigTree:
    blocks: list[Block]
    sources: list[str] = field(default_factory=list)

    @property
    def root(self) -> Block:
        return self.blocks[0]

"""``emberd -p``: the effective configuration, in configuration syntax.

Every directive of the core and of the loaded modules is printed with its
value, defaults included (marked ``# default``), followed by the conditional
blocks with the values set in them, in the order and nesting of the file.
Variables and includes are already resolved.  The output parses back to the
same settings (a property the tests check).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .settings import ServerConfig
from .tree import Block
from .values import Array

INDENT = "    "


def quote(text: str) -> str:
    """A string literal; lighttpd's only escape is \\" (so a final backslash is impossible)."""
    return '"' + text.replace('"', '\\"') + '"'


def format_value(value: Any, depth: int = 0) -> str:
    if isinstance(value, bool):
        return '"enable"' if value else '"disable"'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    items: list[tuple[str | None, Any]]
    if isinstance(value, Array):
        items = list(value.entries)
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = [(None, v) for v in value]
    if not items:
        return "( )"
    parts = [
        (f"{quote(k)} => " if k is not None else "") + format_value(v, depth + 1)
        for k, v in items
    ]
    one_line = "( " + ", ".join(parts) + " )"
    if len(one_line) <= 72 and "\n" not in one_line:
        return one_line
    pad = INDENT * (depth + 1)
    return "(\n" + "".join(f"{pad}{p},\n" for p in parts) + INDENT * depth + ")"


def _inexpressible(value: Any) -> bool:
    if isinstance(value, str):
        return value.endswith("\\") or "\0" in value
    if isinstance(value, Array):
        return any(_inexpressible(v) or (k is not None and _inexpressible(k))
                   for k, v in value.entries)
    if isinstance(value, Mapping):
        return any(_inexpressible(k) or _inexpressible(v) for k, v in value.items())
    if isinstance(value, tuple):
        return any(_inexpressible(v) for v in value)
    return False


def _assignment(key: str, value: Any, depth: int, note: str = "") -> str:
    pad = INDENT * depth
    if _inexpressible(value):
        return (f"{pad}# {key}: its value ends with a backslash or holds a NUL, which "
                "configuration syntax cannot express\n")
    return f"{pad}{key} = {format_value(value, depth)}{note}\n"


def _shown(config: ServerConfig, block: Block, key: str, value: Any) -> Any:
    """What to print for ``key``: a value that a directive turned into run-time objects
    (fastcgi.server, auth.require) is printed as written, which parses back to it."""
    d = config.directives.get(key)
    a = block.values.get(key)
    if d is not None and d.normalize is not None and a is not None:
        return a.value
    return value


def render(config: ServerConfig) -> str:
    out = [f"# emberd -p: the effective configuration of {config.path}\n",
           "# (directives not set in the file show their default, marked '# default')\n"]
    module = None
    for key, d in config.directives.items():
        if d.module != module:
            module = d.module
            out.append(f"\n# -- {module} --\n")
        note = "" if key in config.explicit else "  # default"
        value = _shown(config, config.tree.root, key, config.values[key])
        out.append(_assignment(key, value, 0, note))
    lines = _blocks(config)
    if lines:
        out.append("\n# -- conditional blocks --\n")
        out.extend(lines)
    return "".join(out)


def _ancestors(block: Block) -> list[Block]:
    """The enclosing conditional blocks of ``block``, outermost first."""
    chain: list[Block] = []
    parent = block.parent
    while parent is not None and parent.parent is not None:
        chain.append(parent)
        parent = parent.parent
    return chain[::-1]


def _blocks(config: ServerConfig) -> list[str]:
    """Blocks in the order of their indexes, so that a reparse numbers them the same.

    Order decides which block wins when several set the same key, so it must
    survive printing.  A block that comes back later in index order (nested
    in, or chained to, a block already printed) is reached by re-opening its
    enclosing conditions: writing the same condition again enters the same
    block, which is how lighttpd's grammar allows it.
    """
    out: list[str] = []
    open_: list[Block] = []
    last_closed: Block | None = None

    def close_to(depth: int) -> None:
        nonlocal last_closed
        while len(open_) > depth:
            b = open_.pop()
            if out and not out[-1].endswith("\n"):
                out.append("\n")
            out.append(f"{INDENT * len(open_)}}}")
            last_closed = b

    def newline() -> None:
        if out and not out[-1].endswith("\n"):
            out.append("\n")

    def reopen(b: Block) -> None:
        assert b.condition is not None, "a plain else block cannot be re-entered"
        newline()
        out.append(f"{INDENT * len(open_)}{b.condition.text()} {{\n")
        open_.append(b)

    for block in config.tree.blocks[1:]:
        ancestors = _ancestors(block)
        keep = 0
        while keep < len(open_) and keep < len(ancestors) and open_[keep] is ancestors[keep]:
            keep += 1
        close_to(keep)
        for a in ancestors[keep:]:
            reopen(a)
        head = block.condition.text() if block.condition is not None else ""
        if block.prev is not None:
            if last_closed is not block.prev or (out and out[-1].endswith("\n")):
                reopen(block.prev)
                close_to(len(open_) - 1)
            out.append(f" else {head} {{\n" if head else " else {\n")
        else:
            newline()
            out.append(f"{INDENT * len(open_)}{head} {{\n")
        for key, value in config.blocks[block.index].values.items():
            out.append(_assignment(key, _shown(config, block, key, value), len(open_) + 1))
        open_.append(block)
        last_closed = None
    close_to(0)
    newline()
    return out

"""Writes docs/configuration.md from the schema (``python -m emberd.config.docs``).

The reference is generated so that it cannot drift from the code: a test
compares the file with what this module renders.  It covers the core table
and every module present in this build.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from .. import modules
from . import catalog
from .directives import CORE
from .schema import Directive, format_default

HEADER = """\
# emberd configuration reference

Generated from emberd's directive schema by `make docs`
(`python -m emberd.config.docs`); do not edit by hand.

emberd reads lighttpd's configuration language (see
[porting-from-lighttpd.md](porting-from-lighttpd.md)). Every directive below
is checked when the configuration is read: a wrong type or an out-of-range
value is an error with `file:line:column`, an unknown key is a warning.

Scopes: **server** directives apply to the whole process and belong outside
conditions; **socket** directives apply to a listening socket (global, or in a
`$SERVER["socket"] == "..."` block); **request** directives may be set in any
condition. Types: a *boolean* is `"enable"`/`"disable"` (also `"true"`,
`"false"`, `1`, `0`); integers are decimal and may come from a string of
digits (`env.PORT`). Directives marked *restart* are not changed by a
graceful restart (SIGUSR1): stop and start emberd to change them.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(directives: Iterable[Directive]) -> list[str]:
    rows = ["| directive | type | scope | default | range | description |",
            "|---|---|---|---|---|---|"]
    for d in directives:
        unit = f" ({d.unit})" if d.unit else ""
        doc = d.doc + (" *restart*" if d.restart else "")
        rows.append(f"| `{d.key}` | {d.type.value}{unit} | {d.scope.value} | "
                    f"{_cell(format_default(d))} | {_cell(d.range_text())} | {_cell(doc)} |")
    return rows


def _section(title: str, directives: tuple[Directive, ...]) -> list[str]:
    out = [f"## {title}", ""]
    out += _table(directives)
    for d in directives:
        if d.subkeys:
            out += ["", f"### `{d.key}` keys", ""]
            out += _table(d.subkeys)
        if d.entry_keys:
            out += ["", f"### `{d.key}` entry keys", ""]
            out += _table(d.entry_keys)
    out.append("")
    return out


def render() -> str:
    out = [HEADER]
    out += _section("Core", CORE)
    for comp in catalog.emberd_modules():
        if not comp.present():
            continue
        assert comp.provider is not None
        plugin = modules.load(comp.provider)
        if plugin.directives or plugin.feature_flags:
            out += _section(comp.name, plugin.directives + plugin.feature_flags)
    from ..control.settings import CONTROL

    out += _section("emberd-control (its own file, e.g. /etc/emberd/control.conf)", CONTROL)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else "docs/configuration.md"
    with open(target, "w", encoding="utf-8") as f:
        f.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))

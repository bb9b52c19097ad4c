"""From a configuration file to checked, typed settings.

``load()`` parses the file, works out the module list (``server.modules``
plus lighttpd's compat additions), builds the schema of the core and the
loaded modules, and checks every assignment of every block against it:
scope, type and range.  Problems are collected so that one run reports all
of them; a key that belongs to a module or feature this build lacks is an
error, an unknown key a warning (as in lighttpd).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

from .. import modules
from . import catalog
from .conditions import Field, Op
from .directives import CORE
from .errors import Diagnostics, Location
from .parser import parse
from .schema import Directive, Scope, ValueProblem, coerce, resolve_default, to_bool
from .settings import CompiledBlock, ServerConfig
from .tree import Block, ConfigTree


def load(path: str, text: str | None = None, environ: Mapping[str, str] | None = None,
         cwd: str | None = None) -> ServerConfig:
    """Parse and check a configuration; ConfigError (or ConfigErrors) if it is not usable."""
    return compile_tree(parse(path, text, environ, cwd), path)


def _any_block_value(tree: ConfigTree, key: str) -> list[Any]:
    return [b.values[key].value for b in tree.blocks if key in b.values]


def _resolve_modules(tree: ConfigTree, d: Directive, compat: bool,
                     diags: Diagnostics) -> list[type[modules.Plugin]]:
    root = tree.root
    assignment = root.values.get("server.modules")
    names: list[str] = []
    loc: Location | None = None
    if assignment is not None:
        loc = assignment.loc
        try:
            names = list(coerce(d, assignment.value, lambda m: diags.warn(loc, m)))
        except ValueProblem as exc:
            diags.error(loc, f"server.modules: {exc}")
    wanted: list[str] = []
    for name in names:
        name = catalog.RENAMED.get(name, name)
        if name in wanted:
            diags.warn(loc, f"server.modules: {name} is listed twice (the second is ignored)")
        else:
            wanted.append(name)
    listed = set(wanted)
    if compat:
        wanted = _compat_modules(tree, wanted)
    plugins: list[type[modules.Plugin]] = []
    for name in wanted:
        if name in catalog.BUILT_INTO_CORE:
            continue
        if name in catalog.TLS_MODULES:
            if not catalog.TLS.present():
                diags.error(loc, f"server.modules: {name}: TLS is not part of this build")
            continue
        comp = catalog.module(name)
        if comp is not None and comp.provider is not None and comp.present():
            plugins.append(modules.load(comp.provider))
        elif name not in listed:
            continue  # lighttpd's compat additions are skipped when unavailable
        elif comp is None:
            diags.error(loc, f"server.modules: unknown module {name} (emberd -V lists the "
                        "modules of this build)")
        elif comp.provider is None:
            diags.error(loc, f"server.modules: {name} is not supported by emberd "
                        f"({comp.note})")
        else:
            diags.error(loc, f"server.modules: {name} is not part of this build "
                        "(it was left out when emberd was built)")
    return plugins


def _compat_modules(tree: ConfigTree, wanted: list[str]) -> list[str]:
    """lighttpd's server.compat-module-load additions (configfile.c)."""
    out = list(wanted)

    def enabled(*keys: str) -> bool:
        return any(
            v not in ("", 0) and not (isinstance(v, str) and v.lower() in
                                      ("disable", "disabled", "false", "0"))
            for k in keys for v in _any_block_value(tree, k)
        )

    if "mod_indexfile" not in out and enabled("index-file.names", "server.indexfiles"):
        out.insert(0, "mod_indexfile")
    if "mod_dirlisting" not in out and enabled("dir-listing.activate", "server.dir-listing"):
        out.append("mod_dirlisting")
    if "mod_staticfile" not in out:
        out.append("mod_staticfile")
    if any(n.startswith("mod_authn_") for n in out) and "mod_auth" not in out:
        out.insert(0, "mod_auth")
    if "mod_auth" in out and "mod_authn_file" not in out and any(
        v in ("htpasswd", "htdigest", "plain") for v in _any_block_value(tree, "auth.backend")
    ):
        out.append("mod_authn_file")
    return out


def _schema(plugins: list[type[modules.Plugin]]) -> dict[str, Directive]:
    schema = {d.key: d for d in CORE}
    flags = tuple(f for p in plugins for f in p.feature_flags)
    if flags:
        ff = schema["server.feature-flags"]
        schema[ff.key] = dataclasses.replace(ff, subkeys=ff.subkeys + flags)
    for p in plugins:
        for d in p.directives:
            if d.key in schema:
                raise RuntimeError(f"{p.name} redefines {d.key}")  # a bug, not a config error
            schema[d.key] = d
    return schema


def _unknown_key(key: str, loc: Location, loaded: set[str], schema: Mapping[str, Directive],
                 diags: Diagnostics) -> None:
    owner = catalog.owner_of(key)
    if owner is None:
        import difflib  # only on this rare path

        close = difflib.get_close_matches(key, list(schema), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        diags.warn(loc, f"unknown config-key: {key} (ignored){hint}")
    elif owner.provider is None:
        diags.error(loc, f"{key}: {owner.name} is not supported by emberd ({owner.note})")
    elif not owner.present():
        what = "TLS support" if owner is catalog.TLS else owner.name
        diags.error(loc, f"{key}: {what} is not part of this build "
                    "(it was left out when emberd was built)")
    elif owner.name not in loaded:
        diags.warn(loc, f"{key} is ignored: {owner.name} is not loaded "
                   "(add it to server.modules)")
    else:
        diags.warn(loc, f"unknown config-key: {key} (ignored; {owner.name} has no such key)")


def _scope_problem(d: Directive, block: Block) -> str | None:
    if block.parent is None or d.scope is Scope.REQUEST:
        return None
    if d.scope is Scope.SERVER:
        return f"{d.key} applies to the whole server; set it outside conditions"
    c = block.condition
    if c is not None and c.field is Field.SERVER_SOCKET and c.op is Op.EQ:
        return None
    return (f"{d.key} applies to a listening socket; set it globally or in a "
            '$SERVER["socket"] == "..." block')


def _check_block(block: Block, schema: Mapping[str, Directive], loaded: set[str],
                 diags: Diagnostics) -> dict[str, Any]:
    typed: dict[str, Any] = {}
    for key, a in block.values.items():
        if key.startswith("var."):
            continue
        d = schema.get(key)
        if d is None:
            _unknown_key(key, a.loc, loaded, schema, diags)
            continue
        problem = _scope_problem(d, block)
        if problem is not None:
            diags.error(a.loc, problem)
            continue
        try:
            typed[key] = coerce(d, a.value, functools.partial(diags.warn, a.loc))
        except ValueProblem as exc:
            diags.error(a.loc, f"{key}: {exc}")
    return typed


def _globals(schema: Mapping[str, Directive], explicit: dict[str, Any]) -> dict[str, Any]:
    """Every directive's global value: explicit, or its (possibly derived) default."""
    out: dict[str, Any] = {}
    busy: set[str] = set()

    def get(key: str) -> Any:
        if key in out:
            return out[key]
        d = schema[key]  # KeyError for a directive this build does not know
        if key in busy:
            raise RuntimeError(f"default of {key} depends on itself")
        busy.add(key)
        if key in explicit:
            value = explicit[key]
            if d.subkeys:
                value = {**resolve_default(d, get), **value}
        else:
            value = resolve_default(d, get)
        busy.discard(key)
        out[key] = value
        return value

    for key in schema:
        get(key)
    return out


def _cross_check(values: dict[str, Any], explicit: set[str], diags: Diagnostics,
                 loc_of: Callable[[str], Location | None]) -> None:
    if not values["server.document-root"] and loc_of("server.document-root") is None:
        diags.error(loc_of("server.document-root"), "server.document-root is not set")
    factor = 10 if values["server.feature-flags"]["server.h2proto"] else 2
    limit = max(1, values["server.max-fds"] // factor)
    if "server.max-connections" in explicit and values["server.max-connections"] > limit:
        diags.warn(loc_of("server.max-connections"),
                   f"reducing server.max-connections ({values['server.max-connections']}) to "
                   f"1/{factor} of server.max-fds ({values['server.max-fds']}): {limit}")
        values["server.max-connections"] = limit
    if values["emberd.chunk-slab-size"] < values["server.chunkqueue-chunk-sz"]:
        diags.error(loc_of("emberd.chunk-slab-size"),
                    "emberd.chunk-slab-size must be at least server.chunkqueue-chunk-sz "
                    f"({values['server.chunkqueue-chunk-sz']} bytes)")


def compile_tree(tree: ConfigTree, path: str) -> ServerConfig:
    diags = Diagnostics()
    core = {d.key: d for d in CORE}
    root = tree.root

    compat_a = root.values.get("server.compat-module-load")
    compat = True if compat_a is None else to_bool(compat_a.value)
    if compat is None:
        assert compat_a is not None
        diags.error(compat_a.loc, 'server.compat-module-load: expected "enable" or "disable"')
        compat = True
    plugins = _resolve_modules(tree, core["server.modules"], compat, diags)
    schema = _schema(plugins)
    loaded = {p.name for p in plugins}

    blocks: list[CompiledBlock] = []
    for block in tree.blocks:
        typed = _check_block(block, schema, loaded, diags)
        blocks.append(CompiledBlock(
            block.index, block.condition,
            block.parent.index if block.parent is not None else -1,
            block.prev.index if block.prev is not None else -1,
            typed,
        ))
    explicit = blocks[0].values
    blocks[0].values = {}
    values = _globals(schema, explicit)

    def loc_of(key: str) -> Location | None:
        a = root.values.get(key)
        return a.loc if a is not None else None

    _cross_check(values, set(explicit), diags, loc_of)
    config = ServerConfig(path, tree, schema, plugins, values, set(explicit), blocks,
                          diags.warnings)
    for p in plugins:
        p.check(config, diags)
    order = {name: i for i, name in enumerate(tree.sources)}
    diags.errors.sort(key=lambda e: (order.get(e.location.source, -1), e.location.line,
                                     e.location.column) if e.location else (-1, 0, 0))
    diags.raise_if_errors()
    return config


def load_table(path: str, table: tuple[Directive, ...], text: str | None = None) -> dict[str, Any]:
    """A configuration for another program in lighttpd syntax (emberd-control's).

    Only the directives of ``table`` are allowed, outside conditions; an
    unknown key is an error, not a warning, since nothing else reads the file.
    Returns every directive's value, defaults included.
    """
    tree = parse(path, text)
    schema = {d.key: d for d in table}
    diags = Diagnostics()
    for block in tree.blocks[1:]:
        diags.error(block.loc, f"{path} takes no conditions")
    explicit: dict[str, Any] = {}
    for key, a in tree.root.values.items():
        if key.startswith("var."):
            continue
        d = schema.get(key)
        if d is None:
            diags.error(a.loc, f"unknown key {key}; known keys: " + ", ".join(sorted(schema)))
            continue
        try:
            explicit[key] = coerce(d, a.value, functools.partial(diags.warn, a.loc))
        except ValueProblem as exc:
            diags.error(a.loc, f"{key}: {exc}")
    diags.raise_if_errors()
    return _globals(schema, explicit)

#!/usr/bin/env python3
"""Which optional parts of emberd a device build keeps: one implementation.

Used by every way emberd is built for a device:

* Buildroot: emberd.mk's post-install hook runs ``trim --kconfig .config``
  on the target's site-packages (the choices made in Config.in);
* other build systems (Yocto, OpenWrt, ...): ``make install`` runs
  ``install``, which copies src/emberd and its console scripts under
  DESTDIR and then trims the copy in the same way;
* Buildroot's post-build script runs ``check-config`` on the device
  configuration, so an image never names a module it left out.

What is optional:

* the modules, one file each in emberd/modules/ (named after lighttpd's:
  mod_fastcgi is modules/fastcgi.py).  A left-out module's file is
  deleted.  emberd finds its modules by their files
  (emberd.config.catalog), so ``emberd -V`` lists what is left and a
  configuration that names a deleted module fails at start with "not part
  of this build": no list has to be written for emberd.  The list is
  printed in the build log instead.  A module that imports another one
  (mod_authn_file imports mod_auth) needs it kept; a file outside
  modules/ that imports a deleted module (emberd/passwd.py) is deleted
  too, with its console script;
* TLS: emberd/tls/ is deleted with "none"; "mbedtls" and "openssl" keep
  it (the library, python-mbedtls or Python's ssl, is the build system's
  business);
* emberd-control: emberd/control/ and its console script.

Needs Python 3.11 or newer and nothing else (Buildroot's host python3).
"""

from __future__ import annotations

import argparse
import ast
import base64
import compileall
import configparser
import hashlib
import os
import py_compile
import re
import shutil
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "emberd"
# this file is buildroot/scripts/emberd_select.py in the emberd project
PROJECT = Path(__file__).resolve().parents[2]
TLS_CHOICES = ("none", "mbedtls", "openssl")
# Kconfig symbols of buildroot/package/emberd/Config.in
KCONFIG_MODULE = "BR2_PACKAGE_EMBERD_MOD_"
KCONFIG_TLS = "BR2_PACKAGE_EMBERD_TLS_"
KCONFIG_CONTROL = "BR2_PACKAGE_EMBERD_CONTROL"


class SelectionError(Exception):
    """A selection that cannot be built (the message says why)."""


@dataclass(frozen=True)
class Selection:
    modules: frozenset[str] | None  # short names; None: every module
    tls: str = "mbedtls"
    control: bool = True


@dataclass
class Plan:
    keep: list[str]  # the modules built in (short names)
    drop: list[str]  # the modules left out
    paths: list[Path] = field(default_factory=list)  # to delete
    summary: str = ""


# -- reading a selection ------------------------------------------------------

def parse_modules(text: str) -> frozenset[str] | None:
    """MODULES of ``make install``: "all", "none" or names (mod_ optional)."""
    words = text.replace(",", " ").split()
    if not words:
        raise SelectionError(
            "no modules named (MODULES=all keeps every module, "
            "MODULES=none leaves all out)")
    if words == ["all"]:
        return None
    if words == ["none"]:
        return frozenset()
    return frozenset(w.removeprefix("mod_") for w in words)


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("y", "yes", "1", "true", "on"):
        return True
    if value in ("n", "no", "0", "false", "off", ""):
        return False
    raise SelectionError(f"expected yes or no, not {text!r}")


def from_kconfig(path: Path) -> Selection:
    """The choices of buildroot/package/emberd/Config.in in a .config."""
    symbols = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("BR2_PACKAGE_EMBERD"):
            symbols[name] = value.strip('"')
    if symbols.get("BR2_PACKAGE_EMBERD") != "y":
        raise SelectionError(f"{path}: BR2_PACKAGE_EMBERD is not set")
    modules = frozenset(
        name.removeprefix(KCONFIG_MODULE).lower()
        for name, value in symbols.items()
        if name.startswith(KCONFIG_MODULE) and value == "y")
    tls = [name.removeprefix(KCONFIG_TLS).lower()
           for name, value in symbols.items()
           if name.startswith(KCONFIG_TLS) and value == "y"]
    if len(tls) != 1 or tls[0] not in TLS_CHOICES:
        raise SelectionError(f"{path}: no valid {KCONFIG_TLS}* choice")
    return Selection(modules, tls[0],
                     symbols.get(KCONFIG_CONTROL) == "y")


# -- what a tree holds --------------------------------------------------------

def module_names(pkg: Path) -> list[str]:
    """The modules in ``pkg``/modules (``.py``, or ``.pyc`` once compiled)."""
    names = {p.stem for p in (pkg / "modules").glob("*.py")}
    names |= {p.stem for p in (pkg / "modules").glob("*.pyc")}
    names.discard("__init__")
    return sorted(names)


def _dotted(pkg: Path, path: Path) -> str:
    rel = path.relative_to(pkg.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(pkg: Path, path: Path) -> set[str]:
    """Absolute names a file imports (``from .auth import x`` included)."""
    me = _dotted(pkg, path)
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = me.split(".")
                if not is_pkg:
                    base.pop()
                base = base[:len(base) - node.level + 1]
                prefix = ".".join(base)
                mod = f"{prefix}.{node.module}" if node.module else prefix
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{alias.name}" for alias in node.names)
    return found


def _modules_in(names: Iterable[str]) -> set[str]:
    prefix = f"{PACKAGE}.modules."
    return {n[len(prefix):].split(".")[0] for n in names
            if n.startswith(prefix)}


def module_requires(pkg: Path) -> dict[str, set[str]]:
    """For each module, the other modules its file imports."""
    names = module_names(pkg)
    requires = {}
    for name in names:
        src = pkg / "modules" / f"{name}.py"
        if not src.exists():
            raise SelectionError(
                f"{src} is missing: select before byte-compiling")
        # (``from . import Plugin`` names emberd.modules.Plugin: not a file)
        found = _modules_in(imports(pkg, src)) & set(names)
        requires[name] = found - {name}
    return requires


class _CaseParser(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # script names keep their case


def entry_points(site: Path) -> dict[str, str]:
    """Console scripts of the installed emberd: name -> module."""
    scripts: dict[str, str] = {}
    for ep in sorted(site.glob(f"{PACKAGE}-*.dist-info/entry_points.txt")):
        parser = _CaseParser(delimiters=("=",), interpolation=None)
        parser.read(ep)
        if parser.has_section("console_scripts"):
            for name, target in parser.items("console_scripts"):
                scripts[name] = target.split(":")[0].strip()
    return scripts


# -- the selection ------------------------------------------------------------

def resolve(sel: Selection, available: list[str],
            requires: dict[str, set[str]]) -> tuple[list[str], list[str]]:
    """(kept, left out) modules; an error for unknown or unmet names."""
    wanted = set(available) if sel.modules is None else set(sel.modules)
    unknown = sorted(wanted - set(available))
    if unknown:
        raise SelectionError(
            "no such module: " + ", ".join(f"mod_{n}" for n in unknown)
            + " (emberd has " + " ".join(f"mod_{n}" for n in available)
            + ")")
    for name in sorted(wanted):
        missing = sorted(requires.get(name, set()) - wanted)
        if missing:
            raise SelectionError(
                f"mod_{name} needs "
                + ", ".join(f"mod_{m}" for m in missing)
                + f": select it too or leave mod_{name} out")
    keep = [n for n in available if n in wanted]
    drop = [n for n in available if n not in wanted]
    return keep, drop


def _module_files(pkg: Path, name: str) -> Iterator[Path]:
    yield pkg / "modules" / f"{name}.py"
    yield pkg / "modules" / f"{name}.pyc"
    yield from (pkg / "modules" / "__pycache__").glob(f"{name}.*.pyc")


def _file_of(pkg: Path, dotted: str) -> Path | None:
    rel = Path(*dotted.split(".")[1:])
    for candidate in (pkg / rel.with_suffix(".py"),
                      pkg / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def plan(site: Path, bindir: Path | None, sel: Selection) -> Plan:
    """What to delete from an installed emberd for ``sel``."""
    pkg = site / PACKAGE
    if not (pkg / "__init__.py").exists():
        raise SelectionError(f"{pkg} holds no emberd sources")
    if sel.tls not in TLS_CHOICES:
        raise SelectionError(f"TLS must be one of {', '.join(TLS_CHOICES)}"
                             f", not {sel.tls!r}")
    available = module_names(pkg)
    keep, drop = resolve(sel, available, module_requires(pkg))
    result = Plan(keep, drop)
    for name in drop:
        result.paths.extend(p for p in _module_files(pkg, name) if p.exists())
    dirs = []
    if sel.tls == "none":
        dirs.append(pkg / "tls")
    if not sel.control:
        dirs.append(pkg / "control")
    result.paths.extend(d for d in dirs if d.exists())

    scripts = entry_points(site)
    gone = set(drop)
    entry_files = {}
    for script, module in scripts.items():
        path = _file_of(pkg, module)
        if path is not None:
            entry_files[path] = script
    for path in sorted(pkg.rglob("*.py")):
        if "modules" in path.relative_to(pkg).parts[:1]:
            continue
        if any(path.is_relative_to(d) for d in dirs):
            continue
        needs = _modules_in(imports(pkg, path)) & gone
        if not needs:
            continue
        if path not in entry_files:
            raise SelectionError(
                f"{path.relative_to(site)} imports the left-out "
                + ", ".join(f"mod_{n}" for n in sorted(needs))
                + ": emberd must not need a module by name")
        result.paths.append(path)
        legacy = path.with_suffix(".pyc")
        if legacy.exists():
            result.paths.append(legacy)
    for script, module in scripts.items():
        path = _file_of(pkg, module)
        removed = path is None or path in result.paths or any(
            path.is_relative_to(d) for d in dirs)
        if removed and bindir is not None and (bindir / script).exists():
            result.paths.append(bindir / script)

    def mods(names: list[str]) -> str:
        return " ".join(f"mod_{n}" for n in names) or "(none)"

    result.summary = (
        f"emberd: modules built in: {mods(keep)}\n"
        f"emberd: modules left out: {mods(drop)}\n"
        f"emberd: TLS: {sel.tls}; emberd-control: "
        f"{'yes' if sel.control else 'no'}")
    return result


def apply(result: Plan) -> None:
    for path in result.paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def trim(site: Path, bindir: Path | None, sel: Selection) -> Plan:
    result = plan(site, bindir, sel)
    apply(result)
    return result


# -- checking a device configuration ------------------------------------------

_MODULES_ASSIGNMENT = re.compile(
    r"^[ \t]*server\.modules[ \t]*(?::=|\+=|=)[ \t]*\((.*?)\)",
    re.MULTILINE | re.DOTALL)
_SSL_KEY = re.compile(r"^[ \t]*ssl\.[a-z.-]+[ \t]*(?::=|\+=|=)", re.MULTILINE)
_TLS_MODULES = ("mod_openssl", "mod_mbedtls", "mod_gnutls", "mod_wolfssl",
                "mod_nss")


def _uncommented(text: str) -> str:
    out = []
    for line in text.splitlines():
        quoted = False
        for i, ch in enumerate(line):
            if ch == '"':
                quoted = not quoted
            elif ch == "#" and not quoted:
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def named_modules(text: str) -> list[str]:
    """Module names in the server.modules lists of a configuration."""
    names = []
    for match in _MODULES_ASSIGNMENT.finditer(_uncommented(text)):
        names.extend(re.findall(r'"([^"]+)"', match.group(1)))
    return names


def check_config(conf: Path, site: Path, source: Path) -> list[str]:
    """Problems of ``conf`` with the (trimmed) emberd in ``site``."""
    text = _uncommented(conf.read_text())
    known = set(module_names(source))
    present = set(module_names(site / PACKAGE))
    problems = []
    for name in named_modules(text):
        short = name.removeprefix("mod_")
        if short in known and short not in present:
            problems.append(
                f"{conf}: server.modules names {name}, which this build "
                "leaves out: emberd would refuse to start")
    has_tls = (site / PACKAGE / "tls").is_dir()
    tls_named = [m for m in named_modules(text) if m in _TLS_MODULES]
    if not has_tls and (_SSL_KEY.search(text) or tls_named):
        problems.append(
            f"{conf}: the configuration uses TLS (ssl.* or a TLS module), "
            "which this build leaves out: emberd would refuse to start")
    return problems


# -- make install -------------------------------------------------------------

def _record_line(path: Path, site: Path) -> str:
    data = path.read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    rel = Path(os.path.relpath(path, site)).as_posix()
    return f"{rel},sha256={digest.rstrip(b'=').decode()},{len(data)}"


def install(project: Path, destdir: Path, prefix: str, site_dir: str,
            interpreter: str, sel: Selection, pyc_only: bool) -> Plan:
    """Copy emberd under ``destdir`` as a wheel would install it; trim it."""
    source = project / "src" / PACKAGE
    # refuse a bad selection before anything is written
    resolve(sel, module_names(source), module_requires(source))
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    proj = meta["project"]
    name, version = proj["name"], proj["version"]
    site = destdir / site_dir.lstrip("/")
    bindir = destdir / prefix.lstrip("/") / "bin"
    pkg = site / PACKAGE
    if pkg.exists():
        shutil.rmtree(pkg)
    for old in site.glob(f"{name}-*.dist-info"):
        shutil.rmtree(old)
    shutil.copytree(source, pkg, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.pyo"))

    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}",
             f"Summary: {proj.get('description', '')}"]
    if "requires-python" in proj:
        lines.append(f"Requires-Python: {proj['requires-python']}")
    lines += [f"Requires-Dist: {d}" for d in proj.get("dependencies", [])]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    scripts = proj.get("scripts", {})
    (info / "entry_points.txt").write_text(
        "[console_scripts]\n"
        + "".join(f"{k} = {v}\n" for k, v in scripts.items()))
    (info / "INSTALLER").write_text("emberd_select\n")

    bindir.mkdir(parents=True, exist_ok=True)
    for script, target in scripts.items():
        module, _, func = target.partition(":")
        launcher = bindir / script
        launcher.write_text(
            f"#!{interpreter}\n"
            "import sys\n"
            f"from {module} import {func}\n"
            "if __name__ == \"__main__\":\n"
            f"    sys.exit({func}())\n")
        launcher.chmod(0o755)

    result = trim(site, bindir, sel)
    if pyc_only:
        ok = compileall.compile_dir(
            pkg, quiet=1, legacy=True, ddir=str(Path(site_dir) / PACKAGE),
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        if not ok:
            raise SelectionError("byte-compiling failed")
        for src in pkg.rglob("*.py"):
            src.unlink()
    files = [p for p in sorted(pkg.rglob("*")) if p.is_file()]
    files += sorted(p for p in info.iterdir() if p.name != "RECORD")
    files += [bindir / s for s in scripts if (bindir / s).exists()]
    record = [_record_line(p, site) for p in files]
    record.append(f"{info.name}/RECORD,,")
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return result


# -- command line -------------------------------------------------------------

def _selection(args: argparse.Namespace) -> Selection:
    if getattr(args, "kconfig", None):
        return from_kconfig(Path(args.kconfig))
    tls = args.tls.strip().lower()
    if tls not in TLS_CHOICES:
        raise SelectionError(f"TLS must be one of {', '.join(TLS_CHOICES)}"
                             f", not {args.tls!r}")
    return Selection(parse_modules(args.modules), tls,
                     parse_bool(args.control))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="emberd_select.py",
        description="Keep the chosen modules, TLS and emberd-control of "
        "an emberd installation and delete the rest.")
    sub = ap.add_subparsers(dest="command", required=True)

    def choices(p: argparse.ArgumentParser) -> None:
        p.add_argument("--modules", default="all",
                       help='"all", "none" or module names, e.g. '
                       '"staticfile indexfile" (default: all)')
        p.add_argument("--tls", default="mbedtls",
                       help="none, mbedtls or openssl (default: mbedtls)")
        p.add_argument("--control", default="yes",
                       help="keep emberd-control: yes or no (default: yes)")

    p = sub.add_parser("trim", help="trim an installed emberd in place")
    p.add_argument("--site", required=True, help="the site-packages dir")
    p.add_argument("--bindir", help="where the console scripts are")
    p.add_argument("--kconfig", help="read the choices from this .config")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would be deleted")
    choices(p)

    p = sub.add_parser("install", help="install a trimmed emberd")
    p.add_argument("--destdir", required=True)
    p.add_argument("--prefix", default="/usr")
    p.add_argument("--python-version",
                   default=f"{sys.version_info[0]}.{sys.version_info[1]}",
                   help="the target's Python X.Y (default: this one's)")
    p.add_argument("--site-dir",
                   help="default: PREFIX/lib/pythonX.Y/site-packages")
    p.add_argument("--interpreter", default="/usr/bin/python3",
                   help="the console scripts' #! line")
    p.add_argument("--pyc-only", action="store_true",
                   help="install .pyc files only (this Python must be the "
                   "target's version)")
    choices(p)

    p = sub.add_parser("check-config",
                       help="does a configuration name left-out parts?")
    p.add_argument("--site", required=True, help="the site-packages dir")
    p.add_argument("--source", default=str(PROJECT / "src" / PACKAGE),
                   help="emberd's sources: every module there is")
    p.add_argument("conf", nargs="+")

    args = ap.parse_args(argv)
    try:
        if args.command == "check-config":
            problems = []
            for conf in args.conf:
                problems += check_config(Path(conf), Path(args.site),
                                         Path(args.source))
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            return 1 if problems else 0
        sel = _selection(args)
        if args.command == "trim":
            bindir = Path(args.bindir) if args.bindir else None
            if args.dry_run:
                result = plan(Path(args.site), bindir, sel)
                for path in result.paths:
                    print(f"would delete {path}")
            else:
                result = trim(Path(args.site), bindir, sel)
        else:
            here = f"{sys.version_info[0]}.{sys.version_info[1]}"
            if args.pyc_only and args.python_version != here:
                raise SelectionError(
                    f"--pyc-only needs Python {args.python_version} to "
                    f"compile (this is {here}): run it with that python")
            site_dir = args.site_dir or (
                f"{args.prefix.rstrip('/')}/lib/"
                f"python{args.python_version}/site-packages")
            result = install(PROJECT, Path(args.destdir), args.prefix,
                             site_dir, args.interpreter, sel, args.pyc_only)
    except (SelectionError, OSError, KeyError) as exc:
        print(f"emberd_select.py: error: {exc}", file=sys.stderr)
        return 1
    print(result.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``emberd`` command line, with lighttpd's options.

    emberd -f FILE [-D] [-t | -tt | -p] [--memory-budget]
    emberd -v | -V | -h

``-f -`` reads the configuration from standard input.  ``-t`` checks the
syntax, ``-tt`` also checks every value and module, ``-p`` prints the
effective configuration with defaults.  Messages about the configuration go
to standard error as ``file:line:column: error: ...``; the exit status is 1
for a bad configuration and 2 for bad usage.

Options are parsed by hand (getopt style: ``-tt``, ``-Df FILE``) rather than
with ``argparse`` or ``getopt`` (which imports gettext): this module is
imported by the server process, and every module imported at start-up stays
in its RSS.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import NAME, __version__
from .config import catalog
from .config.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from .config.settings import ServerConfig

USAGE = f"""usage: {NAME} -f FILE [-D] [-t | -tt | -p]
       {NAME} -v | -V | -h

  -f FILE   configuration file (- reads standard input)
  -D        stay in the foreground (default: run in the background)
  -t        check the configuration syntax, then exit
  -tt       also check values and modules, then exit
  -p        print the effective configuration (with defaults), then exit
  --memory-budget  print the most memory the configuration allows, then exit
  -v        print the version
  -V        print the version, built-in features and modules
  -h        print this help
"""

EXIT_CONFIG = 1
EXIT_USAGE = 2


def version_line() -> str:
    py = ".".join(str(v) for v in sys.version_info[:3])
    return f"{NAME}/{__version__} (Python {py}) - a small-footprint web server for embedded Linux"


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _module_present(name: str) -> bool:
    comp = catalog.module(name)
    return comp is not None and comp.present()


def _tls_backend(name: str) -> str:
    """How a TLS backend is chosen, without importing its library (-V)."""
    if name == "openssl":
        return ' (ssl.backend = "openssl": Python\'s ssl module, loads libssl)'
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = f"python-mbedtls {version('python-mbedtls')}"
    except PackageNotFoundError:
        pkg = "python-mbedtls"
    return f' (ssl.backend = "mbedtls", the default: {pkg})'


def features() -> list[tuple[bool, str]]:
    """Build features in lighttpd's ``-V`` format (``+ name`` / ``- name``)."""
    tls = catalog.TLS.present()
    return [
        (socket.has_ipv6, "IPv6 support"),
        (_module_present("mod_deflate") and _has("zlib"), "zlib support"),
        (True, "PCRE support (regular expressions through Python's re)"),
        (_has("h2"), "HTTP/2 support"),
        (tls and _has("mbedtls"), "mbedTLS support" + _tls_backend("mbedtls")),
        (tls and _has("_ssl"), "OpenSSL support" + _tls_backend("openssl")),
    ]


def print_features(out: list[str]) -> None:
    out.append(version_line() + "\n\nFeatures:\n\n")
    out.extend(f"\t{'+' if ok else '-'} {name}\n" for ok, name in features())
    out.append("\nModules:\n\n")
    for comp in catalog.emberd_modules():
        if comp.present():
            out.append(f"\t+ {comp.name}\n")
        else:
            out.append(f"\t- {comp.name} (left out of this build)\n")


def report(err: ConfigError) -> None:
    errors = err.errors if isinstance(err, ConfigErrors) else [err]
    for e in errors:
        where = f"{e.location}: " if e.location else ""
        sys.stderr.write(f"{where}error: {e.message}\n")


def warn_all(warnings: Sequence[ConfigError]) -> None:
    for w in warnings:
        where = f"{w.location}: " if w.location else ""
        sys.stderr.write(f"{where}warning: {w.message}\n")


def _read_stdin() -> str:
    data = sys.stdin.buffer.read()
    return data.decode("utf-8", "surrogateescape")


class UsageError(Exception):
    pass


SHORT_FLAGS = "DtpvVh"
SHORT_WITH_VALUE = "f"
LONG_FLAGS = ("--memory-budget",)


def parse_args(args: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """getopt-style options: ``[("-t", ""), ("-f", "x.conf")]`` and the other arguments."""
    opts: list[tuple[str, str]] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in LONG_FLAGS:
            opts.append((arg, ""))
            continue
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            continue
        for j in range(1, len(arg)):
            c = arg[j]
            if c in SHORT_WITH_VALUE:
                value = arg[j + 1 :]
                if not value:
                    if i >= len(args):
                        raise UsageError(f"option -{c} requires an argument")
                    value = args[i]
                    i += 1
                opts.append(("-" + c, value))
                break
            if c not in SHORT_FLAGS:
                raise UsageError(f"option -{c} not recognized")
            opts.append(("-" + c, ""))
    return opts, rest


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        opts, rest = parse_args(args)
    except UsageError as exc:
        sys.stderr.write(f"{NAME}: {exc}\n{USAGE}")
        return EXIT_USAGE
    if rest:
        sys.stderr.write(f"{NAME}: unexpected argument {rest[0]!r}\n{USAGE}")
        return EXIT_USAGE
    path: str | None = None
    test = 0
    print_config = foreground = budget = False
    for opt, value in opts:
        if opt == "-f":
            path = value
        elif opt == "-D":
            foreground = True
        elif opt == "-t":
            test += 1
        elif opt == "-p":
            print_config = True
        elif opt == "--memory-budget":
            budget = True
        elif opt == "-v":
            sys.stdout.write(version_line() + "\n")
            return 0
        elif opt == "-V":
            out: list[str] = []
            print_features(out)
            sys.stdout.write("".join(out))
            return 0
        else:
            sys.stdout.write(USAGE)
            return 0
    if path is None:
        sys.stderr.write(f"{NAME}: no configuration file given (use -f FILE)\n{USAGE}")
        return EXIT_USAGE
    text = _read_stdin() if path == "-" else None

    from .config.loader import compile_tree
    from .config.parser import parse

    try:
        tree = parse(path, text)
        if test == 1 and not print_config:
            sys.stdout.write("Syntax OK\n")
            return 0
        if not test and not print_config:
            keep_ssl_out()
        config = compile_tree(tree, path)
    except ConfigError as err:
        report(err)
        return EXIT_CONFIG
    warn_all(config.warnings)
    if print_config:
        from .config.printer import render

        sys.stdout.buffer.write(render(config).encode("utf-8", "surrogateescape"))
        return 0
    if test:
        if not _tls_files_ok(config):
            return EXIT_CONFIG
        sys.stdout.write("Syntax OK\n")
        return 0
    if budget:
        from .core.budget import report as budget_report

        sys.stdout.write(budget_report(config))
        return 0
    from .core.server import run

    return run(config, text, foreground)


def _tls_files_ok(config: ServerConfig) -> bool:
    """-tt opens certificates and keys as start-up would (lighttpd does the same)."""
    from .core.listeners import TlsListenError, config_tokens, tls_endpoints

    def warn(where: str, message: str) -> None:
        sys.stderr.write(f"warning: {message}\n")

    try:
        tls_endpoints(config, config_tokens(config), warn)
    except TlsListenError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return False
    return True


class _NoSSL:
    """A meta path finder that makes ``import ssl`` fail."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name in ("ssl", "_ssl"):
            raise ImportError(f"{name} is kept out of emberd (no TLS backend needs it)")


def keep_ssl_out() -> None:
    """Stop the stdlib ssl module from loading (and with it OpenSSL's libssl).

    ``import asyncio`` imports ssl when it can, which maps libssl and costs
    about 10 MB of RSS; asyncio works without it.  This must run before
    asyncio is imported.
    """
    if "ssl" not in sys.modules and not any(isinstance(f, _NoSSL) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoSSL())


if __name__ == "__main__":
    raise SystemExit(main())

"""Optional modules, one file each, named after lighttpd's (``mod_access`` -> ``access``).

A module is a Plugin subclass exported as ``PLUGIN`` from its file.  It
declares the directives it owns (they join the schema only when the module
is loaded through ``server.modules``) and implements the hooks it needs.
The core never imports a module by name: the configuration names them, and
a build may leave module files out (``emberd -V`` lists what is present).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..config.errors import Diagnostics
    from ..config.schema import Directive
    from ..config.settings import ServerConfig


class Plugin:
    """A module: its directive table and its hooks (all optional)."""

    name: ClassVar[str] = ""
    directives: ClassVar[tuple[Directive, ...]] = ()
    # extra keys of server.feature-flags that this module reads
    feature_flags: ClassVar[tuple[Directive, ...]] = ()

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        """Validate what one directive alone cannot (called by ``-tt`` and at start)."""


def present() -> list[str]:
    """The module files in this build, as lighttpd module names (``mod_access``)."""
    return sorted("mod_" + m.name for m in pkgutil.iter_modules(__path__) if not m.ispkg)


def load(provider: str) -> type[Plugin]:
    """Import a module file and return its plugin class."""
    module = importlib.import_module(provider)
    plugin: type[Plugin] = module.PLUGIN
    return plugin

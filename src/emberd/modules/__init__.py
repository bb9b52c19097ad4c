"""Optional modules, one file each, named after lighttpd's (``mod_access`` -> ``access``).

A module is a Plugin subclass exported as ``PLUGIN`` from its file.  It
declares the directives it owns (they join the schema only when the module
is loaded through ``server.modules``) and overrides the hooks it needs; the
request pipeline calls only overridden hooks, in ``server.modules`` order.
The core never imports a module by name: the configuration names them, and
a build may leave module files out (``emberd -V`` lists what is present).

Hooks, in the order a request meets them (lighttpd's names in brackets):

* ``uri_raw(req)`` -- the target as received [handle_uri_raw]: redirects, rewrites;
* ``uri_clean(req)`` -- the decoded, simplified path [handle_uri_clean]: access rules;
* ``physical(req)`` -- after the path is mapped under the document root
  [handle_physical]: aliases;
* ``subrequest(req)`` -- produce the response [handle_subrequest_start]: index
  files, static files, backends;
* ``response_start(req, resp)`` -- adjust response headers [handle_response_start];
* ``request_done(req, resp, sent)`` -- after the response went out, ``sent`` body
  bytes of it [handle_request_done]: access log;
* ``start()`` -- once serving begins (after privileges are dropped) or the
  configuration was reloaded: start backend processes;
* ``tick()`` -- once a second; ``reopen()`` -- on SIGHUP (log rotation);
  ``close()`` -- when the configuration is replaced.

A hook that returns a Response ends the request with it; None goes on.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ..config.errors import Diagnostics
    from ..config.schema import Directive
    from ..config.settings import ServerConfig
    from ..core.runtime import Runtime
    from ..http.message import Request, Response

HOOKS = ("uri_raw", "uri_clean", "physical", "subrequest", "response_start", "request_done",
         "tick", "reopen", "start")


class Plugin:
    """A module: its directive table and its hooks (all optional)."""

    name: ClassVar[str] = ""
    directives: ClassVar[tuple[Directive, ...]] = ()
    # extra keys of server.feature-flags that this module reads
    feature_flags: ClassVar[tuple[Directive, ...]] = ()

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        """Validate what one directive alone cannot (called by ``-tt`` and at start)."""

    def uri_raw(self, req: Request) -> Response | None:
        return None

    def uri_clean(self, req: Request) -> Response | None:
        return None

    def physical(self, req: Request) -> Response | None:
        return None

    def subrequest(self, req: Request) -> Response | None:
        return None

    def response_start(self, req: Request, resp: Response) -> None:
        return None

    def request_done(self, req: Request, resp: Response, sent: int) -> None:
        return None

    def tick(self) -> None:
        return None

    def reopen(self) -> None:
        return None

    def start(self) -> None:
        return None

    def close(self) -> None:
        return None

    def overrides(self, hook: str) -> bool:
        return getattr(type(self), hook) is not getattr(Plugin, hook)


def load(provider: str) -> type[Plugin]:
    """Import a module file and return its plugin class."""
    module = importlib.import_module(provider)
    plugin: type[Plugin] = module.PLUGIN
    return plugin

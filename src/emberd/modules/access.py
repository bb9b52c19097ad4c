"""mod_access: refuse (403) paths by suffix: ``url.access-deny`` / ``url.access-allow``.

With ``url.access-allow`` set, only paths ending with one of its suffixes
are served; otherwise paths ending with a ``url.access-deny`` suffix are
refused.  The check runs on the clean path and again after index files are
resolved, as lighttpd's does, so ``/dir/`` cannot reach a denied index.
"""

from __future__ import annotations

from ..config.schema import Directive, Scope, Type
from ..http.message import Request, Response
from . import Plugin


class Access(Plugin):
    name = "mod_access"
    directives = (
        Directive("url.access-deny", Type.LIST, Scope.REQUEST, (),
                  'path suffixes to refuse with 403 (e.g. "~", ".inc")', module=name),
        Directive("url.access-allow", Type.LIST, Scope.REQUEST, (),
                  "when set: only paths ending with one of these suffixes are served",
                  module=name),
    )

    def _check(self, req: Request) -> Response | None:
        conf = req.conf
        allow: tuple[str, ...] = conf["url.access-allow"]
        suffixes = allow or conf["url.access-deny"]
        if not suffixes:
            return None
        path = req.path
        if conf["server.force-lowercase-filenames"]:
            path = path.lower()
            suffixes = tuple(s.lower() for s in suffixes)
        if path.endswith(suffixes) == bool(allow):
            return None
        if conf["debug.log-request-handling"]:
            self.rt.log("mod_access", f"access denied: {req.path}")
        return Response(403)

    def uri_clean(self, req: Request) -> Response | None:
        return self._check(req)

    def subrequest(self, req: Request) -> Response | None:
        return self._check(req)


PLUGIN = Access

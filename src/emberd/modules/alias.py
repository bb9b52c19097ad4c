"""mod_alias: ``alias.url = ( "/prefix" => "/fs/path" )`` maps a URL prefix to a directory.

The longest matching prefix wins.  A prefix that does not end in '/' only
matches at a segment boundary ("/img" matches "/img" and "/img/x", not
"/img../x" or "/images"): otherwise "/img../etc" would map to "/fs/path/../etc"
-- the escape lighttpd guards against in mod_alias.  The mapped path is
checked to stay under the alias target.
"""

from __future__ import annotations

import os

from ..config.errors import Diagnostics
from ..config.schema import Directive, Scope, Type
from ..config.settings import ServerConfig
from ..http.message import Request, Response
from . import Plugin


class Alias(Plugin):
    name = "mod_alias"
    directives = (
        Directive("alias.url", Type.KVSTRING, Scope.REQUEST, {},
                  "URL prefix => directory (or file) it maps to", module=name),
    )

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        for table, loc in config.assigned("alias.url"):
            for prefix in table:
                if not prefix.startswith("/"):
                    diags.error(loc, f'alias.url: "{prefix}" must start with "/"')

    def physical(self, req: Request) -> Response | None:
        table: dict[str, str] = req.conf["alias.url"]
        if not table:
            return None
        path = req.physical.rel_path
        best = ""
        for prefix in table:
            if len(prefix) > len(best) and path.startswith(prefix) and (
                prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"
            ):
                best = prefix
        if not best:
            return None
        target = table[best]
        rest = path[len(best):]
        if target.endswith("/") and rest.startswith("/"):
            rest = rest[1:]
        mapped = target + rest
        root = os.path.normpath(target)
        if os.path.normpath(mapped) != root and not os.path.normpath(mapped).startswith(
                root.rstrip("/") + "/"):
            self.rt.log("mod_alias", f"path escapes alias target: {req.path} -> {mapped}")
            return Response(403)
        ph = req.physical
        ph.doc_root = target
        ph.rel_path = path[len(best):] or "/"
        ph.path = mapped
        return None


PLUGIN = Alias

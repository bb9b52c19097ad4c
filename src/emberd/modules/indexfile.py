"""mod_indexfile: a path ending in '/' is served by the first index file that exists.

Names in ``index-file.names`` are looked up in the directory; a name that
starts with '/' is a path under the document root instead (e.g. one
``/index.php`` for every directory).  The request path is extended with the
name, so later modules and the access log see the file actually served.
"""

from __future__ import annotations

import stat

from ..config.schema import Directive, Scope, Type
from ..http.message import Request, Response
from . import Plugin


class IndexFile(Plugin):
    name = "mod_indexfile"
    directives = (
        Directive("index-file.names", Type.LIST, Scope.REQUEST, (),
                  'files tried, in order, for a path ending in "/"', module=name),
        Directive("server.indexfiles", Type.LIST, Scope.REQUEST, (),
                  "old name of index-file.names (used when that is empty)", module=name),
    )

    def subrequest(self, req: Request) -> Response | None:
        if not req.path.endswith("/"):
            return None
        conf = req.conf
        names = conf["index-file.names"] or conf["server.indexfiles"]
        ph = req.physical
        for name in names:
            candidate = ph.doc_root.rstrip("/") + name if name.startswith("/") else ph.path + name
            try:
                st = self.rt.statcache.stat(candidate)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                ph.path = candidate
                suffix = name if not name.startswith("/") else name[1:]
                ph.rel_path += suffix
                req.path = name if name.startswith("/") else req.path + name
                return None
        return None


PLUGIN = IndexFile

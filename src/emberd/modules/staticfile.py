"""mod_staticfile: answer GET, HEAD and POST with the file the path maps to."""

from __future__ import annotations

from ..config.schema import Directive, Scope, Type
from ..core.files import send_file
from ..http.message import Request, Response
from . import Plugin


class StaticFile(Plugin):
    name = "mod_staticfile"
    directives = (
        Directive("static-file.exclude-extensions", Type.LIST, Scope.REQUEST, (),
                  "files ending with one of these are never sent as they are (e.g. "
                  '".php"): a backend must handle them', module=name),
        Directive("static-file.etags", Type.BOOL, Scope.REQUEST, True,
                  "send ETags and honour If-None-Match", module=name),
        Directive("static-file.disable-pathinfo", Type.BOOL, Scope.REQUEST, False,
                  "do not serve a file when the path continues after it (PATH_INFO)",
                  module=name),
    )

    def subrequest(self, req: Request) -> Response | None:
        if req.method not in ("GET", "HEAD", "POST"):
            return None
        conf = req.conf
        path = req.physical.path
        if path.endswith(tuple(conf["static-file.exclude-extensions"])):
            return None
        if req.physical.path_info and conf["static-file.disable-pathinfo"]:
            return None
        return send_file(self.rt, req, path, conf["static-file.etags"])


PLUGIN = StaticFile

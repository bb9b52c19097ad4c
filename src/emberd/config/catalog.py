"""Which lighttpd modules and features exist, and which of them emberd has.

A lighttpd configuration names modules in ``server.modules`` and uses their
keys (``fastcgi.server``, ``cgi.assign``...).  emberd must never ignore such
a key silently: a key of a module that emberd implements but that was left
out of this build, or of a module emberd does not implement at all, is a
fatal error that says so.  This table maps module names and key prefixes to
what emberd provides; it is consulted only for keys no loaded schema knows,
so it does not import any module.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Component:
    name: str  # the lighttpd module name, or a feature name
    prefixes: tuple[str, ...]  # keys starting with one of these belong to it
    provider: str | None  # the emberd module that implements it; None: not supported
    note: str = ""  # for unsupported components: what to do instead

    def present(self) -> bool:
        """Whether this build contains the implementation (files can be left out)."""
        if self.provider is None:
            return False
        try:
            return importlib.util.find_spec(self.provider) is not None
        except ModuleNotFoundError:
            return False

    @property
    def short(self) -> str:
        """The module's file name in emberd.modules (``mod_access`` -> ``access``)."""
        return self.name.removeprefix("mod_")


def _m(name: str, *prefixes: str) -> Component:
    return Component(name, prefixes, f"emberd.modules.{name.removeprefix('mod_')}")


def _no(name: str, note: str, *prefixes: str) -> Component:
    return Component(name, prefixes, None, note)


_LATER = "not implemented in emberd yet"


TLS = Component("TLS (ssl.*)", ("ssl.",), "emberd.tls")
# lighttpd TLS options emberd does not have: an error that says so, not a silent ignore
_TLS_OPTION = "the TLS option"
TLS_UNSUPPORTED: tuple[Component, ...] = (
    _no(_TLS_OPTION, "revocation lists are not checked", "ssl.ca-crl-file",
        "ssl.verifyclient.ca-crl-file"),
    _no(_TLS_OPTION, "the CAs of ssl.ca-file are the ones named to clients", "ssl.ca-dn-file",
        "ssl.verifyclient.ca-dn-file"),
    _no(_TLS_OPTION, "use ssl.ca-file", "ssl.verifyclient.ca-file"),
    _no(_TLS_OPTION, "emberd issues no session tickets", "ssl.stek-file"),
    _no(_TLS_OPTION, "OCSP stapling is not supported", "ssl.stapling-file"),
    _no(_TLS_OPTION, "install certificates with an ACME client using HTTP-01",
        "ssl.acme-tls-1"),
    _no(_TLS_OPTION, "emberd always reads whole records", "ssl.read-ahead"),
    _no(_TLS_OPTION, "the library's key exchange groups are used", "ssl.dh-file",
        "ssl.ec-curve"),
    _no(_TLS_OPTION, "SSL 2 and 3 are never offered", "ssl.use-sslv2", "ssl.use-sslv3"),
    _no(_TLS_OPTION, "an obsolete OpenSSL option", "ssl.empty-fragments",
        "ssl.use-compression"),
    _no(_TLS_OPTION, "Encrypted Client Hello is not supported", "ssl.ech-"),
)

COMPONENTS: tuple[Component, ...] = (
    _m("mod_indexfile", "index-file.", "server.indexfiles"),
    _m("mod_staticfile", "static-file."),
    _no("mod_dirlisting", _LATER, "dir-listing.", "server.dir-listing"),
    _m("mod_access", "url.access-deny", "url.access-allow"),
    _m("mod_alias", "alias."),
    _m("mod_accesslog", "accesslog."),
    _m("mod_auth", "auth."),
    _m("mod_authn_file", "auth.backend.htpasswd.", "auth.backend.htdigest.",
       "auth.backend.plain."),
    _no("mod_redirect", _LATER, "url.redirect"),
    _no("mod_rewrite", _LATER, "url.rewrite"),
    _no("mod_setenv", _LATER, "setenv."),
    _no("mod_expire", _LATER, "expire."),
    _m("mod_status", "status."),
    _m("mod_fastcgi", "fastcgi.", "emberd.backend-"),
    _no("mod_deflate", _LATER, "deflate.", "compress."),
    TLS,
    *TLS_UNSUPPORTED,
    _no("mod_cgi", "run the program as a FastCGI backend (e.g. through fcgiwrap)", "cgi."),
    _no("mod_proxy", "put a reverse proxy in front of emberd or use FastCGI", "proxy."),
    _no("mod_scgi", "use FastCGI instead", "scgi."),
    _no("mod_webdav", "WebDAV is not part of emberd", "webdav."),
    _no("mod_ssi", "server-side includes are not part of emberd", "ssi."),
    _no("mod_magnet", "Lua scripting is not part of emberd", "magnet."),
    _no("mod_userdir", "map the paths with alias.url instead", "userdir."),
    _no("mod_simple_vhost", "use $HTTP[\"host\"] conditions with server.document-root",
        "simple-vhost."),
    _no("mod_evhost", "use $HTTP[\"host\"] conditions with server.document-root", "evhost."),
    _no("mod_vhostdb", "use $HTTP[\"host\"] conditions with server.document-root",
        "vhostdb."),
    _no("mod_extforward", "not part of emberd", "extforward."),
    _no("mod_wstunnel", "WebSockets are not part of emberd", "wstunnel."),
    _no("mod_sockproxy", "not part of emberd", "sockproxy."),
    _no("mod_ajp13", "not part of emberd", "ajp13."),
    _no("mod_authn_ldap", "use auth.backend htpasswd, htdigest or plain",
        "auth.backend.ldap."),
    _no("mod_authn_gssapi", "use auth.backend htpasswd, htdigest or plain",
        "auth.backend.gssapi."),
    _no("mod_authn_pam", "use auth.backend htpasswd, htdigest or plain", "auth.backend.pam."),
    _no("mod_authn_sasl", "use auth.backend htpasswd, htdigest or plain",
        "auth.backend.sasl."),
    _no("mod_authn_dbi", "use auth.backend htpasswd, htdigest or plain", "auth.backend.dbi."),
    _no("mod_authn_mysql", "use auth.backend htpasswd, htdigest or plain",
        "auth.backend.mysql."),
    _no("mod_rrdtool", "use the memory view of mod_status instead", "rrdtool."),
    _no("mod_secdownload", "not part of emberd", "secdownload."),
    _no("mod_evasive", "not part of emberd", "evasive."),
    _no("mod_usertrack", "not part of emberd", "usertrack."),
    _no("mod_uploadprogress", "not part of emberd", "upload-progress."),
    _no("mod_maxminddb", "not part of emberd", "maxminddb."),
    _no("mod_trigger_b4_dl", "not part of emberd", "trigger-before-download."),
    _no("mod_flv_streaming", "not part of emberd", "flv-streaming."),
    _no("mod_cml", "not part of emberd", "cml."),
)

# Names that are valid in server.modules without a file of their own.
BUILT_INTO_CORE = {
    "mod_h2": "HTTP/2 is part of emberd's core (see server.feature-flags server.h2proto)",
}
# lighttpd's TLS modules select a TLS library; emberd selects one with ssl.backend.
TLS_MODULES = frozenset(("mod_openssl", "mod_mbedtls", "mod_gnutls", "mod_wolfssl",
                         "mod_nss", "mod_boringssl"))
# lighttpd 1.4.56+ replaced mod_compress with mod_deflate.
RENAMED = {"mod_compress": "mod_deflate"}

_BY_NAME = {c.name: c for c in COMPONENTS}


def module(name: str) -> Component | None:
    return _BY_NAME.get(RENAMED.get(name, name))


def owner_of(key: str) -> Component | None:
    """The component whose key prefix is the longest match for ``key``."""
    best: Component | None = None
    best_len = -1
    for c in COMPONENTS:
        for p in c.prefixes:
            if key.startswith(p) and len(p) > best_len:
                best, best_len = c, len(p)
    return best


def emberd_modules() -> list[Component]:
    """The modules emberd implements (present in this build or not)."""
    return [c for c in COMPONENTS if c.provider and c.name.startswith("mod_")]

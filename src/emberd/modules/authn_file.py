"""mod_authn_file: the user files behind mod_auth -- htpasswd, htdigest, plain.

Theory of operation (lighttpd's mod_authn_file):

* The backends "htpasswd", "htdigest" and "plain" are handed to mod_auth
  through ``auth_backend(name)``.  Each reads its file when a request needs
  it (as lighttpd does: an edited file applies to the next request, and no
  password stays in memory), looks for the user's line and forgets the rest.
* Lines: ``user:hash`` (htpasswd), ``user:realm:H(user:realm:password)[:H(user:realm)]``
  (htdigest; MD5 lines have 32 hex digits, SHA-256 lines 64), ``user:password``
  (plain).  Blank lines, lines starting with '#' and lines over 1024 bytes
  are skipped; a trailing CR is ignored.
* htpasswd hashes are recognised by their prefix, in lighttpd's order:
  ``{SHA}`` (SHA-1, base64), ``$apr1$`` (Apache's MD5, computed here), and
  anything of 13 characters or more goes to crypt(3): bcrypt ``$2y$/$2b$/$2a$``,
  ``$5$``, ``$6$``, yescrypt ``$y$``, DES.  crypt(3) comes from libcrypt
  through ctypes (Python's ``crypt`` module is gone since 3.13); without it
  such hashes never match and the error log says why.
* A file that cannot be read is not "no users": mod_auth answers 503 and
  logs the command that creates the file (``emberd-passwd``).
* ``auth.backend.plain.groupfile`` (a key lighttpd accepts but never reads)
  gives ``group=`` rules their members, in Apache's AuthGroupFile format
  ``group: user1 user2``, for all three backends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ctypes
import os
import stat
from collections.abc import Callable, Iterator
from typing import ClassVar

from ..config.errors import Diagnostics
from ..config.schema import Directive, Scope, Type
from ..config.settings import ServerConfig
from ..core.runtime import Runtime
from ..digests import compare_digest, md5, sha1
from ..http.message import Request
from . import Plugin
from .auth import (
    BACKENDS,
    Backend,
    Misconfigured,
    Require,
    Unavailable,
    ha1,
    user_file_hint,
    userhash,
)

NAME = "mod_authn_file"
MAX_FILE = 4 << 20  # a user file larger than this is refused (lighttpd: 64 MiB)
MAX_LINE = 1024  # longer lines are skipped (lighttpd)
_HASH_OF_LENGTH = {32: "MD5", 64: "SHA-256"}  # hex digits of an htdigest line


# -- crypt(3) through ctypes ---------------------------------------------------------------


class CryptMissing(Exception):
    """No crypt(3) library: hashes that need it cannot be checked."""


CryptFn = Callable[[bytes, bytes], bytes | None]
_crypt_fn: list[CryptFn | None] = []  # [] until looked up; [None] when there is none
# libxcrypt's struct crypt_data is 32 KiB; glibc's old one 128 KiB; musl's 260 bytes
_CRYPT_RN_SIZE = 64 * 1024
_CRYPT_R_SIZE = 256 * 1024


def _libraries() -> Iterator[ctypes.CDLL]:
    # the usual sonames first: ctypes.util.find_library imports shutil, tempfile, bz2
    # and lzma (half a megabyte that stays) and needs ldconfig or a compiler
    for name in ("libcrypt.so.1", "libcrypt.so.2", "libcrypt.so"):
        try:
            yield ctypes.CDLL(name)
        except OSError:
            continue
    with contextlib.suppress(OSError):
        yield ctypes.CDLL(None)  # musl has crypt(3) in libc itself
    from ctypes.util import find_library

    found = find_library("crypt")
    if found:
        try:
            yield ctypes.CDLL(found)
        except OSError:
            return


def _bind(lib: ctypes.CDLL) -> CryptFn | None:
    if hasattr(lib, "crypt_rn"):  # libxcrypt: NULL on failure, the size is checked
        fn = lib.crypt_rn
        fn.restype = ctypes.c_char_p
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]

        def crypt_rn(password: bytes, setting: bytes) -> bytes | None:
            data = ctypes.create_string_buffer(_CRYPT_RN_SIZE)
            try:
                out: bytes | None = fn(password, setting, data, _CRYPT_RN_SIZE)
            finally:
                ctypes.memset(data, 0, _CRYPT_RN_SIZE)
            return out

        return crypt_rn
    if hasattr(lib, "crypt_r"):
        fn_r = lib.crypt_r
        fn_r.restype = ctypes.c_char_p
        fn_r.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p]

        def crypt_r(password: bytes, setting: bytes) -> bytes | None:
            data = ctypes.create_string_buffer(_CRYPT_R_SIZE)  # zeroed: "initialized" = 0
            try:
                out: bytes | None = fn_r(password, setting, data)
            finally:
                ctypes.memset(data, 0, _CRYPT_R_SIZE)
            return out

        return crypt_r
    if hasattr(lib, "crypt"):  # one thread calls it: its static buffer is safe
        fn_c = lib.crypt
        fn_c.restype = ctypes.c_char_p
        fn_c.argtypes = [ctypes.c_char_p, ctypes.c_char_p]

        def crypt_plain(password: bytes, setting: bytes) -> bytes | None:
            out: bytes | None = fn_c(password, setting)
            return out

        return crypt_plain
    return None


def _crypt() -> CryptFn | None:
    if not _crypt_fn:
        fn: CryptFn | None = None
        for lib in _libraries():
            fn = _bind(lib)
            if fn is not None:
                break
        _crypt_fn.append(fn)
    return _crypt_fn[0]


def crypt_available() -> bool:
    return _crypt() is not None


def crypt(password: bytes, setting: bytes) -> bytes | None:
    """crypt(3) of ``password`` with ``setting`` (a salt or a whole hash); None when the
    method is unknown or the input unusable; CryptMissing without a library."""
    fn = _crypt()
    if fn is None:
        raise CryptMissing("no crypt(3) library (libcrypt) was found")
    if b"\0" in password or b"\0" in setting:
        return None  # C would stop at the NUL: "pw\0x" must not pass for "pw"
    out = fn(password, setting)
    if not out or out.startswith(b"*"):  # "*0"/"*1": libxcrypt's failure tokens
        return None
    return out


# -- Apache's MD5 ($apr1$) -----------------------------------------------------------------

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _to64(value: int, n: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """Poul-Henning Kamp's MD5-crypt; ``magic`` b"$apr1$" is Apache's variant, b"$1$" the
    crypt(3) one.  ``salt`` stops at '$' or 8 characters."""
    salt = salt.split(b"$", 1)[0][:8]
    final = md5(password + salt + password, usedforsecurity=False).digest()
    ctx = md5(password + magic + salt, usedforsecurity=False)
    n = len(password)
    while n > 0:
        ctx.update(final[: min(16, n)])
        n -= 16
    i = len(password)
    while i:
        ctx.update(b"\0" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for i in range(1000):
        c = md5(usedforsecurity=False)
        c.update(password if i & 1 else final)
        if i % 3:
            c.update(salt)
        if i % 7:
            c.update(password)
        c.update(final if i & 1 else password)
        final = c.digest()
    f = final
    out = b"".join((
        _to64((f[0] << 16) | (f[6] << 8) | f[12], 4),
        _to64((f[1] << 16) | (f[7] << 8) | f[13], 4),
        _to64((f[2] << 16) | (f[8] << 8) | f[14], 4),
        _to64((f[3] << 16) | (f[9] << 8) | f[15], 4),
        _to64((f[4] << 16) | (f[10] << 8) | f[5], 4),
        _to64(f[11], 2),
    ))
    return magic + salt + b"$" + out


def verify_password(stored: bytes, password: bytes) -> bool:
    """Whether ``password`` matches an htpasswd hash (lighttpd's order of formats).

    CryptMissing when the hash needs crypt(3) and there is no library.
    """
    if stored.startswith(b"{SHA}"):
        try:
            want = base64.b64decode(stored[5:], validate=True)
        except (binascii.Error, ValueError):
            return False
        have = sha1(password, usedforsecurity=False).digest()
        return len(want) == 20 and compare_digest(want, have)
    if stored.startswith(b"$apr1$"):
        return compare_digest(md5_crypt(password, stored[6:]), stored)
    if len(stored) >= 13:  # DES is 13 characters, everything else longer
        out = crypt(password, stored)
        return out is not None and compare_digest(out, stored)
    return False  # plain text or garbage: never (as lighttpd)


# -- the files ----------------------------------------------------------------------------------


def read_file(path: str) -> bytes:
    """The whole user file; OSError (or ValueError for what is not a small regular file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > MAX_FILE:
            raise ValueError(f"larger than {MAX_FILE >> 20} MiB")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_FILE:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
            size += len(data)
        if size > MAX_FILE:
            raise ValueError(f"larger than {MAX_FILE >> 20} MiB")
        return b"".join(chunks)
    finally:
        os.close(fd)


def lines(data: bytes) -> Iterator[bytes]:
    """The lines that count: no blank ones, comments or overlong ones; CR stripped."""
    for line in data.split(b"\n"):
        if not line or line[:1] in (b"#", b"\r") or len(line) > MAX_LINE:
            continue
        yield line.removesuffix(b"\r")


def group_members(data: bytes) -> dict[str, frozenset[str]]:
    """An AuthGroupFile (``group: user1 user2``) as group -> members."""
    out: dict[str, set[str]] = {}
    for line in data.split(b"\n"):
        text = line.decode("utf-8", "surrogateescape").strip()
        if not text or text.startswith("#"):
            continue
        group, colon, members = text.partition(":")
        if colon:
            out.setdefault(group.strip(), set()).update(members.split())
    return {g: frozenset(m) for g, m in out.items()}


class _FileBackend:
    """What the three backends share: their file, its errors, the group file."""

    kind: ClassVar[str] = ""
    expected: ClassVar[str] = ""

    def __init__(self, plugin: AuthnFile) -> None:
        self.plugin = plugin
        self.key = f"auth.backend.{self.kind}.userfile"

    def _path(self, req: Request) -> str:
        path: str = req.conf[self.key]
        if not path:
            raise Misconfigured(f'auth.backend "{self.kind}" needs {self.key}')
        return path

    def _unavailable(self, path: str, why: str) -> Unavailable:
        return Unavailable(f'cannot read {self.key} "{path}" ({why}); create it with: '
                           f"{user_file_hint(self.kind, path)}")

    def _data(self, req: Request) -> tuple[str, bytes]:
        path = self._path(req)
        try:
            return path, read_file(path)
        except OSError as exc:
            raise self._unavailable(path, exc.strerror or str(exc)) from None
        except ValueError as exc:
            raise self._unavailable(path, str(exc)) from None

    def ready(self, req: Request) -> None:
        path = self._path(req)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        except OSError as exc:
            raise self._unavailable(path, exc.strerror or str(exc)) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self._unavailable(path, "not a regular file")
        finally:
            os.close(fd)

    def _split(self, path: str, line: bytes, need: int, most: int) -> list[bytes] | None:
        """The ':'-separated fields of a line (at least ``need``, the last one taking
        the rest after ``most``); None, logged as lighttpd does, for a malformed line."""
        fields = line.split(b":", most - 1)
        if len(fields) < need:
            self.plugin.rt.log("mod_authn_file", f"parse error in {path} expected "
                               f"'{self.expected}'")
            return None
        return fields

    def groups(self, req: Request, user: bytes) -> frozenset[str]:
        path: str = req.conf["auth.backend.plain.groupfile"]
        if not path:
            return frozenset()
        try:
            data = read_file(path)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise Unavailable(f'cannot read auth.backend.plain.groupfile "{path}" ({why})') \
                from None
        name = user.decode("utf-8", "surrogateescape")
        return frozenset(g for g, members in group_members(data).items() if name in members)


class Htpasswd(_FileBackend):
    kind = "htpasswd"
    expected = "username:password"

    def basic(self, req: Request, require: Require, user: bytes, password: bytes) -> bool:
        path, data = self._data(req)
        for line in lines(data):
            fields = self._split(path, line, 2, 2)
            if fields is None or fields[0] != user:
                continue
            try:
                return verify_password(fields[1], password)
            except CryptMissing as exc:
                self.plugin.rt.log("mod_authn_file", f"{path}: the hash of "
                                   f"{user.decode('utf-8', 'replace')!r} "
                                   f"({fields[1][:4].decode('ascii', 'replace')}...) needs "
                                   f"crypt(3), but {exc}: access refused")
                return False
        return False

    def digest(self, req: Request, algorithm: str, user: bytes, realm: bytes,
               hashed: bool) -> tuple[bytes, str] | None:
        raise Misconfigured('auth.require "method" => "digest" invalid with auth.backend '
                            '"htpasswd" (its hashes are one-way; use "basic", or '
                            '"htdigest" or "plain")')


class Htdigest(_FileBackend):
    kind = "htdigest"
    expected = "username:realm:digest[:userhash]"

    def _entries(self, req: Request) -> Iterator[tuple[bytes, bytes, bytes, bytes | None]]:
        path, data = self._data(req)
        for line in lines(data):
            fields = self._split(path, line, 3, 4)
            if fields is None:
                continue
            uh = fields[3] if len(fields) > 3 else None
            yield fields[0], fields[1], fields[2], uh

    def basic(self, req: Request, require: Require, user: bytes, password: bytes) -> bool:
        realm = require.realm.encode("utf-8")
        for name, r, stored, _ in self._entries(req):
            algorithm = _HASH_OF_LENGTH.get(len(stored))
            if name == user and r == realm and algorithm is not None:
                return compare_digest(ha1(algorithm, user, realm, password).encode(),
                                           stored.lower())
        return False

    def digest(self, req: Request, algorithm: str, user: bytes, realm: bytes,
               hashed: bool) -> tuple[bytes, str] | None:
        want = 32 if algorithm == "MD5" else 64
        for name, r, stored, uh in self._entries(req):
            if r != realm or len(stored) != want:
                continue
            if hashed:
                key = uh.lower() if uh is not None else \
                    userhash(algorithm, name, realm).encode("ascii")
                if not compare_digest(key, user.lower()):
                    continue
            elif name != user:
                continue
            return name, stored.decode("ascii", "replace").lower()
        return None


class Plain(_FileBackend):
    kind = "plain"
    expected = "username:password"

    def _password(self, req: Request, user: bytes, realm: bytes | None,
                  algorithm: str = "MD5") -> tuple[bytes, bytes] | None:
        path, data = self._data(req)
        for line in lines(data):
            fields = self._split(path, line, 2, 2)
            if fields is None:
                continue
            if realm is None:
                if fields[0] == user:
                    return fields[0], fields[1]
            elif compare_digest(userhash(algorithm, fields[0], realm).encode("ascii"),
                                     user.lower()):
                return fields[0], fields[1]
        return None

    def basic(self, req: Request, require: Require, user: bytes, password: bytes) -> bool:
        found = self._password(req, user, None)
        return found is not None and compare_digest(found[1], password)

    def digest(self, req: Request, algorithm: str, user: bytes, realm: bytes,
               hashed: bool) -> tuple[bytes, str] | None:
        found = self._password(req, user, realm if hashed else None, algorithm)
        if found is None:
            return None
        name, password = found
        return name, ha1(algorithm, name, realm, password)


def _f(key: str, doc: str) -> Directive:
    return Directive(key, Type.STRING, Scope.REQUEST, "", doc, module=NAME)


class AuthnFile(Plugin):
    name = NAME
    directives = (
        _f("auth.backend.htpasswd.userfile", "htpasswd file (user:hash; bcrypt, $apr1$, "
           "{SHA}, crypt(3)); create with emberd-passwd FILE USER"),
        _f("auth.backend.htdigest.userfile", "htdigest file (user:realm:H(user:realm:pw)); "
           "create with emberd-passwd --digest REALM FILE USER"),
        _f("auth.backend.plain.userfile", "plain file (user:password in clear text)"),
        _f("auth.backend.plain.groupfile", "groups for require \"group=...\" (lines "
           "\"group: user1 user2\"; emberd, all file backends)"),
    )
    # the names mod_auth's auth.backend may use with this module loaded
    auth_backends: ClassVar[tuple[str, ...]] = BACKENDS

    @classmethod
    def check(cls, config: ServerConfig, diags: Diagnostics) -> None:
        for name, loc in config.assigned("auth.backend"):
            if name and not any(v for v, _ in
                                config.assigned(f"auth.backend.{name}.userfile")):
                diags.error(loc, f'auth.backend "{name}" needs '
                            f"auth.backend.{name}.userfile")
        for kind in BACKENDS:
            key = f"auth.backend.{kind}.userfile"
            for path, loc in config.assigned(key):
                if path and not os.path.exists(path):
                    diags.warn(loc, f'{key}: "{path}" does not exist; the paths it '
                               "protects answer 503 until it is created with: "
                               f"{user_file_hint(kind, path)}")

    def __init__(self, rt: Runtime) -> None:
        super().__init__(rt)
        self._backends: dict[str, Backend] = {
            "htpasswd": Htpasswd(self), "htdigest": Htdigest(self), "plain": Plain(self)}

    def auth_backend(self, name: str) -> Backend | None:
        """The backend mod_auth's ``auth.backend = name`` refers to."""
        return self._backends.get(name)


PLUGIN = AuthnFile

"""emberd-passwd: create or update an entry of a mod_authn_file user file.

    emberd-passwd [--stdin] [-C COST] FILE USER                 htpasswd (bcrypt, else $6$)
    emberd-passwd --digest REALM [--sha256] [--stdin] FILE USER htdigest
    emberd-passwd --plain [--stdin] FILE USER                   plain (clear text)
    emberd-passwd [--digest REALM | --plain] --delete FILE USER

The password is read from the terminal without echo (twice), or with
``--stdin`` as the first line of standard input; it never appears on the
command line.  The file is rewritten atomically (a temporary file in the same
directory, fsync, rename): a reader -- emberd checking a login -- sees the old
file or the new one, never half of one.  A new file gets mode 0600; an
existing one keeps its owner and group, and its mode without the bits for
others.  Other lines (other users, other realms, comments) are kept as they
are.

htpasswd entries are bcrypt (``$2b$``, cost 5 as htpasswd's default) when the
system's crypt(3) has it, else SHA-512 crypt (``$6$``).  htdigest entries hold
MD5(user:realm:password); ``--sha256`` adds a SHA-256 line for the same user,
which Digest with ``"algorithm" => "SHA-256"`` needs (Apache's htdigest
writes MD5 only).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import getpass
import os
import secrets
import stat
import sys
import tempfile
import warnings

from .modules.auth import ha1
from .modules.authn_file import CryptMissing, crypt

PROG = "emberd-passwd"
_SALT = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# base64's alphabet, and bcrypt's in the same order
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_BCRYPT = b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class Failure(Exception):
    """A problem to report in one line, exit status 1."""


def bcrypt_setting(cost: int, raw: bytes | None = None) -> bytes:
    """``$2b$CC$`` and 22 characters of salt (16 random bytes in bcrypt's base64)."""
    raw = raw if raw is not None else secrets.token_bytes(16)
    salt = base64.b64encode(raw)[:22].translate(bytes.maketrans(_B64, _BCRYPT))
    return b"$2b$%02d$" % cost + salt


def sha512_setting() -> bytes:
    return b"$6$" + "".join(secrets.choice(_SALT) for _ in range(16)).encode("ascii")


def hash_password(password: bytes, cost: int = 5) -> bytes:
    """An htpasswd hash: bcrypt if crypt(3) has it, else SHA-512 crypt."""
    try:
        out = crypt(password, bcrypt_setting(cost))
        if out is not None and out.startswith(b"$2b$") and len(out) == 60:
            return out
        out = crypt(password, sha512_setting())
    except CryptMissing as exc:
        raise Failure(f"{exc}: cannot hash for htpasswd (htdigest needs no library: "
                      "--digest REALM)") from None
    if out is None or not out.startswith(b"$6$"):
        raise Failure("crypt(3) makes neither bcrypt nor SHA-512 hashes")
    return out


def _check_name(what: str, value: str) -> bytes:
    raw = value.encode("utf-8", "surrogateescape")
    if not raw or any(c in raw for c in b":\n\r\0"):
        raise Failure(f"{what} must not be empty nor contain ':' or line breaks")
    return raw


def read_password(from_stdin: bool) -> bytes:
    """The password: the first line of standard input, or typed twice on the terminal."""
    if from_stdin:
        line = sys.stdin.buffer.readline()
        password = line.removesuffix(b"\n").removesuffix(b"\r")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", getpass.GetPassWarning)
            try:
                first = getpass.getpass("New password: ")
                again = getpass.getpass("Re-type new password: ")
            except getpass.GetPassWarning:
                raise Failure("no terminal to read the password from without echo "
                              "(use --stdin)") from None
            except (EOFError, KeyboardInterrupt):
                raise Failure("no password given") from None
        if first != again:
            raise Failure("the passwords do not match")
        password = first.encode("utf-8", "surrogateescape")
    if not password:
        raise Failure("empty password")
    if any(c in password for c in b"\n\r\0"):
        raise Failure("the password must not contain line breaks or NUL")
    return password


def _matches(line: bytes, user: bytes, realm: bytes | None) -> bool:
    fields = line.removesuffix(b"\r").split(b":")
    if realm is None:
        return fields[0] == user and len(fields) >= 2
    return len(fields) >= 3 and fields[0] == user and fields[1] == realm


def update(old: bytes, user: bytes, realm: bytes | None, new: list[bytes]) -> tuple[bytes, int]:
    """The file with ``user``'s entries (of ``realm``, for htdigest) replaced by ``new``
    -- where the first of them was, or at the end; and how many were removed."""
    out: list[bytes] = []
    removed = 0
    placed = False
    body = old.split(b"\n")
    if body and body[-1] == b"":
        body.pop()
    for line in body:
        if line[:1] != b"#" and _matches(line, user, realm):
            removed += 1
            if not placed:
                out.extend(new)
                placed = True
            continue
        out.append(line)
    if not placed:
        out.extend(new)
    return b"".join(line + b"\n" for line in out), removed


def write_atomically(path: str, data: bytes) -> None:
    """Replace ``path`` by ``data``: temporary file, fsync, rename, fsync the directory."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=".emberd-passwd.", dir=directory)
    try:
        if st is not None:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o770)
            if os.geteuid() == 0:
                os.fchown(fd, st.st_uid, st.st_gid)  # emberd may read it as its own user
        else:
            os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Create or update a user of an emberd (lighttpd) user file: "
        "htpasswd by default, htdigest with --digest, plain with --plain.")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--digest", metavar="REALM", help="an htdigest entry for REALM")
    kind.add_argument("--plain", action="store_true",
                      help="a plain entry (the password in clear text)")
    p.add_argument("--sha256", action="store_true",
                   help="with --digest: a SHA-256 line as well as the MD5 one")
    p.add_argument("--stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.add_argument("-C", "--cost", type=int, default=5,
                   help="bcrypt cost, 4..17 (default 5, as htpasswd)")
    p.add_argument("--delete", action="store_true", help="remove the user instead")
    p.add_argument("file", metavar="FILE")
    p.add_argument("user", metavar="USER")
    return p


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.sha256 and args.digest is None:
        raise Failure("--sha256 goes with --digest REALM")
    if not 4 <= args.cost <= 17:
        raise Failure("the bcrypt cost must be 4..17")
    user = _check_name("the user name", args.user)
    realm = _check_name("the realm", args.digest) if args.digest is not None else None
    try:
        with open(args.file, "rb") as f:
            old = f.read()
    except FileNotFoundError:
        old = b""
    except OSError as exc:
        raise Failure(f"{args.file}: {exc.strerror}") from None
    new: list[bytes] = []
    if not args.delete:
        password = read_password(args.stdin)
        if realm is not None:
            new.append(b"%s:%s:%s" % (user, realm, ha1("MD5", user, realm, password).encode()))
            if args.sha256:
                new.append(b"%s:%s:%s" % (user, realm,
                                          ha1("SHA-256", user, realm, password).encode()))
        elif args.plain:
            new.append(user + b":" + password)
        else:
            new.append(user + b":" + hash_password(password, args.cost))
    data, removed = update(old, user, realm, new)
    if args.delete and not removed:
        raise Failure(f"{args.user} is not in {args.file}")
    try:
        write_atomically(args.file, data)
    except OSError as exc:
        raise Failure(f"{args.file}: {exc.strerror or exc}") from None
    what = "deleted" if args.delete else "updated" if removed else "added"
    print(f"{PROG}: {args.user} {what} in {args.file}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except Failure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

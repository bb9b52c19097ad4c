"""htpasswd hashes (mod_authn_file) and the user-file edits of emberd-passwd, on fixed vectors.

The $apr1$ and crypt(3) vectors were made by Debian's htpasswd (apache2-utils
2.4); the $5$, $6$ and bcrypt ones are the published reference vectors of
those algorithms.
"""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from emberd import passwd
from emberd.modules import authn_file
from emberd.modules.authn_file import crypt, md5_crypt, verify_password

APR1 = [  # htpasswd -nbm USER PASSWORD
    (b"password", b"$apr1$U..olpN8$uyYsPJhDno341D1Za13pW1"),
    (b"", b"$apr1$sRK58oXT$wRP9G45Fz6gY3RswVWAeB1"),
    (b"a much longer password than sixteen bytes", b"$apr1$gvLrgLIU$eFkiES9TSNahOGCVw8ixu."),
    ("pässwörd".encode(), b"$apr1$kHL7VGE8$gnpHfbQe1JvQPgGa4TlUo/"),
]

CRYPT = [
    (b"password", b"$2y$05$blYkq9o5zWZrGUoPZdn./OcqMFHPzfqutb9VlktUb7zy73kIlAQ/S"),  # htpasswd -B
    (b"U*U", b"$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"),  # Openwall
    (b"password", b"g79kb9.uPjmEg"),  # htpasswd -d (DES)
    (b"password", b"$5$DgPHh4dlWcz8V/qm$YfWhcEc/eB/54JNFZ3osB16oP7P6TAh9kjm/BCICFl1"),  # -2
    (b"password", b"$6$sNh7.b0.w4/HOm3E$eH217eItI/uKvXFWpIdj3b5PDcvh6s7ttSD/XTcxs21.yaYZRvjrs"
                  b"FcU5m5rlA3GFbIy4qMZxZBLvEJJ4BK0s/"),  # htpasswd -5
    # Drepper's SHA-crypt specification
    (b"Hello world!", b"$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    (b"Hello world!", b"$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu"
                      b"esI68u4OTLiBFdcbYEdFCoEOfaS35inz1"),
    (b"password", b"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"),
]

needs_crypt = pytest.mark.skipif(not authn_file.crypt_available(),
                                 reason="no crypt(3) library")


@pytest.mark.parametrize("password, stored", APR1)
def test_apr1_vectors(password, stored):
    assert md5_crypt(password, stored[6:]) == stored
    assert verify_password(stored, password)
    assert not verify_password(stored, password + b"x")


def test_apr1_salt_stops_at_dollar_or_eight_characters():
    assert md5_crypt(b"pw", b"abc$rest").startswith(b"$apr1$abc$")
    assert md5_crypt(b"pw", b"0123456789").startswith(b"$apr1$01234567$")


@needs_crypt
def test_md5_crypt_is_crypt3_md5_with_another_magic():
    """$apr1$ is MD5-crypt with Apache's magic: the $1$ form must agree with libcrypt."""
    for pw in (b"", b"password", b"x" * 40, "ünïcode".encode()):
        assert md5_crypt(pw, b"saltsalt", magic=b"$1$") == crypt(pw, b"$1$saltsalt$")
    assert md5_crypt(b"password", b"saltsalt", b"$1$") == b"$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"


def test_sha1_vectors():
    assert verify_password(b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", b"password")
    assert not verify_password(b"{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", b"Password")
    assert not verify_password(b"{SHA}not base64!", b"password")
    assert not verify_password(b"{SHA}AAAA", b"password")  # not 20 bytes


@needs_crypt
@pytest.mark.parametrize("password, stored", CRYPT)
def test_crypt_vectors(password, stored):
    assert verify_password(stored, password)
    assert not verify_password(stored, password.swapcase())  # (DES reads 8 characters)


@needs_crypt
def test_crypt_refuses_nul_and_unknown_methods():
    assert crypt(b"pass\0word", b"$6$salt$") is None
    assert crypt(b"pw", b"$unknown$xx") is None
    # a NUL must not cut the password short: "password\0..." is not "password"
    assert not verify_password(CRYPT[0][1], b"password\0anything")


def test_short_or_plain_text_entries_never_match():
    assert not verify_password(b"password", b"password")  # plain text (lighttpd: never)
    assert not verify_password(b"", b"")


def test_crypt_missing_is_reported(monkeypatch):
    monkeypatch.setattr(authn_file, "_crypt_fn", [None])
    with pytest.raises(authn_file.CryptMissing):
        verify_password(CRYPT[0][1], b"password")
    # hashes computed in Python still work without the library
    assert verify_password(APR1[0][1], APR1[0][0])


def test_user_file_lines():
    data = (b"# comment\n\nalice:x\r\n" + b"long:" + b"y" * 1100 + b"\nbob:z")
    assert list(authn_file.lines(data)) == [b"alice:x", b"bob:z"]


def test_group_file():
    groups = authn_file.group_members(b"# groups\nadmin: alice bob\nops:carol\nadmin: dave\n")
    assert groups == {"admin": frozenset({"alice", "bob", "dave"}), "ops": frozenset({"carol"})}


def test_read_file_refuses_what_is_not_a_small_regular_file(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="regular"):
        authn_file.read_file(str(tmp_path))
    big = tmp_path / "big"
    big.write_bytes(b"x" * 100)
    monkeypatch.setattr(authn_file, "MAX_FILE", 10)
    with pytest.raises(ValueError, match="larger"):
        authn_file.read_file(str(big))
    with pytest.raises(FileNotFoundError):
        authn_file.read_file(str(tmp_path / "missing"))


# -- emberd-passwd --------------------------------------------------------------------------


def test_bcrypt_setting_is_canonical():
    setting = passwd.bcrypt_setting(5, bytes(range(16)))
    assert setting == b"$2b$05$" + b"..CA.uOD/eaGAOmJB.yMBu"
    assert len(passwd.bcrypt_setting(12)) == 29


@needs_crypt
def test_hash_password_prefers_bcrypt():
    out = passwd.hash_password(b"secret")
    assert out.startswith(b"$2b$05$") and verify_password(out, b"secret")


@needs_crypt
def test_hash_password_falls_back_to_sha512(monkeypatch):
    real = authn_file.crypt

    def no_bcrypt(password: bytes, setting: bytes) -> bytes | None:
        return None if setting.startswith(b"$2") else real(password, setting)

    monkeypatch.setattr(passwd, "crypt", no_bcrypt)
    out = passwd.hash_password(b"secret")
    assert out.startswith(b"$6$") and verify_password(out, b"secret")


def test_update_replaces_the_entry_in_place():
    old = b"# users\nalice:old\nbob:x\n"
    assert passwd.update(old, b"alice", None, [b"alice:new"]) == \
        (b"# users\nalice:new\nbob:x\n", 1)
    assert passwd.update(old, b"carol", None, [b"carol:c"]) == (old + b"carol:c\n", 0)
    assert passwd.update(old, b"bob", None, []) == (b"# users\nalice:old\n", 1)
    assert passwd.update(b"", b"a", None, [b"a:1"]) == (b"a:1\n", 0)


def test_update_htdigest_is_per_realm():
    old = b"u:r1:aa\nu:r2:bb\nu:r1:cc\n"
    assert passwd.update(old, b"u", b"r1", [b"u:r1:11", b"u:r1:22"]) == \
        (b"u:r1:11\nu:r1:22\nu:r2:bb\n", 2)


def test_passwd_writes_atomically_with_mode_0600(tmp_path, monkeypatch):
    path = tmp_path / "users"
    monkeypatch.setattr("sys.stdin", type("S", (), {"buffer": _Lines(b"s3cret\n")})())
    assert passwd.main(["--stdin", str(path), "alice"]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    user, stored = path.read_bytes().rstrip(b"\n").split(b":", 1)
    assert user == b"alice"
    if authn_file.crypt_available():
        assert verify_password(stored, b"s3cret")
    assert [p.name for p in tmp_path.iterdir()] == ["users"]  # no temporary file left
    os.chmod(path, 0o644)
    monkeypatch.setattr("sys.stdin", type("S", (), {"buffer": _Lines(b"pw\n")})())
    assert passwd.main(["--digest", "R", "--sha256", "--stdin", str(path), "bob"]) == 0
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640  # kept, without "others"
    lines = path.read_bytes().splitlines()
    assert lines[1:] == [b"bob:R:" + hashlib.md5(b"bob:R:pw").hexdigest().encode(),
                         b"bob:R:" + hashlib.sha256(b"bob:R:pw").hexdigest().encode()]


@pytest.mark.parametrize("args, stdin, message", [
    (["--stdin", "F", "a:b"], b"pw\n", "must not be empty nor contain ':'"),
    (["--stdin", "F", "a"], b"\n", "empty password"),
    (["--sha256", "--stdin", "F", "a"], b"pw\n", "--sha256 goes with --digest"),
    (["--delete", "F", "nobody"], b"", "nobody is not in"),
    (["-C", "3", "--stdin", "F", "a"], b"pw\n", "4..17"),
])
def test_passwd_errors(tmp_path, monkeypatch, capsys, args, stdin, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", type("S", (), {"buffer": _Lines(stdin)})())
    assert passwd.main(args) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "F").exists()


class _Lines:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def readline(self) -> bytes:
        line, sep, self.data = self.data.partition(b"\n")
        return line + sep

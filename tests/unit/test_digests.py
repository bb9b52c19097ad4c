"""emberd.digests: the hashes mod_auth needs, without OpenSSL's libcrypto in the process."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

from emberd import digests


def test_hashes_match_hashlib():
    for data in (b"", b"abc", b"x" * 1000):
        assert digests.md5(data).hexdigest() == hashlib.md5(data).hexdigest()
        assert digests.sha1(data).hexdigest() == hashlib.sha1(data).hexdigest()
        assert digests.sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_hmac_sha256_rfc4231():
    # RFC 4231 test cases 1 and 6 (a key longer than the block)
    assert digests.hmac_sha256(b"\x0b" * 20, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
    msg = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert digests.hmac_sha256(b"\xaa" * 131, msg).hex() == (
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    assert digests.hmac_sha256(b"k", b"m") == hmac.new(b"k", b"m", "sha256").digest()


def test_compare_digest_and_random():
    assert digests.compare_digest(b"abc", b"abc") and not digests.compare_digest(b"abc", b"abd")
    assert len(digests.random_bytes(32)) == 32 and digests.random_bytes(8) != digests.random_bytes(8)


def test_the_auth_modules_do_not_map_libcrypto():
    code = ("from emberd.cli import keep_ssl_out; keep_ssl_out()\n"
            "import emberd.core.server, emberd.modules.auth, emberd.modules.authn_file\n"
            "import emberd.modules.status, emberd.modules.fastcgi, sys\n"
            "maps = open('/proc/self/maps').read()\n"
            "print('_hashlib' in sys.modules, 'libcrypto' in maps, 'ujson' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False", "False"]

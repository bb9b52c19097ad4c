"""MD5, SHA-1, SHA-256 and HMAC-SHA256 from CPython's own hash modules.

``import hashlib`` (and ``hmac``, ``secrets``) maps OpenSSL's libcrypto: 3.7 MB
of RSS on x86_64 for what mod_auth needs -- hashes of a few short strings per
login.  CPython builds its own MD5, SHA-1 and SHA-2 modules by default; these
are used, and hashlib only where a Python was built without them.  HMAC
(RFC 2104) is a few lines over them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any


def _pick(*candidates: tuple[str, str]) -> Callable[..., Any]:
    """The first of ``(module, name)`` that imports: CPython's own module, else hashlib."""
    for module, name in candidates:
        try:
            found: Callable[..., Any] = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        return found
    raise ImportError(f"none of {candidates} is available")


md5 = _pick(("_md5", "md5"), ("hashlib", "md5"))
sha1 = _pick(("_sha1", "sha1"), ("hashlib", "sha1"))
# _sha2 from Python 3.12 on, _sha256 before
sha256 = _pick(("_sha2", "sha256"), ("_sha256", "sha256"), ("hashlib", "sha256"))
_compare = _pick(("_operator", "_compare_digest"), ("hmac", "compare_digest"))


def compare_digest(a: bytes, b: bytes) -> bool:
    """Comparison in constant time (hmac.compare_digest)."""
    return bool(_compare(a, b))


__all__ = ["compare_digest", "hmac_sha256", "md5", "random_bytes", "sha1", "sha256"]

_BLOCK = 64  # SHA-256's block size


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 (RFC 2104)."""
    if len(key) > _BLOCK:
        key = sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    inner: Any = sha256(bytes(b ^ 0x36 for b in key))
    inner.update(message)
    outer: Any = sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the kernel's CSPRNG (what secrets.token_bytes does)."""
    return os.urandom(n)

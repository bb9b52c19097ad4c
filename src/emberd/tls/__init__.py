"""TLS for emberd: HTTPS listeners over Mbed TLS (python-mbedtls) or the stdlib ``ssl``.

Nothing here is imported unless a listener enables ``ssl.engine``, and no
TLS library is loaded until the first TLS listener is set up; with the Mbed
TLS backend (the default) OpenSSL's libssl never enters the process.

Modules, one concept each:

* ``records`` -- record headers: garbage, oversized records, renegotiation;
* ``hello`` -- the ClientHello: plain HTTP on the TLS port, SNI, versions;
* ``ciphers`` -- ``ssl.cipher-list`` (OpenSSL syntax) to suites;
* ``certificates`` -- PEM and the X.509 fields emberd needs, without a library;
* ``settings`` -- ``ssl.*`` directives to ``TlsSettings``;
* ``credentials`` -- certificate, chain, key and CA files read and checked;
* ``endpoint`` -- a TLS listener's contexts and the SNI choice;
* ``channel`` -- one connection's sans-IO TLS channel;
* ``identity`` -- what a handshake tells requests (SSL_CLIENT_* variables);
* ``mbedtls_backend`` / ``openssl_backend`` -- the two libraries.

``buffer_bound()`` is the per-connection worst case of TLS memory, for
``--memory-budget``.
"""

from __future__ import annotations

import importlib.util

BACKENDS = ("mbedtls", "openssl")

# The parts of a TLS connection's memory, worst case, in bytes.
# Ciphertext a connection may hold before the library has a session: at most one
# ClientHello (16 KiB, hello.MAX_HELLO) plus the read that completed it (16 KiB).
HELLO_BYTES = 2 * 16 * 1024
# python-mbedtls: two ring buffers of 32 KiB (+1) per TLSWrappedBuffer.
MBEDTLS_RINGS = 2 * (32 * 1024 + 1)
# Mbed TLS 2.28: an input and an output record buffer, 16 KiB of content plus
# header (13), IV (16), MAC (64) and CBC padding (256) each.
MBEDTLS_RECORD_BUFFERS = 2 * (16 * 1024 + 13 + 16 + 64 + 256)
# Handshake state, session, cipher contexts, a client's certificate.
MBEDTLS_STATE = 16 * 1024
# OpenSSL 3: read buffer (2^14 + 2048 + headers), write buffer (2^14 + overhead),
# SSL object, handshake state and session.
OPENSSL_BUFFERS = 18 * 1024 + 17 * 1024 + 24 * 1024
# The two MemoryBIOs: input is fed 16 KiB at a time and drained, output is emptied
# after every record or flight.
OPENSSL_BIOS = 2 * 16 * 1024


def buffer_bound(backend: str = "mbedtls") -> int:
    """Worst-case TLS memory of one connection in bytes, beyond emberd's pooled chunks.

    (The plaintext a TLS connection reads goes into the same pooled chunk as
    the ciphertext, and records are written straight to the transport, so
    TLS takes nothing from the chunk pool beyond what plain TCP takes.)
    """
    if backend == "mbedtls":
        return HELLO_BYTES + MBEDTLS_RINGS + MBEDTLS_RECORD_BUFFERS + MBEDTLS_STATE
    if backend == "openssl":
        return HELLO_BYTES + OPENSSL_BUFFERS + OPENSSL_BIOS
    raise ValueError(f"unknown TLS backend {backend!r}")


def available(backend: str) -> bool:
    """Whether the backend's library is installed (without importing it)."""
    module = {"mbedtls": "mbedtls", "openssl": "_ssl"}[backend]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False

"""A listener's certificate, chain, key and client CAs, read and checked at start-up.

lighttpd refuses to start when ``ssl.pemfile`` cannot be loaded, and so
does emberd -- but the checks here are made before any library sees the
files, so each message names the file and says what is wrong with it:

* a file that cannot be read, or holds no certificate / no key;
* a chain out of order: each certificate after the first must have issued
  the one before it (the leaf comes first, as in lighttpd and nginx);
* a passphrase-protected key (neither lighttpd nor emberd asks for one);
* a CA file without certificates.

Whether the key matches the certificate is checked by the backend, with the
library that will use them.  A certificate outside its validity period is
only a warning: boards without a real-time clock boot in 1970 (or at the
build date) and must still serve their web UI until NTP has set the clock.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from . import certificates
from .certificates import Certificate, CertificateError
from .errors import TlsSetupError
from .settings import TlsSettings

KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")


@dataclass(slots=True)
class Credentials:
    chain: list[Certificate]  # leaf first
    key_pem: bytes  # one PEM private key block
    key_file: str  # where the key came from
    authorities: list[Certificate]  # ssl.ca-file, for client certificates
    warnings: list[str] = field(default_factory=list)


def _read(key: str, path: str, problems: list[str]) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20)
    except OSError as exc:
        problems.append(f"{key} {path}: cannot read it: {exc.strerror or exc}")
        return None


def _certificates(key: str, path: str, pem: bytes, problems: list[str]) -> list[Certificate]:
    """The certificates of a PEM file; a problem when there are none or they do not parse."""
    try:
        found = certificates.load_certificates(pem)
    except CertificateError as exc:
        problems.append(f"{key} {path}: {exc}")
        return []
    if not found:
        problems.append(f"{key} {path}: no certificate in it")
    return found


def _key_block(data: bytes) -> bytes | None:
    blocks = certificates.pem_blocks(data)
    for label, der in blocks:
        if label in KEY_LABELS:
            body = base64.encodebytes(der).decode("ascii")
            return (f"-----BEGIN {label}-----\n{body}-----END {label}-----\n").encode("ascii")
    return None


def load(settings: TlsSettings, where: str = "") -> Credentials:
    """Read and check the files ``settings`` name; TlsSetupError lists every problem."""
    problems: list[str] = []
    at = f"{where}: " if where else ""
    chain: list[Certificate] = []
    key_pem: bytes | None = None
    key_file = settings.privkey or settings.pemfile
    pem = _read("ssl.pemfile", settings.pemfile, problems)
    if pem is not None:
        chain = _certificates("ssl.pemfile", settings.pemfile, pem, problems)
        bad = certificates.chain_problem(chain) if chain else None
        if bad:
            problems.append(f"ssl.pemfile {settings.pemfile}: bad chain: {bad}")
    key_data = pem if not settings.privkey else _read("ssl.privkey", settings.privkey, problems)
    if key_data is not None:
        label = "ssl.privkey" if settings.privkey else "ssl.pemfile"
        if certificates.encrypted_key(key_data):
            problems.append(f"{label} {key_file}: the private key is encrypted; emberd (like "
                            "lighttpd) needs it without a passphrase")
        else:
            try:
                key_pem = _key_block(key_data)
            except CertificateError as exc:
                problems.append(f"{label} {key_file}: {exc}")
            else:
                if key_pem is None:
                    hint = "" if settings.privkey else " (set ssl.privkey to the key's file)"
                    problems.append(f"{label} {key_file}: no private key in it{hint}")
    authorities: list[Certificate] = []
    if settings.ca_file:
        ca = _read("ssl.ca-file", settings.ca_file, problems)
        if ca is not None:
            authorities = _certificates("ssl.ca-file", settings.ca_file, ca, problems)
    elif settings.verify_client:
        problems.append("ssl.verifyclient.activate needs ssl.ca-file (the CAs that issue "
                        "client certificates)")
    if problems or key_pem is None:
        raise TlsSetupError([at + p for p in problems])
    creds = Credentials(chain, key_pem, key_file, authorities)
    for i, cert in enumerate(chain):
        late = cert.validity_problem()
        if late:
            what = "the certificate" if i == 0 else f"chain certificate {i + 1}"
            creds.warnings.append(
                f"{at}ssl.pemfile {settings.pemfile}: {what} ({cert.subject_text()}) is {late}; "
                "serving it anyway (is the clock set?)")
    return creds

"""Reading certificates without a TLS library: PEM blocks and the X.509 fields emberd uses.

Both backends need the same facts about a certificate -- who issued it,
whom it names, when it is valid, whether it is a CA -- for the start-up
checks (a chain in the wrong order, an expired certificate) and for the
client-certificate variables lighttpd gives backends (``SSL_CLIENT_S_DN_CN``
...).  python-mbedtls offers some of them as text and the stdlib only for
verified peers, so this module reads them from the DER encoding (X.690)
itself: a TLV walker over a bounded input, no recursion beyond the fixed
shape of RFC 5280's ``Certificate``::

    Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    TBSCertificate ::= SEQUENCE {
        version [0] EXPLICIT Version DEFAULT v1, serialNumber INTEGER,
        signature AlgorithmIdentifier, issuer Name, validity Validity,
        subject Name, subjectPublicKeyInfo, ... extensions [3] EXPLICIT }
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

# attribute types as OpenSSL's X509_NAME_oneline() names them (lighttpd's SSL_CLIENT_S_DN_*)
_ATTRS = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
    "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "title", "2.5.4.42": "GN", "2.5.4.43": "initials", "2.5.4.46": "dnQualifier",
    "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}
_BASIC_CONSTRAINTS = "2.5.29.19"
MAX_DER = 64 * 1024  # no certificate emberd reads is larger


class CertificateError(ValueError):
    """Not a certificate emberd can read."""


@dataclass(frozen=True, slots=True)
class Certificate:
    der: bytes
    serial: int
    issuer: tuple[tuple[str, str], ...]  # (attribute, value) in order
    subject: tuple[tuple[str, str], ...]
    issuer_der: bytes  # the raw Name, for exact issuer/subject matching
    subject_der: bytes
    not_before: dt.datetime
    not_after: dt.datetime
    ca: bool

    @property
    def self_issued(self) -> bool:
        return self.issuer_der == self.subject_der

    def subject_text(self) -> str:
        return oneline(self.subject)

    def issuer_text(self) -> str:
        return oneline(self.issuer)

    def pem(self) -> str:
        body = base64.encodebytes(self.der).decode("ascii").replace("\n", "")
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + \
            "\n-----END CERTIFICATE-----\n"

    def validity_problem(self, now: dt.datetime | None = None) -> str | None:
        """'expired ...' or 'not valid before ...' when ``now`` is outside the validity."""
        now = now or dt.datetime.now(dt.UTC)
        if now < self.not_before:
            return f"not valid before {self.not_before:%Y-%m-%d %H:%M:%S} UTC"
        if now > self.not_after:
            return f"expired on {self.not_after:%Y-%m-%d %H:%M:%S} UTC"
        return None


def oneline(name: tuple[tuple[str, str], ...]) -> str:
    """OpenSSL's one-line form: ``/C=DE/O=Example/CN=device.local``."""
    return "".join(f"/{k}={v}" for k, v in name)


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every ``-----BEGIN X-----`` block of ``data`` as (label, DER); ValueError if broken."""
    out: list[tuple[str, bytes]] = []
    lines = data.decode("ascii", "replace").splitlines()
    label: str | None = None
    body: list[str] = []
    for line in lines:
        line = line.strip()
        if label is None:
            if line.startswith("-----BEGIN ") and line.endswith("-----"):
                label, body = line[11:-5], []
        elif line == f"-----END {label}-----":
            try:
                out.append((label, base64.b64decode("".join(body), validate=True)))
            except (binascii.Error, ValueError):
                raise CertificateError(f"broken base64 in a PEM {label} block") from None
            label = None
        elif ":" in line:
            continue  # RFC 1421 headers ("Proc-Type: 4,ENCRYPTED" is looked at by callers)
        else:
            body.append(line)
    if label is not None:
        raise CertificateError(f"PEM {label} block without its END line")
    return out


def encrypted_key(data: bytes) -> bool:
    """Whether a PEM file holds a passphrase-protected private key."""
    return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


# -- DER ----------------------------------------------------------------------------------

def _tlv(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the element at ``pos``."""
    if pos + 2 > len(der):
        raise CertificateError("truncated DER")
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if not 0 < n <= 3 or pos + n > len(der):
            raise CertificateError("bad DER length")
        length = int.from_bytes(der[pos:pos + n], "big")
        pos += n
    if pos + length > len(der):
        raise CertificateError("truncated DER")
    return tag, pos, pos + length


def _children(der: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    while start < end:
        t = _tlv(der, start)
        out.append(t)
        start = t[2]
    return out


def _oid(raw: bytes) -> str:
    if not raw:
        raise CertificateError("empty OID")
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    value = 0
    for b in raw[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    if tag == 0x14:  # T61String: latin-1 in practice
        return raw.decode("latin-1")
    return raw.decode("utf-8", "replace")


def _name(der: bytes, start: int, end: int) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for _, s, e in _children(der, start, end):  # RDN: SET OF
        for _, s2, e2 in _children(der, s, e):  # AttributeTypeAndValue: SEQUENCE
            parts = _children(der, s2, e2)
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise CertificateError("bad name attribute")
            oid = _oid(der[parts[0][1]:parts[0][2]])
            vtag, vs, ve = parts[1]
            out.append((_ATTRS.get(oid, oid), _string(vtag, der[vs:ve])))
    return tuple(out)


def _time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii", "replace")
    try:
        if tag == 0x17:  # UTCTime, YYMMDDHHMMSSZ (RFC 5280: 50..99 mean 19xx)
            year = int(text[:2])
            text = ("19" if year >= 50 else "20") + text
        elif tag != 0x18:
            raise ValueError
        return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    except ValueError:
        raise CertificateError(f"bad time {text!r}") from None


def parse(der: bytes) -> Certificate:
    """The fields of a DER certificate; CertificateError if it is not one."""
    if len(der) > MAX_DER:
        raise CertificateError("certificate larger than 64 KiB")
    tag, s, e = _tlv(der, 0)
    if tag != 0x30:
        raise CertificateError("not a certificate")
    top = _children(der, s, e)
    if len(top) != 3 or top[0][0] != 0x30:
        raise CertificateError("not a certificate")
    tbs = _children(der, top[0][1], top[0][2])
    i = 1 if tbs and tbs[0][0] == 0xA0 else 0  # explicit version
    if len(tbs) < i + 6:
        raise CertificateError("truncated certificate")
    serial_t, issuer_t, validity_t, subject_t = tbs[i], tbs[i + 2], tbs[i + 3], tbs[i + 4]
    times = _children(der, validity_t[1], validity_t[2])
    if len(times) != 2:
        raise CertificateError("bad validity")
    ca = False
    for ext_t in tbs[i + 6:]:
        if ext_t[0] == 0xA3:
            ca = _basic_constraints_ca(der, ext_t)
    return Certificate(
        der=der,
        serial=int.from_bytes(der[serial_t[1]:serial_t[2]], "big", signed=True),
        issuer=_name(der, issuer_t[1], issuer_t[2]),
        subject=_name(der, subject_t[1], subject_t[2]),
        issuer_der=der[issuer_t[1]:issuer_t[2]],
        subject_der=der[subject_t[1]:subject_t[2]],
        not_before=_time(times[0][0], der[times[0][1]:times[0][2]]),
        not_after=_time(times[1][0], der[times[1][1]:times[1][2]]),
        ca=ca,
    )


def _basic_constraints_ca(der: bytes, ext_t: tuple[int, int, int]) -> bool:
    extensions = _children(der, ext_t[1], ext_t[2])  # [3] EXPLICIT: one SEQUENCE
    if not extensions:
        return False
    for _, s2, e2 in _children(der, extensions[0][1], extensions[0][2]):
        parts = _children(der, s2, e2)
        if parts and parts[0][0] == 0x06 and _oid(der[parts[0][1]:parts[0][2]]) == \
                _BASIC_CONSTRAINTS:
            octets = parts[-1]
            inner = _children(der, octets[1], octets[2])
            if inner:
                values = _children(der, inner[0][1], inner[0][2])
                return bool(values and values[0][0] == 0x01 and der[values[0][1]] != 0)
    return False


def load_certificates(data: bytes) -> list[Certificate]:
    """The certificates of a PEM file, in file order."""
    return [parse(der) for label, der in pem_blocks(data)
            if label in ("CERTIFICATE", "TRUSTED CERTIFICATE", "X509 CERTIFICATE")]


def chain_problem(chain: list[Certificate]) -> str | None:
    """Why ``chain`` (leaf first) is not a chain: each must be issued by the next."""
    for i in range(len(chain) - 1):
        cert, issuer = chain[i], chain[i + 1]
        if cert.issuer_der != issuer.subject_der:
            return (f"certificate {i + 1} ({cert.subject_text()}) is issued by "
                    f"{cert.issuer_text()}, but certificate {i + 2} is "
                    f"{issuer.subject_text()}: the chain must go leaf first, each "
                    "certificate followed by its issuer")
        if not issuer.ca:
            return (f"certificate {i + 2} ({issuer.subject_text()}) issues certificate "
                    f"{i + 1} but is not a CA certificate")
    return None


def depth(leaf: Certificate, authorities: list[Certificate]) -> int | None:
    """Issuers above ``leaf`` up to a self-issued root, using ``authorities``; None if the
    path leaves them (the client supplied an intermediate the CA file lacks)."""
    by_subject = {c.subject_der: c for c in authorities}
    cert = leaf
    for n in range(1, len(authorities) + 1):
        issuer = by_subject.get(cert.issuer_der)
        if issuer is None:
            return None
        if issuer.self_issued:
            return n
        cert = issuer
    return None

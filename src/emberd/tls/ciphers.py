"""``ssl.cipher-list``: a subset of OpenSSL's cipher-string syntax, for both backends.

lighttpd hands ``ssl.cipher-list`` to OpenSSL (``SSL_CTX_set_cipher_list``);
lighttpd's mod_mbedtls translates it to Mbed TLS suites.  emberd does the
same with this table, so one string means the same suites with either
backend, and -- unlike OpenSSL, which skips names it does not know -- a
name emberd does not know is a configuration error.

Syntax (``ciphers(1)``): terms separated by ``:``, ``,`` or spaces.  A term
is a suite name (``ECDHE-ECDSA-AES128-GCM-SHA256``, or the Mbed TLS name
``TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256``) or aliases joined with ``+``
(all must match: ``EECDH+AESGCM``), optionally prefixed:

* no prefix: append the matching suites not yet in the list;
* ``-``: remove them (a later term may add them again);
* ``!``: remove them for good;
* ``+``: move them to the end of the list.

``@STRENGTH`` sorts by key size (stable); ``@SECLEVEL=n`` is accepted and
ignored (Mbed TLS has no security levels).

Suites: ECDHE-ECDSA, ECDHE-RSA, DHE-RSA and plain RSA key exchange with
AES-GCM, ChaCha20-Poly1305, AES-CCM(-8) and AES-CBC.  Camellia, ARIA, PSK,
static ECDH/DH, NULL, RC4, 3DES, export and anonymous suites are never
offered: their aliases are accepted (so ``!aNULL:!PSK`` works) and select
nothing.  TLS 1.3 suites are not part of this list (Mbed TLS 2.28 has no
TLS 1.3; the stdlib backend uses OpenSSL's TLS 1.3 defaults).

The default is lighttpd's, ``EECDH+AESGCM:CHACHA20:!PSK:!DHE``: ECDHE key
exchange with AEAD ciphers only, which is also what HTTP/2 asks for
(RFC 7540 9.2.2: "deployments of HTTP/2 that use TLS 1.2 SHOULD NOT use any
of the cipher suites that are listed in the cipher suite black list").
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT = "EECDH+AESGCM:CHACHA20:!PSK:!DHE"


@dataclass(frozen=True, slots=True)
class Suite:
    openssl: str  # OpenSSL's name
    mbedtls: str  # Mbed TLS's name
    tags: frozenset[str]
    bits: int
    aead: bool


# key exchange: OpenSSL name prefix, Mbed TLS name prefix, tags
_KX = {
    "ECDHE-ECDSA": ("ECDHE-ECDSA-", "TLS-ECDHE-ECDSA-WITH-", ("kECDHE", "aECDSA")),
    "ECDHE-RSA": ("ECDHE-RSA-", "TLS-ECDHE-RSA-WITH-", ("kECDHE", "aRSA")),
    "DHE-RSA": ("DHE-RSA-", "TLS-DHE-RSA-WITH-", ("kDHE", "aRSA")),
    "RSA": ("", "TLS-RSA-WITH-", ("kRSA", "aRSA")),
}
_ALL_KX = "ECDHE-ECDSA ECDHE-RSA DHE-RSA RSA"
# bulk cipher, in order of preference: OpenSSL suffix, Mbed TLS suffix, tags, bits,
# the key exchanges it comes with
_BULK = (
    ("AES256-GCM-SHA384", "AES-256-GCM-SHA384", ("AESGCM", "AES", "AES256"), 256, _ALL_KX),
    ("CHACHA20-POLY1305", "CHACHA20-POLY1305-SHA256", ("CHACHA20",), 256,
     "ECDHE-ECDSA ECDHE-RSA DHE-RSA"),
    ("AES128-GCM-SHA256", "AES-128-GCM-SHA256", ("AESGCM", "AES", "AES128"), 128, _ALL_KX),
    ("AES256-CCM", "AES-256-CCM", ("AESCCM", "AES", "AES256"), 256, "ECDHE-ECDSA DHE-RSA RSA"),
    ("AES128-CCM", "AES-128-CCM", ("AESCCM", "AES", "AES128"), 128, "ECDHE-ECDSA DHE-RSA RSA"),
    ("AES256-CCM8", "AES-256-CCM-8", ("AESCCM", "AESCCM8", "AES", "AES256"), 256,
     "ECDHE-ECDSA DHE-RSA RSA"),
    ("AES128-CCM8", "AES-128-CCM-8", ("AESCCM", "AESCCM8", "AES", "AES128"), 128,
     "ECDHE-ECDSA DHE-RSA RSA"),
    ("AES256-SHA384", "AES-256-CBC-SHA384", ("AES", "AES256", "SHA384"), 256,
     "ECDHE-ECDSA ECDHE-RSA"),
    ("AES256-SHA256", "AES-256-CBC-SHA256", ("AES", "AES256", "SHA256"), 256, "DHE-RSA RSA"),
    ("AES128-SHA256", "AES-128-CBC-SHA256", ("AES", "AES128", "SHA256"), 128, _ALL_KX),
    ("AES256-SHA", "AES-256-CBC-SHA", ("AES", "AES256", "SHA1", "TLSv1.0"), 256, _ALL_KX),
    ("AES128-SHA", "AES-128-CBC-SHA", ("AES", "AES128", "SHA1", "TLSv1.0"), 128, _ALL_KX),
)


def _build() -> tuple[Suite, ...]:
    out: list[Suite] = []
    for o_suffix, m_suffix, tags, bits, kxs in _BULK:
        for kx in kxs.split():
            o_prefix, m_prefix, kx_tags = _KX[kx]
            aead = "SHA1" not in tags and "SHA256" not in tags and "SHA384" not in tags
            extra = ("TLSv1.2",) if "TLSv1.0" not in tags else ()
            out.append(Suite(o_prefix + o_suffix, m_prefix + m_suffix,
                             frozenset((*tags, *kx_tags, *extra)), bits, aead))
    return tuple(out)


SUITES = _build()
_BY_NAME = {**{s.openssl: s for s in SUITES}, **{s.mbedtls: s for s in SUITES}}

# alias -> the tag it selects ("*": every suite; None: known, selects nothing here)
ALIASES: dict[str, str | None] = {
    "ALL": "*", "DEFAULT": "*", "HIGH": "*",
    "kEECDH": "kECDHE", "kECDHE": "kECDHE", "EECDH": "kECDHE", "ECDHE": "kECDHE",
    "kEDH": "kDHE", "kDHE": "kDHE", "EDH": "kDHE", "DHE": "kDHE",
    "kRSA": "kRSA", "RSA": "kRSA", "aRSA": "aRSA", "aECDSA": "aECDSA", "ECDSA": "aECDSA",
    "AESGCM": "AESGCM", "AESCCM": "AESCCM", "AESCCM8": "AESCCM8", "AES": "AES",
    "AES128": "AES128", "AES256": "AES256", "CHACHA20": "CHACHA20",
    "SHA1": "SHA1", "SHA": "SHA1", "SHA256": "SHA256", "SHA384": "SHA384",
    "TLSv1.2": "TLSv1.2", "TLSv1.0": "TLSv1.0", "TLSv1": "TLSv1.0", "SSLv3": "TLSv1.0",
}
ALIASES.update(dict.fromkeys((
    "COMPLEMENTOFDEFAULT", "COMPLEMENTOFALL", "MEDIUM", "LOW", "EXPORT", "EXP", "eNULL",
    "NULL", "aNULL", "ADH", "AECDH", "RC4", "RC2", "DES", "3DES", "MD5", "SEED", "IDEA",
    "CAMELLIA", "CAMELLIA128", "CAMELLIA256", "ARIA", "ARIA128", "ARIA256", "ARIAGCM", "PSK",
    "kPSK", "aPSK", "kECDHEPSK", "kDHEPSK", "kRSAPSK", "ECDHEPSK", "DHEPSK", "RSAPSK", "SRP",
    "kSRP", "aSRP", "DSS", "aDSS", "kECDH", "kDH", "aDH", "aECDH", "GOST", "kGOST",
    "aGOST01", "SUITEB128", "SUITEB128ONLY", "SUITEB192",
)))


def _matches(name: str, term: str) -> frozenset[Suite]:
    suite = _BY_NAME.get(name)
    if suite is not None:
        return frozenset((suite,))
    if name.startswith("TLS_") or name.startswith("TLS13"):
        raise ValueError(f'"{name}" in "{term}" is a TLS 1.3 suite: Mbed TLS 2.28 has no '
                         "TLS 1.3, and the TLS 1.3 suites of the stdlib backend are "
                         "OpenSSL's defaults")
    if name not in ALIASES:
        inside = f' in "{term}"' if term.lstrip("!-+") != name else ""
        raise ValueError(f'unknown cipher suite or alias "{name}"{inside} (emberd knows '
                         "OpenSSL's names of its suites and the aliases listed in "
                         "docs/porting-from-lighttpd.md)")
    tag = ALIASES[name]
    if tag is None:
        return frozenset()
    if tag == "*":
        return frozenset(SUITES)
    return frozenset(s for s in SUITES if tag in s.tags)


def select(cipher_string: str) -> tuple[Suite, ...]:
    """The suites ``cipher_string`` selects, in order; ValueError if it is not valid."""
    active: list[Suite] = []
    killed: set[Suite] = set()
    for term in cipher_string.replace(",", ":").replace(" ", ":").split(":"):
        if not term:
            continue
        if term.startswith("@"):
            if term == "@STRENGTH":
                active.sort(key=lambda s: -s.bits)
            elif not term.startswith("@SECLEVEL="):
                raise ValueError(f'unknown cipher-list command "{term}"')
            continue
        op = term[0] if term[0] in "!-+" else ""
        names = term[len(op):].split("+")
        if not all(names):
            raise ValueError(f'malformed cipher-list term "{term}"')
        chosen = _matches(names[0], term)
        for name in names[1:]:
            chosen &= _matches(name, term)
        if op == "!":
            killed |= chosen
            active = [s for s in active if s not in chosen]
        elif op == "-":
            active = [s for s in active if s not in chosen]
        elif op == "+":
            active = [s for s in active if s not in chosen] + \
                     [s for s in active if s in chosen]
        else:
            active += [s for s in SUITES if s in chosen and s not in killed
                       and s not in active]
    if not active:
        raise ValueError(f'"{cipher_string}" selects no cipher suite')
    return tuple(active)


def check(cipher_string: str) -> str:
    """For the schema: the string itself if it is valid (ValueError otherwise)."""
    select(cipher_string)
    return cipher_string

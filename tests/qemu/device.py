"""The device's HTTP API as the smoke tests and the bug-#3084 run use it.

The control API is emberd-control behind emberd's mod_fastcgi (prefix /api,
rootfs/etc/emberd/control.conf); requests that change something carry
X-Requested-With (emberd-control's cross-site guard).  mod_auth guards /api/
and the status pages; the device ships no user, so ``provision`` creates
the test user in the guest with the device's own tool (emberd-passwd), and
``authorization`` answers the server's challenge (Digest or Basic) for one
request.  Paths, realm and user file are read from the configuration that
went into the image, so this file changes only if the API does.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from pathlib import Path

from tests.helpers import get

from .guest import Guest

API_STATUS = "/api/status"
API_UPLOAD = "/api/upload"
CHANGE_HEADERS = [("x-requested-with", "XMLHttpRequest")]
# The test user; EMBERD_QEMU_AUTH=user:password overrides it.
USER, _, PASSWORD = os.environ.get("EMBERD_QEMU_AUTH", "admin:emberd-qemu-test").partition(":")
# Without emberd-control in the image, the bug-#3084 workload POSTs to a
# static file (emberd answers a POST to a static file with the file).
FALLBACK_UPLOAD = "/index.html"


def upload_path(name: str) -> str:
    return f"{API_UPLOAD}?name={name}"


def _setting(image_dir: Path, conf: str, key: str, default: str = "") -> str:
    """A string setting (``key = "value"``) of a configuration file in the image."""
    path = image_dir / "rootfs" / "etc" / "emberd" / conf
    text = path.read_text() if path.exists() else ""
    m = re.search(rf'^\s*{re.escape(key)}\s*:?=\s*"([^"]*)"', text, re.M)
    return m.group(1) if m else default


def control_setting(image_dir: Path, key: str) -> str:
    value = _setting(image_dir, "control.conf", key)
    assert value, f"{key} is not set in control.conf"
    return value


def memory_url(image_dir: Path) -> str:
    return _setting(image_dir, "emberd.conf", "status.memory-url", "/server-memory")


def provision(guest: Guest) -> None:
    """The test user in the user file of mod_authn_file (idempotent; nothing without mod_auth)."""
    backend = _setting(guest.image_dir, "emberd.conf", "auth.backend")
    if not backend:
        return
    userfile = _setting(guest.image_dir, "emberd.conf", f"auth.backend.{backend}.userfile")
    conf = (guest.image_dir / "rootfs" / "etc" / "emberd" / "emberd.conf").read_text()
    realm = (re.findall(r'"realm"\s*=>\s*"([^"]*)"', conf) or ["emberd"])[0]
    if backend == "htdigest":
        how, line = f"--digest {realm} --sha256", f"{USER}:{realm}:"
    elif backend == "htpasswd":
        how, line = "", f"{USER}:"
    else:
        how, line = "--plain", f"{USER}:"
    if guest.sh(f"grep -q '^{line}' {userfile}")[0] == 0:
        return
    # emberd reads the file after dropping privileges: group www-data, not world
    guest.check(f"mkdir -p {os.path.dirname(userfile)} && "
                f"echo '{PASSWORD}' | emberd-passwd {how} --stdin {userfile} {USER} && "
                f"chgrp www-data {userfile} && chmod 0640 {userfile}")


def _challenge_params(value: str) -> dict[str, str]:
    return {k.lower(): (q if q else t)
            for k, q, t in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', value)}


def authorization(guest: Guest, method: str, target: str, password: str = PASSWORD,
                  ) -> list[tuple[str, str]]:
    """An Authorization header for one request, from the server's challenge.

    No header when ``target`` needs no authentication.  Digest is answered
    with SHA-256 when offered (else MD5), qop=auth; a nonce stays valid for
    600 s, long enough for the one-minute run to repeat the header.
    """
    r = get(guest.port, target)
    if r.status != 401:
        return []
    challenges = r.all("WWW-Authenticate")
    digest = [c for c in challenges if c.lower().startswith("digest ")]
    if not digest:
        token = base64.b64encode(f"{USER}:{password}".encode()).decode()
        return [("authorization", f"Basic {token}")]
    chosen = next((c for c in digest if "sha-256" in c.lower()), digest[0])
    p = _challenge_params(chosen[len("digest "):])
    algorithm = p.get("algorithm", "MD5")

    def h(text: str) -> str:
        fn = hashlib.sha256 if algorithm.upper().startswith("SHA-256") else hashlib.md5
        return fn(text.encode()).hexdigest()

    realm, nonce, nc, cnonce = p["realm"], p["nonce"], "00000001", secrets.token_hex(8)
    response = h(f"{h(f'{USER}:{realm}:{password}')}:{nonce}:{nc}:{cnonce}:auth:"
                 f"{h(f'{method}:{target}')}")
    value = (f'Digest username="{USER}", realm="{realm}", nonce="{nonce}", uri="{target}", '
             f'algorithm={algorithm}, response="{response}", qop=auth, nc={nc}, '
             f'cnonce="{cnonce}"')
    if "opaque" in p:
        value += f', opaque="{p["opaque"]}"'
    return [("authorization", value)]

"""Debian packages for another architecture, through a private apt.

apt-get runs with its own sources list, package lists and cache under
``build/firmware/cache/apt/<deb-arch>/``: the host's apt configuration and
dpkg architectures are left alone (no ``dpkg --add-architecture``), and the
build needs no root for this part.  Downloaded ``.deb`` files are kept in
``cache/debs/<deb-arch>/`` and checked against the SHA256 of the package
list, so a re-run downloads nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from .log import say, step

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
SUITE = "bookworm"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LISTS_MAX_AGE = 24 * 3600  # refresh the package lists once a day at most


@dataclass(frozen=True)
class Deb:
    name: str
    version: str
    filename: str
    sha256: str
    path: Path


class Apt:
    def __init__(self, cache: Path, deb_arch: str) -> None:
        self.deb_arch = deb_arch
        self.root = cache / "apt" / deb_arch
        self.debs = cache / "debs" / deb_arch
        mirror = os.environ.get("DEBIAN_MIRROR", DEFAULT_MIRROR)
        security = os.environ.get("DEBIAN_SECURITY_MIRROR", DEFAULT_SECURITY)
        for d in ("lists/partial", "cache/archives/partial", "parts", "prefs"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self.debs.mkdir(parents=True, exist_ok=True)
        opts = f"[arch={deb_arch} signed-by={KEYRING}]"
        sources = (f"deb {opts} {mirror} {SUITE} main\n"
                   f"deb {opts} {mirror} {SUITE}-updates main\n"
                   f"deb {opts} {security} {SUITE}-security main\n")
        src = self.root / "sources.list"
        if not src.exists() or src.read_text() != sources:
            src.write_text(sources)
            (self.root / "lists" / "stamp").unlink(missing_ok=True)
        r = self.root
        self.options = [
            f"-oDir::Etc::SourceList={src}", f"-oDir::Etc::SourceParts={r}/parts",
            "-oDir::Etc::Preferences=/dev/null", f"-oDir::Etc::PreferencesParts={r}/prefs",
            f"-oDir::State={r}", f"-oDir::State::Lists={r}/lists",
            "-oDir::State::status=/dev/null", f"-oDir::Cache={r}/cache",
            f"-oAPT::Architecture={deb_arch}", f"-oAPT::Architectures::={deb_arch}",
            "-oAcquire::Languages=none", "-oDebug::NoLocking=1", "-oAcquire::Retries=3",
            # immutable by-hash URLs: a caching proxy or a mirror in mid-sync cannot
            # hand out a Packages file that does not match its Release file
            "-oAcquire::By-Hash=force",
            # as root apt would drop to _apt, which cannot write into build/
            "-oAPT::Sandbox::User=root",
        ]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run([tool, *self.options, *args], cwd=cwd, text=True,
                              capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"{tool} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def update(self) -> None:
        stamp = self.root / "lists" / "stamp"
        if stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE:
            return
        with step(f"apt-get update ({self.deb_arch} lists)"):
            # a mirror (or caching proxy) in mid-sync can serve a Packages file
            # that does not match its Release file: try again once, then go on
            # with the lists that did arrive (apt keeps them), loudly
            for attempt in (1, 2):
                try:
                    self._run("apt-get", "update", "-q")
                    break
                except SystemExit as exc:
                    error = exc
                    if attempt == 1:
                        time.sleep(3)
            else:
                if not any((self.root / "lists").glob(f"*{SUITE}_main_*Packages*")):
                    raise error
                say(f"WARNING: apt-get update failed for some lists; going on with the "
                    f"lists that arrived:\n{error}")
                return
        stamp.touch()

    def depends_of(self, meta: str, prefix: str) -> str:
        """The package a meta-package points at (linux-image-arm64 -> linux-image-6.1.0-N-arm64)."""
        out = self._run("apt-cache", "depends", "--no-recommends", "--no-suggests", meta)
        for line in out.splitlines():
            kind, _, name = line.strip().partition(": ")
            if kind.endswith("Depends") and name.startswith(prefix):
                return name.strip("<>")
        raise SystemExit(f"{meta} ({self.deb_arch}) depends on no {prefix}* package:\n{out}")

    def download(self, names: list[str]) -> dict[str, Deb]:
        """Candidate versions of ``names``, downloaded once, verified by SHA256."""
        out = self._run("apt-get", "download", "--print-uris", *names)
        wanted: list[Deb] = []
        for line in out.splitlines():
            # 'URI' FILENAME SIZE SHA256:HEX
            _uri, filename, _size, digest = line.split()
            name, version, _ = urllib.parse.unquote(filename).split("_")
            wanted.append(Deb(name, version, filename, digest.partition(":")[2],
                              self.debs / filename))
        missing = [d for d in wanted if not _sha_ok(d.path, d.sha256)]
        if missing:
            with step(f"apt-get download {len(missing)} .deb ({self.deb_arch})"):
                self._run("apt-get", "download", "-q",
                          *(f"{d.name}={d.version}" for d in missing), cwd=self.debs)
            for d in missing:
                if not _sha_ok(d.path, d.sha256):
                    raise SystemExit(f"{d.path}: SHA256 does not match the package list")
        got = {d.name: d for d in wanted}
        unknown = set(names) - set(got)
        if unknown:
            raise SystemExit(f"not in Debian {SUITE} ({self.deb_arch}): {sorted(unknown)}")
        return got


_verified: set[tuple[Path, str]] = set()


def _sha_ok(path: Path, sha256: str) -> bool:
    if (path, sha256) in _verified:
        return True
    if not path.exists():
        return False
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    ok = h.hexdigest() == sha256
    if ok:
        _verified.add((path, sha256))
    return ok


def extract(deb: Path, dest: Path, *members: str) -> None:
    """Unpack a .deb (or only ``members``, tar wildcards) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if not members:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        return
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest), "--wildcards", *members],
                   stdin=tar.stdout, check=True)
    if tar.wait() != 0:
        raise SystemExit(f"dpkg-deb --fsys-tarfile {deb} failed")

"""PyPI downloads for the target, and the host tools of the cross-builds.

Target wheels are fetched with ``pip download --platform ... --only-binary``
for CPython 3.11 on the target platform; sdists of the projects that are
cross-built are fetched with ``--no-binary``.  Both land in
``cache/pypi/`` and are looked for there first, so a warm re-run does not
contact PyPI at all.  The host tools (Cython at the version python-mbedtls
pins, setuptools for sdist metadata) live in a venv in ``cache/hostvenv``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .log import step

# python-mbedtls 2.10.1 is tested upstream with Cython 3.0.10 (reference/qemu.md)
HOST_TOOLS = ("Cython==3.0.10", "setuptools>=80", "setuptools-scm>=9.2")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==version`` lines (comments allowed) as {canonical name: version}."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise SystemExit(f"{path}: {line!r} is not pinned with ==")
            pins[canonical(name)] = version.strip()
    return pins


def _dist_of(filename: str) -> tuple[str, str]:
    """(canonical name, version) of a wheel or sdist file name."""
    if filename.endswith(".whl"):
        name, version = filename.split("-")[:2]
    else:
        stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
        name, _, version = stem.rpartition("-")
    return canonical(name), version


def _find(directory: Path, name: str, version: str, suffix: str) -> Path | None:
    for f in directory.glob(f"*{suffix}"):
        if _dist_of(f.name) == (canonical(name), version):
            return f
    return None


def _pip(python: Path | str, *args: str) -> None:
    proc = subprocess.run([str(python), "-m", "pip", *args, "--disable-pip-version-check",
                           "-q"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"pip {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")


class PyPI:
    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self.sdists = cache / "pypi" / "sdist"
        self.sdists.mkdir(parents=True, exist_ok=True)

    def host_venv(self) -> Path:
        """A venv with the host tools; its python."""
        venv = self.cache / "hostvenv"
        stamp = venv / "tools.txt"
        wanted = "\n".join(HOST_TOOLS) + "\n"
        if not stamp.exists() or stamp.read_text() != wanted:
            with step("host venv for the cross-builds (" + ", ".join(HOST_TOOLS) + ")"):
                subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
                _pip(venv / "bin" / "python", "install", *HOST_TOOLS)
                stamp.write_text(wanted)
        return venv / "bin" / "python"

    def wheels(self, pip_arch: str, platforms: tuple[str, ...],
               pins: dict[str, str]) -> list[Path]:
        """Wheels of ``pins`` for CPython 3.11 on ``platforms`` (pure wheels included)."""
        directory = self.cache / "pypi" / pip_arch
        directory.mkdir(parents=True, exist_ok=True)
        missing = [f"{n}=={v}" for n, v in pins.items() if not _find(directory, n, v, ".whl")]
        if missing:
            with step(f"pip download {len(missing)} wheels ({pip_arch})"):
                plat = [a for p in platforms for a in ("--platform", p)]
                _pip(sys.executable, "download", "--no-deps", "--only-binary=:all:", *plat,
                     "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
                     "-d", str(directory), *missing)
        found = []
        for n, v in pins.items():
            f = _find(directory, n, v, ".whl")
            if f is None:
                raise SystemExit(f"pip download gave no wheel for {n}=={v} ({pip_arch})")
            found.append(f)
        return found

    def sdist(self, name: str, version: str) -> Path:
        f = _find(self.sdists, name, version, ".tar.gz")
        if f is None:
            # --no-build-isolation: metadata is prepared with the host venv's
            # setuptools/Cython instead of a fresh isolated env per sdist
            python = self.host_venv()
            with step(f"pip download {name}=={version} (sdist)"):
                _pip(python, "download", "--no-deps", "--no-binary=:all:",
                     "--no-build-isolation", "-d", str(self.sdists), f"{name}=={version}")
            f = _find(self.sdists, name, version, ".tar.gz")
            if f is None:
                raise SystemExit(f"pip download gave no sdist for {name}=={version}")
        return f

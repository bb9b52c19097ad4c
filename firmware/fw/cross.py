"""Cross-builds of the C extensions that PyPI has no ARM wheel for.

python-mbedtls: Cython runs once on the host (its C output does not depend
on the target), then each generated ``.c`` file is compiled with the cross
gcc against the Python headers and Mbed TLS 2.28 from the target's Debian
``.deb``s (the sysroot), and linked against Debian's shared libmbedtls --
not statically as PyPI's x86_64 wheel does, which costs 7-8 MB of RSS.

ujson (armhf only): its sdist bundles double-conversion (C++); the C and C++
sources are compiled with the cross gcc/g++ and linked with libstdc++.

Results go to ``cache/cross/<arch>/<project>-<version>/`` as a tree ready to
copy into dist-packages, keyed by the compiler version, the sysroot
packages and the flags, so a warm re-run reuses them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .arches import Arch
from .log import step

CFLAGS = ("-O2", "-g0", "-fPIC", "-fno-strict-aliasing", "-DNDEBUG", "-fwrapv")
LDFLAGS = ("-shared", "-Wl,--strip-all", "-Wl,-O1")


def _compiler_id(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(f"{cc} not found: apt-get install the cross compiler "
                         "(see firmware/README.md)") from None
    return out.stdout.splitlines()[0]


def _run_all(cmds: list[list[str]]) -> None:
    def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for cmd, proc in zip(cmds, pool.map(run, cmds), strict=True):
            if proc.returncode != 0:
                raise SystemExit(f"cross-build failed: {' '.join(cmd)}\n{proc.stderr}")


def _unpack(sdist: Path, dest: Path) -> Path:
    """The sdist's top directory, unpacked under ``dest`` once."""
    top = dest / sdist.name.removesuffix(".tar.gz")
    if not (top / ".unpacked").exists():
        shutil.rmtree(top, ignore_errors=True)
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(sdist) as tar:
            tar.extractall(dest, filter="data")
        (top / ".unpacked").touch()
    return top


class CrossBuild:
    def __init__(self, arch: Arch, cache: Path, sysroot: Path, sysroot_ids: str) -> None:
        self.arch = arch
        self.cache = cache
        self.sysroot = sysroot
        self.sysroot_ids = sysroot_ids   # versions of the sysroot .debs, for the cache key
        t = arch.triplet
        self.includes = [f"-I{sysroot}/usr/include/python3.11",
                         f"-I{sysroot}/usr/include/{t}/python3.11", f"-I{sysroot}/usr/include"]
        self.libdirs = [f"-L{sysroot}/usr/lib/{t}", f"-Wl,-rpath-link,{sysroot}/usr/lib/{t}",
                        f"-L{sysroot}/lib/{t}"]

    def _cached(self, project: str, version: str, key: Mapping[str, object]) -> tuple[Path, bool]:
        out = self.cache / "cross" / self.arch.name / f"{project}-{version}"
        stamp = out / ".key.json"
        text = json.dumps(key, sort_keys=True)
        if stamp.exists() and stamp.read_text() == text:
            return out, True
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        return out, False

    def _done(self, out: Path, key: Mapping[str, object]) -> None:
        (out / ".key.json").write_text(json.dumps(key, sort_keys=True))

    def mbedtls(self, sdist: Path, version: str, host_python: Path) -> Path:
        """A tree with the ``mbedtls`` package for the target."""
        key = {"cc": _compiler_id(self.arch.cc), "sysroot": self.sysroot_ids,
               "cflags": CFLAGS, "ldflags": LDFLAGS, "sdist": sdist.name}
        out, hit = self._cached("python-mbedtls", version, key)
        if hit:
            return out
        top = _unpack(sdist, self.cache / "src")
        src = top / "src"
        pyx = sorted(p.relative_to(src) for p in src.rglob("*.pyx"))
        if not (top / ".cythonized").exists():
            with step(f"cythonize {len(pyx)} python-mbedtls modules"):
                cython = host_python.parent / "cythonize"
                proc = subprocess.run(
                    [str(cython), "-j", str(os.cpu_count() or 2), "-X", "language_level=3str",
                     *map(str, pyx)], cwd=src, capture_output=True, text=True)
                if proc.returncode != 0:
                    raise SystemExit(f"cythonize failed:\n{proc.stdout}{proc.stderr}")
            (top / ".cythonized").touch()
        with step(f"cross-compile python-mbedtls {version} ({self.arch.name}, "
                  f"{len(pyx)} modules)"):
            cmds = []
            for p in pyx:
                target = out / p.with_suffix("").with_name(p.stem + self.arch.ext_suffix)
                target.parent.mkdir(parents=True, exist_ok=True)
                cmds.append([self.arch.cc, *CFLAGS, *self.includes, str(src / p.with_suffix(".c")),
                             *LDFLAGS, *self.libdirs, "-lmbedtls", "-lmbedx509", "-lmbedcrypto",
                             "-o", str(target)])
            _run_all(cmds)
        # the pure-Python part of the package, as the wheel would install it
        for f in (src / "mbedtls").rglob("*"):
            if f.suffix == ".py" or f.name == "py.typed":
                dest = out / f.relative_to(src)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, dest)
        self._done(out, key)
        return out

    def ujson(self, sdist: Path, version: str) -> Path:
        """A tree with the ``ujson`` extension module for the target."""
        key = {"cc": _compiler_id(self.arch.cc), "cxx": _compiler_id(self.arch.cxx),
               "sysroot": self.sysroot_ids, "cflags": CFLAGS, "ldflags": LDFLAGS,
               "sdist": sdist.name}
        out, hit = self._cached("ujson", version, key)
        if hit:
            return out
        top = _unpack(sdist, self.cache / "src")
        src = top / "src" / "ujson"
        dconv = src / "deps" / "double-conversion" / "double-conversion"
        sources = [*sorted(dconv.glob("*.cc")), src / "dconv_wrapper.cc",
                   src / "ujson.c", src / "encode.c", src / "decode.c"]
        objdir = out / "obj"
        objdir.mkdir()
        defs = ["-D_GNU_SOURCE", f'-DUJSON_VERSION="{version}"', f"-I{src}", f"-I{dconv}"]
        with step(f"cross-compile ujson {version} ({self.arch.name}, {len(sources)} files)"):
            cmds = []
            objs = []
            for s in sources:
                obj = objdir / (s.name + ".o")
                objs.append(str(obj))
                cc = self.arch.cxx if s.suffix == ".cc" else self.arch.cc
                cmds.append([cc, *CFLAGS, *defs, *self.includes, "-c", str(s), "-o", str(obj)])
            _run_all(cmds)
            _run_all([[self.arch.cxx, *LDFLAGS, *objs, "-lstdc++", "-lm",
                       "-o", str(out / ("ujson" + self.arch.ext_suffix))]])
        shutil.rmtree(objdir)
        self._done(out, key)
        return out

#!/usr/bin/env python3
"""make image ARCH=aarch64|armhf: a bootable QEMU test image of emberd.

Output in ``build/firmware/<arch>/``: ``vmlinuz`` (Debian's stock kernel,
resolved through its meta-package), ``initrd.cpio.gz`` (the whole root file
system, see fw/rootfs.py for what goes in and in which order) and
``manifest.json`` (every package version, sizes, build time).  Downloads
and cross-builds are cached in ``build/firmware/cache/``; an image whose
inputs have not changed since the last build is not rebuilt (``--force``
rebuilds it).

Before the image is packed, Debian's ARM Python from the tree runs under
qemu-user (a second, not a boot) to import every runtime package and check
the device configuration with ``emberd -tt``: a bad cross-build fails here,
with its real error, rather than as a guest that never answers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fw import apt, arches, cpio, kernel, pypi
from fw.cross import CrossBuild
from fw.log import say, step
from fw.rootfs import Rootfs

REPO = Path(__file__).resolve().parent.parent
HOST_TOOLS = {"dpkg-deb": "dpkg", "apt-get": "apt", "tar": "tar", "modinfo": "kmod"}
# what the image build reads from the repository: a change to any of it rebuilds
INPUTS = ("src/emberd", "rootfs", "buildroot/package/emberd", "pyproject.toml",
          "firmware/image.py", "firmware/fw", "firmware/skeleton",
          "firmware/debian-packages.txt", "firmware/requirements-target.txt")
IMPORT_CHECK = ("import asyncio, h11, h2.connection, ujson, mbedtls.tls, mbedtls.version, "
                "emberd.cli, emberd.core.server, emberd.core.http2; "
                "print(mbedtls.version.version, ujson.dumps({'ujson': ujson.__version__}))")


def read_packages(path: Path) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        elif line:
            if current is None:
                raise SystemExit(f"{path}: {line!r} is outside a [section]")
            current.append(line)
    return sections


def fingerprint(arch: str) -> str:
    h = hashlib.sha256(arch.encode())
    for top in INPUTS:
        base = REPO / top
        files = [base] if base.is_file() else sorted(
            p for p in base.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
        for f in files:
            h.update(str(f.relative_to(REPO)).encode() + b"\0")
            h.update(f.read_bytes())
            h.update(b"%o" % (f.stat().st_mode & 0o111))
    return h.hexdigest()


def sysroot_for(debs: list[apt.Deb], cache: Path, deb_arch: str) -> tuple[Path, str]:
    ids = " ".join(sorted(d.filename for d in debs))
    root = cache / "sysroot" / deb_arch
    stamp = root / ".debs"
    if not stamp.exists() or stamp.read_text() != ids:
        shutil.rmtree(root, ignore_errors=True)
        for d in debs:
            apt.extract(d.path, root)
        stamp.write_text(ids)
    return root, ids


def preboot_check(arch: arches.Arch, root: Path) -> str:
    """Import everything and check the config with the target's Python under qemu-user."""
    qemu = shutil.which(arch.qemu_user) or arch.qemu_user
    # env -i and no bytecode writes: qemu-user's -L falls back to host paths
    # for anything missing from the tree (reference/qemu.md)
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
    python = [qemu, "-L", str(root), str(root / "usr/bin/python3.11")]
    out = []
    checks = [["-c", IMPORT_CHECK], ["/usr/bin/emberd", "-tt", "-f", "/etc/emberd/emberd.conf"]]
    if (root / "usr/bin/emberd-control").exists():
        checks.append(["/usr/bin/emberd-control", "-t", "--config", "/etc/emberd/control.conf"])
    for cmd in checks:
        proc = subprocess.run([*python, *cmd], env=env, capture_output=True, text=True,
                              timeout=120)
        if proc.returncode != 0:
            raise SystemExit(f"pre-boot check failed under {arch.qemu_user}: "
                             f"python3.11 {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        out.append(proc.stdout.strip())
    return " / ".join(o for o in out if o)


def build(arch: arches.Arch, out: Path, cache: Path) -> dict[str, object]:
    started = time.monotonic()
    for tool, package in HOST_TOOLS.items():
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install {package}")
    packages = read_packages(REPO / "firmware" / "debian-packages.txt")
    a = apt.Apt(cache, arch.deb_arch)
    a.update()
    kernel_pkg = a.depends_of(arch.kernel_meta, "linux-image-")
    debs = a.download([*packages["runtime"], *packages["sysroot"], kernel_pkg])
    for name, prefix in (("libmbedtls14", "2.28."), ("python3.11-minimal", "3.11.")):
        if not debs[name].version.startswith(prefix):
            raise SystemExit(f"{name} is {debs[name].version}; the image needs {prefix}x")
    kern = kernel.prepare(debs[kernel_pkg].path, cache, arch.kernel_glob)

    pins = pypi.read_pins(REPO / "firmware" / "requirements-target.txt")
    index = pypi.PyPI(cache)
    wheels = index.wheels(arch.name, arch.pip_platforms,
                          {n: v for n, v in pins.items() if n not in arch.cross_built})
    sysroot, ids = sysroot_for(
        [debs[n] for n in (*packages["sysroot"], "libmbedtls14", "libmbedcrypto7",
                           "libmbedx509-1")], cache, arch.deb_arch)
    cross = CrossBuild(arch, cache, sysroot, ids)
    trees = []
    for project in arch.cross_built:
        sdist = index.sdist(project, pins[project])
        if project == "python-mbedtls":
            trees.append(cross.mbedtls(sdist, pins[project], index.host_venv()))
        elif project == "ujson":
            trees.append(cross.ujson(sdist, pins[project]))
        else:
            raise SystemExit(f"no cross-build recipe for {project}")

    fs = Rootfs(REPO, arch, out / "rootfs")
    with step(f"assemble the root file system ({arch.name})"):
        fs.create()
        fs.add_debs([debs[n].path for n in packages["runtime"]])
        fs.busybox_links()
        fs.add_wheels(wheels)
        for tree in trees:
            fs.add_tree(tree)
        commands = fs.add_emberd()
        scripts = fs.add_init_scripts()
        fs.add_kernel_modules(kern)
        fs.add_overlay()
    fs.compile()
    with step("pre-boot check under qemu-user"):
        check = preboot_check(arch, fs.root)
    say(f"pre-boot check: {check}")
    initrd = out / "initrd.cpio.gz"
    with step("write initrd.cpio.gz"):
        cpio.write_initramfs(fs.root, initrd)
    shutil.copyfile(kern.image, out / "vmlinuz")
    return {
        "arch": arch.name,
        "kernel": {"package": kernel_pkg, "version": kern.version,
                   "deb": debs[kernel_pkg].version,
                   "modules": [m.name for m in kern.modules]},
        "debs": {n: debs[n].version for n in packages["runtime"]},
        "sysroot": {n: debs[n].version for n in packages["sysroot"]},
        "python": {"wheels": sorted(w.name for w in wheels),
                   "cross_built": {p: pins[p] for p in arch.cross_built}},
        "commands": commands,
        "init_scripts": scripts,
        "preboot_check": check,
        "sizes": {"rootfs": fs.size(), "initrd_gz": initrd.stat().st_size,
                  "vmlinuz": (out / "vmlinuz").stat().st_size},
        "build_seconds": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="aarch64", help="aarch64 or armhf")
    p.add_argument("--out", type=Path, help="default: build/firmware/<arch>")
    p.add_argument("--cache", type=Path, default=REPO / "build" / "firmware" / "cache")
    p.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    args = p.parse_args(argv)
    arch = arches.get(args.arch)
    out = (args.out or REPO / "build" / "firmware" / arch.name).resolve()
    cache = args.cache.resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    fp = fingerprint(arch.name)
    if not args.force and manifest_path.exists() and (out / "initrd.cpio.gz").exists():
        old = json.loads(manifest_path.read_text())
        if old.get("inputs") == fp:
            say(f"{out.relative_to(REPO)}: up to date (inputs unchanged; --force rebuilds)")
            return 0
    manifest_path.unlink(missing_ok=True)
    manifest = build(arch, out, cache)
    manifest["inputs"] = fp
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    mib = 1 << 20
    s = manifest["sizes"]
    assert isinstance(s, dict)
    say(f"image {out.relative_to(REPO)}: initrd.cpio.gz {s['initrd_gz'] / mib:.1f} MiB "
        f"(root file system {s['rootfs'] / mib:.1f} MiB), vmlinuz {s['vmlinuz'] / mib:.1f} MiB, "
        f"kernel {manifest['kernel']['version']}, "  # type: ignore[index]
        f"built in {manifest['build_seconds']} s")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())

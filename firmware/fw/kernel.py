"""Debian's stock kernel and the few modules the QEMU virt board needs.

Debian builds virtio-pci, virtio-mmio, virtio-net and virtio-rng as modules
(reference/qemu.md, pitfall 1).  Only those ``.ko`` files and their
dependencies go into the image, loaded with busybox ``insmod`` in dependency
order (``lib/modules/<version>/modules.load``, read by ``S01modules``).  The
``.deb`` has no ``modules.dep``; dependencies come from ``modinfo -F
depends`` on the host, which reads any architecture's ``.ko``.

The kernel .deb is 60 MB and xz-compressed: its file list and the extracted
pieces are cached per package version in ``cache/kernel/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import apt
from .log import step

# What the guest needs: the PCI/MMIO transports, the network card and an
# entropy source (Python's start-up calls getrandom(), which waits for the CRNG).
WANTED = ("virtio_pci", "virtio_mmio", "virtio_net", "virtio_rng")


@dataclass(frozen=True)
class Kernel:
    version: str          # uname -r
    image: Path           # vmlinuz
    modules: list[Path]   # .ko files in load order
    tree: Path            # where the extracted lib/modules/<version> lives


def _norm(name: str) -> str:
    return name.replace("-", "_")


def prepare(deb: Path, cache: Path, kernel_glob: str) -> Kernel:
    work = cache / "kernel" / deb.stem
    meta = work / "kernel.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        return Kernel(m["version"], work / m["image"], [work / p for p in m["modules"]],
                      work / "lib" / "modules" / m["version"])
    with step(f"kernel and modules from {deb.name}"):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        listing = subprocess.run(
            f"dpkg-deb --fsys-tarfile '{deb}' | tar -t", shell=True, check=True,
            capture_output=True, text=True).stdout.split()
        kos = {_norm(Path(p).name.removesuffix(".ko")): p.removeprefix("./")
               for p in listing if p.endswith(".ko")}
        images = [p.removeprefix("./") for p in listing
                  if Path(p.removeprefix("./")).match(kernel_glob)]
        if len(images) != 1:
            raise SystemExit(f"{deb.name}: expected one {kernel_glob}, found {images}")
        version = images[0].split("vmlinuz-", 1)[1]
        # resolve the dependency closure, extracting what each round adds
        deps: dict[str, list[str]] = {}
        todo = [_norm(n) for n in WANTED]
        first = True
        while todo:
            for n in todo:
                if n not in kos:
                    raise SystemExit(f"{deb.name} has no module {n}.ko")
            members = [kos[n] for n in todo] + (images if first else [])
            apt.extract(deb, work, *(f"./{m}" for m in members))
            first = False
            for n in todo:
                out = subprocess.run(["modinfo", "-F", "depends", str(work / kos[n])],
                                     capture_output=True, text=True, check=True).stdout
                deps[n] = [_norm(d) for d in out.strip().split(",") if d]
            todo = sorted({d for ds in deps.values() for d in ds} - set(deps))
        order: list[str] = []

        def visit(n: str, path: tuple[str, ...] = ()) -> None:
            if n in order:
                return
            if n in path:
                raise SystemExit(f"module dependency cycle: {' -> '.join((*path, n))}")
            for d in deps[n]:
                visit(d, (*path, n))
            order.append(n)

        for n in sorted(deps):
            visit(n)
        meta.write_text(json.dumps({"version": version, "image": images[0],
                                    "modules": [kos[n] for n in order]}, indent=1))
    return prepare(deb, cache, kernel_glob)

"""The image tree: what goes where, in the order a Buildroot build does it.

1. the test-image skeleton (``firmware/skeleton``: busybox init, rcS/rcK,
   fstab, passwd/group with www-data = 33, network and module scripts, the
   test channel) -- the part Buildroot's skeleton and packages provide on a
   real device;
2. the Debian runtime packages, pruned of docs, locales, gconv and the
   Python extension modules whose libraries are not shipped;
3. Python packages: wheels and cross-built trees into
   ``/usr/lib/python3/dist-packages`` (Debian's Python ignores
   site-packages), emberd from ``src/`` with launchers for its console
   scripts (emberd, and emberd-control once pyproject.toml declares it);
4. the init scripts from ``buildroot/package/emberd/`` (mode 0755, as
   ``EMBERD_INSTALL_INIT_SYSV`` installs them);
5. the kernel modules;
6. the device overlay ``rootfs/`` last, as ``BR2_ROOTFS_OVERLAY`` is;
7. bytecode for everything, ``--invalidation-mode unchecked-hash``, so the
   guest never compiles (host CPython 3.11.x has the same magic number as
   Debian's 3.11.2).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from . import apt
from .arches import Arch
from .kernel import Kernel
from .log import step

PYLIB = "usr/lib/python3.11"
DIST = "usr/lib/python3/dist-packages"
CGI = "usr/lib/emberd-test/www/cgi-bin"

# Paths of the Debian packages that a device never uses.
PRUNE = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian",
         "usr/share/locale", "usr/share/bug", "usr/share/gdb", "usr/share/binfmts",
         "usr/share/pixmaps", "usr/share/applications", "usr/share/gcc",
         "usr/share/python3", "usr/lib/{t}/gconv", "usr/bin/pydoc3.11",
         "usr/bin/pygettext3.11", "etc/ld.so.conf.d", "usr/lib/{t}/audit",
         "sbin/ldconfig", "usr/bin/ldd", "usr/bin/iconv", "usr/bin/locale",
         "usr/bin/localedef", "usr/bin/getconf", "usr/bin/getent", "usr/bin/zdump",
         "usr/sbin/iconvconfig", "usr/sbin/zic",
         # stdlib parts for GUIs, tests and packaging
         PYLIB + "/idlelib", PYLIB + "/tkinter", PYLIB + "/turtledemo", PYLIB + "/lib2to3",
         PYLIB + "/pydoc_data", PYLIB + "/ensurepip", PYLIB + "/test", PYLIB + "/venv",
         PYLIB + "/sqlite3", PYLIB + "/curses", PYLIB + "/dbm")

# Extension modules whose shared libraries are not in the image
# (reference/qemu.md): without them `import ssl` fails cleanly, and asyncio
# runs without OpenSSL -- as on the device, whose python3 has no _ssl.
DROP_EXT = ("_ssl", "_hashlib", "_bz2", "_lzma", "_sqlite3", "_uuid", "_curses",
            "_curses_panel", "_dbm", "_gdbm", "nis", "readline", "_crypt", "_tkinter")

DIRS = ("dev", "proc", "sys", "tmp", "run", "root", "mnt", "etc/init.d", "bin", "sbin",
        "usr/bin", "usr/sbin", "var", "usr/local/lib/python3.11/dist-packages")
# As in Buildroot's skeleton: what is written under /var lives on tmpfs.
SYMLINKS = {"var/run": "../run", "var/log": "../tmp", "var/tmp": "../tmp",
            "var/lock": "../tmp", "usr/bin/python3": "python3.11"}


def _copytree(src: Path, dest: Path) -> None:
    """Copy ``src`` over ``dest`` (symlinks as symlinks), like an overlay."""
    for dirpath, dirnames, filenames in os.walk(src):
        base = Path(dirpath)
        out = dest / base.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            s, d = base / name, out / name
            if s.suffix == ".pyc":
                continue
            if d.is_symlink() or d.exists():
                d.unlink()
            if s.is_symlink():
                d.symlink_to(os.readlink(s))
            else:
                shutil.copy2(s, d)


def _rm(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


class Rootfs:
    def __init__(self, repo: Path, arch: Arch, root: Path) -> None:
        self.repo = repo
        self.arch = arch
        self.root = root

    def create(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        for d in DIRS:
            (self.root / d).mkdir(parents=True, exist_ok=True)
        for link, target in SYMLINKS.items():
            (self.root / link).parent.mkdir(parents=True, exist_ok=True)
            (self.root / link).symlink_to(target)
        _copytree(self.repo / "firmware" / "skeleton", self.root)
        # modes that a git checkout does not keep, or may lose
        (self.root / "etc" / "shadow").chmod(0o600)
        for script in [self.root / "init", *(self.root / "etc" / "init.d").iterdir(),
                       *(self.root / CGI).iterdir()]:
            script.chmod(0o755)

    def add_debs(self, debs: list[Path]) -> None:
        with step(f"unpack {len(debs)} Debian packages"):
            for deb in debs:
                apt.extract(deb, self.root)
            for p in PRUNE:
                _rm(self.root / p.format(t=self.arch.triplet))
            dynload = self.root / PYLIB / "lib-dynload"
            for name in DROP_EXT:
                _rm(dynload / f"{name}{self.arch.ext_suffix}")

    def busybox_links(self) -> None:
        """Applet symlinks, as ``busybox --install -s`` would make them (without overwriting)."""
        qemu = shutil.which(self.arch.qemu_user)
        if qemu is None:
            raise SystemExit(f"{self.arch.qemu_user} not found: apt-get install qemu-user-static")
        out = subprocess.run([qemu, str(self.root / "bin/busybox"), "--list-full"],
                             capture_output=True, text=True, check=True).stdout
        for path in out.split():
            link = self.root / path
            if not (link.exists() or link.is_symlink()):
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to("/bin/busybox")

    def add_wheels(self, wheels: list[Path]) -> None:
        dist = self.root / DIST
        for whl in wheels:
            with zipfile.ZipFile(whl) as z:
                z.extractall(dist)

    def add_tree(self, tree: Path) -> None:
        _copytree(tree, self.root / DIST)
        _rm(self.root / DIST / ".key.json")

    def add_emberd(self) -> list[str]:
        """emberd from the working tree, and a launcher per console script."""
        _copytree(self.repo / "src" / "emberd", self.root / DIST / "emberd")
        project = tomllib.loads((self.repo / "pyproject.toml").read_text())["project"]
        commands = []
        for name, ref in sorted(project.get("scripts", {}).items()):
            module, _, attr = ref.partition(":")
            launcher = self.root / "usr" / "bin" / name
            launcher.write_text(
                "#!/usr/bin/python3.11\n"
                f"# {name}: console script of emberd (installed by firmware/fw/rootfs.py)\n"
                "import sys\n"
                f"from {module} import {attr.split('.')[0]}\n"
                f"sys.exit({attr}())\n")
            launcher.chmod(0o755)
            commands.append(name)
        return commands

    def add_init_scripts(self) -> list[str]:
        pkg = self.repo / "buildroot" / "package" / "emberd"
        names = []
        for script in sorted(pkg.glob("S[0-9][0-9]*")):
            dest = self.root / "etc" / "init.d" / script.name
            shutil.copyfile(script, dest)
            dest.chmod(0o755)
            names.append(script.name)
        return names

    def add_kernel_modules(self, kernel: Kernel) -> None:
        moddir = self.root / "lib" / "modules" / kernel.version
        moddir.mkdir(parents=True, exist_ok=True)
        order = []
        for ko in kernel.modules:
            rel = ko.relative_to(kernel.tree)
            (moddir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ko, moddir / rel)
            order.append(rel.as_posix())
        (moddir / "modules.load").write_text("\n".join(order) + "\n")

    def add_overlay(self) -> None:
        _copytree(self.repo / "rootfs", self.root)

    def compile(self) -> None:
        if sys.version_info[:2] != (3, 11):
            raise SystemExit("the image's bytecode must be written by CPython 3.11 "
                             f"(this is {sys.version.split()[0]})")
        magic = importlib.util.MAGIC_NUMBER
        if int.from_bytes(magic[:2], "little") != 3495:
            raise SystemExit(f"CPython magic {magic!r} differs from Debian 3.11's (3495)")
        with step("compile bytecode (unchecked-hash)"):
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", "-j", "0",
                 "--invalidation-mode", "unchecked-hash", "-s", str(self.root), "-p", "/",
                 str(self.root / PYLIB), str(self.root / DIST)],
                check=True, stdout=subprocess.DEVNULL)

    def size(self) -> int:
        total = 0
        for dirpath, _, filenames in os.walk(self.root):
            for f in filenames:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    total += p.stat().st_size
        return total

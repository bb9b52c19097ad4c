"""The initramfs: a gzip-compressed cpio archive in the kernel's "newc" format.

Written here rather than with ``find | cpio`` so that the archive does not
depend on who builds it: every entry is owned by root, all times are one
fixed value, the order is sorted, and device nodes (``/dev/console``, which
the kernel opens before ``/init`` runs) are added without needing root or
``mknod`` on the host.
"""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path
from typing import BinaryIO

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "1700000000"))


class CpioWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.ino = 0

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0),
               nlink: int = 1) -> None:
        self.ino += 1
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, nlink, MTIME, len(data), 0, 0, rdev[0], rdev[1],
                  len(encoded), 0)
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(head + encoded + b"\0" * (-(len(head) + len(encoded)) % 4))
        self.out.write(data + b"\0" * (-len(data) % 4))

    def add_tree(self, root: Path) -> None:
        """Everything under ``root``, as the image's ``/``."""
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            base = Path(dirpath)
            rel = base.relative_to(root).as_posix()
            if rel != ".":
                self._entry(rel, stat.S_IFDIR | (base.stat().st_mode & 0o7777), nlink=2)
            for name in sorted(filenames) + [d for d in dirnames if (base / d).is_symlink()]:
                path = base / name
                st = path.lstat()
                arcname = path.relative_to(root).as_posix()
                if stat.S_ISLNK(st.st_mode):
                    self._entry(arcname, stat.S_IFLNK | 0o777, os.readlink(path).encode())
                elif stat.S_ISREG(st.st_mode):
                    self._entry(arcname, stat.S_IFREG | (st.st_mode & 0o7777),
                                path.read_bytes())
                else:
                    raise SystemExit(f"{path}: only files, directories and symlinks go "
                                     "into the image tree; add device nodes with add_node()")

    def add_node(self, name: str, char_major: int, char_minor: int, perm: int = 0o600) -> None:
        self._entry(name, stat.S_IFCHR | perm, rdev=(char_major, char_minor))

    def finish(self) -> None:
        self._entry("TRAILER!!!", 0, nlink=1)


def write_initramfs(root: Path, out: Path, level: int = 9) -> None:
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=level,
                                              mtime=0, filename="") as gz:
        w = CpioWriter(gz)  # type: ignore[arg-type]
        w.add_tree(root)
        # the kernel opens /dev/console before /init mounts devtmpfs
        w.add_node("dev/console", 5, 1)
        w.add_node("dev/null", 1, 3, 0o666)
        w.finish()
    tmp.replace(out)

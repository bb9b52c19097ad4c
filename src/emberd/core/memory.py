"""Process memory: glibc malloc tuning and what the kernel says we use.

lighttpd 1.4.60 fixed bug #3084 partly by calling ``mallopt(M_ARENA_MAX, 2)``
at start and ``malloc_trim(top_pad)`` every 64 s; emberd does the same
through ctypes when the C library is glibc, and does nothing elsewhere (musl
has neither call and returns memory on its own).
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

M_ARENA_MAX = -8  # from glibc's malloc.h

# How emberd is started on the device (S50emberd, make run, the soak): Python objects
# through malloc.  pymalloc's 1 MiB arenas are given back only when wholly empty, and a
# burst leaves a few pinned by one surviving object each (the soak: +2.7 MB three minutes
# after its burst); through malloc, malloc_trim() returns the free pages at the next
# tick (+0.8 to +1.2 MB), for the same CPU per request.
ALLOCATOR_ENVIRONMENT = {"PYTHONMALLOC": "malloc"}


_MALLINFO_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                    "uordblks", "fordblks", "keepcost")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO_FIELDS]


def _load_libc() -> Any:
    # the process's own symbols include the C library's (ctypes.util.find_library
    # would pull in shutil, tempfile, bz2 and lzma: half a megabyte for a name)
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    # glibc has gnu_get_libc_version; musl and others do not
    if not hasattr(libc, "gnu_get_libc_version"):
        return None
    return libc


_libc = _load_libc()


def is_glibc() -> bool:
    return _libc is not None


def set_arena_max(arenas: int) -> bool:
    """mallopt(M_ARENA_MAX, arenas); False when not glibc or refused."""
    if _libc is None or arenas <= 0:
        return False
    return bool(_libc.mallopt(M_ARENA_MAX, arenas))


def trim(top_pad: int) -> bool:
    """malloc_trim(top_pad): give free heap pages back; True if any were released."""
    if _libc is None:
        return False
    return bool(_libc.malloc_trim(ctypes.c_size_t(top_pad)))


def mallinfo() -> dict[str, int] | None:
    """glibc's mallinfo2() (2.33+) as a dict, or None where it is missing."""
    if _libc is None or not hasattr(_libc, "mallinfo2"):
        return None
    fn = _libc.mallinfo2
    fn.restype = _Mallinfo2
    info = fn()
    return {name: int(getattr(info, name)) for name in _MALLINFO_FIELDS}


def python_allocator() -> str:
    """Which allocator holds Python's objects in this process (PYTHONMALLOC, or pymalloc)."""
    return os.environ.get("PYTHONMALLOC") or "pymalloc"


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The Vm*/Rss* lines of /proc/PID/status, in kB."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith((b"Vm", b"Rss")):
                    key, _, rest = line.partition(b":")
                    parts = rest.split()
                    if parts and parts[0].isdigit():
                        out[key.decode()] = int(parts[0])
    except OSError:
        pass
    return out


def pss_kb(pid: int | str = "self") -> int | None:
    """Proportional set size from /proc/PID/smaps_rollup (kB), where the kernel has it."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")

"""``emberd --memory-budget``: the most memory a configuration lets emberd use.

The budget is a sum of lines, each naming the directive behind it:

* the start-up baseline, measured: a child Python imports what this
  configuration loads (the core, its modules, h2 when HTTP/2 is on) and
  loads the configuration, and reports its VmRSS;
* per connection, the larger of an HTTP/1.1 and an HTTP/2 connection,
  times ``server.max-connections``.  Their parts are bounded by the code
  (output queues, read buffers) and by directives (request head, body kept
  in memory, HTTP/2 streams and their records);
* pools and caches kept between requests (free slabs, pooled request
  objects, stat cache entries, what malloc_trim leaves at the heap top);
* temp-file bytes when an upload directory is a tmpfs (RAM on a device);
* FastCGI backends emberd starts (bin-path): each is started once, here,
  and its RSS measured after a second, times ``max-procs``.

A limit of 0 (no limit) makes a line unbounded: it says so and names the
directive.  Python object sizes are measured constants (see below): the
budget is an upper bound for planning, not an accounting of every byte.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ..config.settings import ServerConfig
from .http1 import SMALL_RESPONSE
from .http1 import STREAM_QUEUE as H1_STREAM_QUEUE
from .http2 import OUTPUT_BOUND
from .http2 import STREAM_QUEUE as H2_STREAM_QUEUE

KIB = 1024
# Python objects, measured with `status.memory-url` (RssAnon) around 400 idle
# HTTP/1.1 connections and 200 HTTP/2 connections with 8 open streams each
# (x86_64, CPython 3.11): 3.7 KiB, 2 KiB + 4.5 KiB per stream, 55 bytes per
# closed-stream record.  Rounded up generously: allocator slack and 32-bit
# versus 64-bit differences.
H1_OBJECTS = 8 * KIB
H2_OBJECTS = 16 * KIB
H2_STREAM_OBJECTS = 8 * KIB
H2_CLOSED_RECORD = 256
HPACK_TABLES = 2 * 4096  # encoder and decoder dynamic tables (lighttpd's size too)
REQUEST_OBJECT = 2 * KIB
STAT_CACHE_ENTRY = 512
TMPFS_MAGIC = 0x01021994
BACKEND_SETTLE = 1.0  # seconds a started backend runs before its RSS is read


@dataclass(slots=True)
class Line:
    what: str
    directive: str
    count: int
    each: int | None  # bytes; None: unbounded
    note: str = ""

    @property
    def total(self) -> int | None:
        return None if self.each is None else self.count * self.each


def _chunked(n: int, chunk: int) -> int:
    """Bytes of whole chunks holding ``n`` bytes."""
    return -(-n // chunk) * chunk if n else 0


def _tls_backend(config: ServerConfig) -> str | None:
    """The TLS backend when some listener has ssl.engine on, else None."""
    from .listeners import config_tokens

    if any(config.for_socket(t).get("ssl.engine") for t in config_tokens(config)):
        return str(config["ssl.backend"])
    return None


def _baseline(config: ServerConfig) -> int:
    """VmRSS (bytes) of a Python that imported what emberd imports for ``config``."""
    modules = [p.__module__ for p in config.plugins]
    h2 = config["server.feature-flags"]["server.h2proto"]
    tls = _tls_backend(config)
    code = "\n".join((
        "from emberd.cli import keep_ssl_out",
        "keep_ssl_out()",
        "import importlib, emberd.core.server",
        *(f"importlib.import_module({m!r})" for m in modules),
        "import emberd.core.http2" if h2 else "",
        f"import emberd.tls.{tls}_backend" if tls else "",
        "from emberd.config.loader import load",
        f"load({config.path!r})" if config.path != "-" else "",
        "from emberd.core import memory",
        "print(memory.proc_status()['VmRSS'])",
    ))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"measuring the baseline failed: {out.stderr.strip()[-300:]}")
    return int(out.stdout.split()[-1]) * KIB


def _on_tmpfs(path: str) -> bool:
    """True when ``path`` is on a tmpfs (its bytes are RAM)."""
    best, fstype = "", ""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and (path == parts[1] or path.startswith(
                        parts[1].rstrip("/") + "/")) and len(parts[1]) >= len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        return False
    return fstype == "tmpfs"


def _backend_rss(command: str) -> int | None:
    """Start ``command`` as emberd would (a listening socket on fd 0); its RSS in bytes."""
    import socket

    with tempfile.TemporaryDirectory(prefix="emberd-budget-") as tmp:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(tmp, "backend.sock"))
        sock.listen(1)
        try:
            p = subprocess.Popen(["/bin/sh", "-c", "exec " + command], stdin=sock.fileno(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 cwd=tmp, start_new_session=True)
        except OSError:
            return None
        finally:
            sock.close()
        try:
            time.sleep(BACKEND_SETTLE)
            total = 0
            for pid in _tree(p.pid):
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1]) * KIB
                except OSError:
                    continue
            return total or None
        finally:
            _stop(p)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (php-cgi forks its workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _stop(p: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(5)
    except (OSError, subprocess.TimeoutExpired):
        with contextlib.suppress(OSError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def lines(config: ServerConfig, measure: bool = True) -> list[Line]:
    """The budget of ``config``; ``measure=False`` leaves out what needs a child process."""
    v = config.values
    chunk = v["server.chunkqueue-chunk-sz"]
    head = v["server.max-request-field-size"]
    body_mem = v["emberd.body-memory-max"]
    conns = v["server.max-connections"]
    out: list[Line] = []
    if measure:
        out.append(Line("start-up baseline (imports and configuration, measured)", "", 1,
                        _baseline(config)))
    # HTTP/1.1: the receive chunk, the request head (and pipelined bytes up to the same
    # bound), the body kept in chunks, the response queue and the chunks in flight
    h1 = (H1_OBJECTS + chunk + 2 * head + _chunked(body_mem, chunk)
          + max(H1_STREAM_QUEUE, SMALL_RESPONSE) + 2 * chunk)
    h1_note = ("objects, receive chunk, 2 x server.max-request-field-size, "
               "emberd.body-memory-max, 64 KiB response queue")
    per_conn = Line("per HTTP/1.1 connection", "server.max-connections", conns, h1, h1_note)
    if v["server.feature-flags"]["server.h2proto"]:
        streams = v["h2.max-concurrent-streams"]
        stream = (H2_STREAM_OBJECTS + head + _chunked(body_mem, chunk) + H2_STREAM_QUEUE)
        h2 = (H2_OBJECTS + HPACK_TABLES + chunk + v["h2.max-frame-size"]
              + v["h2.max-header-block-size"] + OUTPUT_BOUND
              + streams * stream + v["h2.max-closed-streams"] * H2_CLOSED_RECORD)
        if h2 > h1:
            per_conn = Line(
                "per HTTP/2 connection (larger than HTTP/1.1: "
                f"{h1 // KIB} KiB)", "server.max-connections", conns, h2,
                f"objects, HPACK tables, h2.max-frame-size, h2.max-header-block-size, "
                f"64 KiB output, h2.max-concurrent-streams ({streams}) x (head, "
                f"emberd.body-memory-max, 64 KiB queue), h2.max-closed-streams records")
    tls = _tls_backend(config)
    if tls is not None:
        from ..tls import buffer_bound

        out.append(Line(f"TLS per connection ({tls}: records, buffers, handshake state)",
                        "server.max-connections", conns, buffer_bound(tls)))
    out.append(per_conn)
    out.append(Line("free slabs kept for the next burst", "emberd.chunk-reserve",
                    v["emberd.chunk-reserve"], v["emberd.chunk-slab-size"]))
    out.append(Line("a partly used slab", "emberd.chunk-slab-size", 1,
                    v["emberd.chunk-slab-size"]))
    out.append(Line("pooled request objects", "emberd.request-pool-size",
                    v["emberd.request-pool-size"], REQUEST_OBJECT))
    out.append(Line("stat cache", "emberd.stat-cache-max-entries",
                    v["emberd.stat-cache-max-entries"], STAT_CACHE_ENTRY))
    if v["emberd.malloc-trim"]:
        out.append(Line("heap top kept by malloc_trim", "emberd.malloc-top-pad", 1,
                        v["emberd.malloc-top-pad"]))
    else:
        out.append(Line("freed heap memory (never trimmed)", "emberd.malloc-trim", 1, None,
                        "enable emberd.malloc-trim to bound it"))
    tmpfs = [d for d in v["server.upload-dirs"] if _on_tmpfs(d)]
    if tmpfs:
        bodies = conns * (v["h2.max-concurrent-streams"]
                          if v["server.feature-flags"]["server.h2proto"] else 1)
        limit = v["server.max-request-size"] * KIB
        out.append(Line(f"request bodies in temp files on tmpfs ({', '.join(tmpfs)})",
                        "server.max-request-size", bodies,
                        max(0, limit - body_mem) if limit else None,
                        "" if limit else "no limit: set server.max-request-size"))
    out += _backends(config, measure, bool(tmpfs))
    return out


def _backends(config: ServerConfig, measure: bool, tmpfs: bool) -> list[Line]:
    """Lines for mod_fastcgi's bin-path backends (read without importing the module)."""
    if "fastcgi.server" not in config.directives:
        return []
    out: list[Line] = []
    seen: set[Any] = set()
    for table, _ in config.assigned("fastcgi.server"):
        for ext in table:
            for backend in ext.backends:
                h = backend.host
                if not h.bin_path or h in seen:
                    continue
                seen.add(h)
                rss = _backend_rss(h.bin_path) if measure else None
                out.append(Line(f"FastCGI backend {h.label}: {h.bin_path}",
                                "fastcgi.server max-procs", h.max_procs, rss,
                                "RSS one second after start; its growth is its own"
                                if rss else "could not be measured"))
    if seen and tmpfs and not config["server.stream-response-body"]:
        out.append(Line("backend responses collected whole, in temp files on tmpfs",
                        "server.stream-response-body", 1, None,
                        "set server.stream-response-body = 1 to bound it"))
    return out


def total(budget: list[Line]) -> int | None:
    sums = [line.total for line in budget]
    return None if any(t is None for t in sums) else sum(t for t in sums if t is not None)


def report(config: ServerConfig) -> str:
    budget = lines(config)
    rows = [f"Memory budget of {config.path}", "",
            f"{'what':<60} {'directive':<32} {'count':>6} {'each':>10} {'total':>10}"]
    for line in budget:
        each = "unbounded" if line.each is None else f"{line.each / KIB:.1f} KiB"
        tot = "unbounded" if line.total is None else f"{line.total / KIB:.0f} KiB"
        rows.append(f"{line.what[:60]:<60} {line.directive:<32} {line.count:>6} "
                    f"{each:>10} {tot:>10}")
        if line.note:
            rows.append(f"{'':<4}{line.note}")
    t = total(budget)
    rows.append("")
    if t is None:
        rows.append("total: unbounded -- see the lines marked unbounded and their directive")
    else:
        rows.append(f"total: {t // KIB} KiB ({t / (KIB * KIB):.1f} MiB)")
    return "\n".join(rows) + "\n"

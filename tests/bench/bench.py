"""``make bench``: emberd against Debian's lighttpd and a bare asyncio + h11 loop.

Each server serves the same 4 KB file on loopback; wrk runs keep-alive
HTTP/1.1 against each in turn, the servers alternating over several rounds
so that a noisy machine affects all of them alike.  For every run the
server's CPU time (utime + stime from /proc/PID/stat) is read before and
after, giving CPU seconds per 10,000 requests -- the figure that matters on
a device, where the CPU is slow and shared.  Medians are reported.

    python -m tests.bench.bench [--rounds 3] [--seconds 5] [--connections 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMBERD = str(Path(sys.executable).parent / "emberd")
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not come up")


@contextmanager
def process(cmd: list[str], port: int, cwd: Path):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def emberd(work: Path, docroot: Path, port: int) -> AbstractContextManager[subprocess.Popen[bytes]]:
    conf = work / "emberd.conf"
    conf.write_text(f'server.document-root = "{docroot}"\nserver.bind = "127.0.0.1"\n'
                    f'server.port = {port}\nserver.errorlog = "{work}/emberd.log"\n'
                    "server.max-keep-alive-requests = 65535\n")
    return process([EMBERD, "-D", "-f", str(conf)], port, work)


def lighttpd(work: Path, docroot: Path, port: int) -> AbstractContextManager[
        subprocess.Popen[bytes]]:
    conf = work / "lighttpd.conf"
    conf.write_text(f'server.document-root = "{docroot}"\nserver.bind = "127.0.0.1"\n'
                    f'server.port = {port}\nserver.errorlog = "{work}/lighttpd.log"\n'
                    'server.modules = ( "mod_staticfile" )\n'
                    "server.max-keep-alive-requests = 65535\n"
                    'mimetype.assign = ( ".html" => "text/html" )\n')
    exe = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
    return process([exe, "-D", "-f", str(conf)], port, work)


def bare_h11(work: Path, docroot: Path, port: int) -> AbstractContextManager[
        subprocess.Popen[bytes]]:
    return process([sys.executable, "-m", "tests.bench.bare_h11", str(docroot), str(port)],
                   port, ROOT)


SERVERS: dict[str, Callable[[Path, Path, int], AbstractContextManager[subprocess.Popen[bytes]]]]
SERVERS = {"emberd": emberd, "lighttpd": lighttpd, "bare asyncio+h11": bare_h11}


def wrk(url: str, seconds: int, connections: int) -> int:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in", out)
    if m is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return int(m.group(1))


def run(rounds: int, seconds: int, connections: int) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in SERVERS}
    with tempfile.TemporaryDirectory(prefix="emberd-bench-") as tmp:
        work = Path(tmp)
        docroot = work / "www"
        docroot.mkdir()
        (docroot / "4k.html").write_bytes(b"x" * 4096)
        for r in range(rounds):
            for name, start in SERVERS.items():
                port = free_port()
                with start(work, docroot, port) as proc:
                    url = f"http://127.0.0.1:{port}/4k.html"
                    wrk(url, 1, connections)  # warm up
                    before = cpu_seconds(proc.pid)
                    n = wrk(url, seconds, connections)
                    cpu = cpu_seconds(proc.pid) - before
                results[name].append((n / seconds, cpu / n * 10_000))
                print(f"round {r + 1}: {name}: {n / seconds:,.0f} req/s, "
                      f"{cpu / n * 10_000:.3f} CPU-s per 10k", file=sys.stderr)
    return results


def table(results: dict[str, list[tuple[float, float]]]) -> str:
    rows = ["| server | req/s (median) | CPU-s per 10k requests (median) | vs emberd CPU |",
            "|---|---|---|---|"]
    ours = statistics.median(c for _, c in results["emberd"])
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        rows.append(f"| {name} | {rps:,.0f} | {cpu:.3f} | {cpu / ours:.2f}x |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 1
    results = run(args.rounds, args.seconds, args.connections)
    print(f"\n4 KB static GET, HTTP/1.1 keep-alive, wrk -t1 -c{args.connections} "
          f"-d{args.seconds}s, {args.rounds} alternating rounds\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

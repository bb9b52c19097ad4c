"""``make bench``: emberd against Debian's lighttpd, bare asyncio loops and hypercorn.

Every server serves the same 4 KB file on loopback.  For each suite the
servers take turns over several rounds, so that a noisy machine affects
them alike; for every run the server's CPU time (utime + stime from
/proc/PID/stat) is read before and after, giving CPU seconds per 10,000
requests -- the figure that matters on a device, where the CPU is slow and
shared.  Medians are reported.

Suites:
  h1    wrk -t1 -c8 keep-alive HTTP/1.1
  h2c   h2load -c16 -m8 -n 20000, HTTP/2 prior knowledge
  h2seq 60,000 sequential GETs on one HTTP/2 connection: emberd's RSS after
        the first 1,000 and at the end (the lighttpd bug #3084 curve)
  fcgi  4 KB POSTs to a php-cgi echo script over h2c, one at a time and 16 at once:
        emberd with and without keep-conn, and lighttpd; only the server's
        own CPU counts (php-cgi's is the same work for all)
  https 4 KB GET over TLS + HTTP/2 (h2load) and TLS + HTTP/1.1 (wrk), full
        handshakes per second (openssl s_time -new), and idle RSS with and
        without TLS: emberd (Mbed TLS backend) against lighttpd with
        mod_mbedtls, the same library

    python -m tests.bench.bench [--suites h1,h2c,h2seq,fcgi,https] [--rounds 3]
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EMBERD = str(Path(sys.executable).parent / "emberd")
TICK = os.sysconf("SC_CLK_TCK")
Proc = subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """utime + stime of ``pid`` and (``tree``) every process below it (hypercorn forks a
    worker)."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        p = int(stat.parent.name)
        children.setdefault(int(fields[1]), []).append(p)  # ppid
        times[p] = int(fields[11]) + int(fields[12])  # utime, stime
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0)
        if tree:
            todo.extend(children.get(p, []))
    return total / TICK


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_port(port: int, proc: Proc, timeout: float = 20) -> None:
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
def process(cmd: list[str], port: int, cwd: Path,
            env: dict[str, str] | None = None) -> Iterator[Proc]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
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


def emberd(work: Path, docroot: Path, port: int, extra: str = ""):  # type: ignore[no-untyped-def]
    conf = work / "emberd.conf"
    conf.write_text(f'server.document-root = "{docroot}"\nserver.bind = "127.0.0.1"\n'
                    f'server.port = {port}\nserver.errorlog = "{work}/emberd.log"\n'
                    "server.max-keep-alive-requests = 65535\nserver.max-connections = 64\n"
                    + extra)
    return process([EMBERD, "-D", "-f", str(conf)], port, work)


def lighttpd(work: Path, docroot: Path, port: int,  # type: ignore[no-untyped-def]
             extra: str = 'server.modules = ( "mod_staticfile" )\n'):
    conf = work / "lighttpd.conf"
    conf.write_text(f'server.document-root = "{docroot}"\nserver.bind = "127.0.0.1"\n'
                    f'server.port = {port}\nserver.errorlog = "{work}/lighttpd.log"\n'
                    "server.max-keep-alive-requests = 65535\n"
                    'mimetype.assign = ( ".html" => "text/html" )\n' + extra)
    exe = shutil.which("lighttpd") or "/usr/sbin/lighttpd"
    return process([exe, "-D", "-f", str(conf)], port, work)


def php_fastcgi(work: Path, host_keys: str = "") -> str:
    """Settings spawning php-cgi (one process) for .php, the same for both servers."""
    return ('server.modules = ( "mod_fastcgi", "mod_staticfile" )\n'
            "server.stream-request-body = 1\nserver.stream-response-body = 1\n"
            'fastcgi.server = ( ".php" => ( "php" => ( "bin-path" => "/usr/bin/php-cgi", '
            f'"socket" => "{work}/php-{free_port()}.sock", "max-procs" => 1{host_keys}'
            ' ) ) )\n')


def emberd_fcgi(keep_conn: bool) -> Callable:  # type: ignore[type-arg]
    def start(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
        keep = "enable" if keep_conn else "disable"
        return emberd(work, docroot, port, php_fastcgi(work, f', "keep-conn" => "{keep}"'))
    return start


def lighttpd_fcgi(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
    return lighttpd(work, docroot, port, php_fastcgi(work))


def bare(module: str) -> Callable:  # type: ignore[type-arg]
    def start(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
        return process([sys.executable, "-m", module, str(docroot), str(port)], port, ROOT)
    return start


def hypercorn(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
    exe = str(Path(sys.executable).parent / "hypercorn")
    env = {**os.environ, "BENCH_DOCROOT": str(docroot)}
    return process([exe, "-b", f"127.0.0.1:{port}", "tests.bench.asgi_static:app"], port, ROOT,
                   env)


def have_hypercorn() -> bool:
    return (Path(sys.executable).parent / "hypercorn").exists()


def wrk(url: str, seconds: int, connections: int) -> int:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in", out)
    if m is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return int(m.group(1))


def h2load(url: str, clients: int, streams: int, n: int, data: str = "") -> int:
    out = subprocess.run(["h2load", f"-c{clients}", f"-m{streams}", f"-n{n}",
                          *(["-d", data] if data else []), url],
                         capture_output=True, text=True, check=True, timeout=600).stdout
    m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    if m is None:
        raise RuntimeError(f"unexpected h2load output:\n{out}")
    return int(m.group(1))


Result = dict[str, list[tuple[float, float]]]


def make_docroot(work: Path) -> Path:
    """The files every suite serves: a 4 KiB page, a 256 KiB file and a PHP echo."""
    docroot = work / "www"
    docroot.mkdir()
    (docroot / "4k.html").write_bytes(b"x" * 4096)
    (docroot / "256k.bin").write_bytes(b"y" * 262144)
    (docroot / "echo.php").write_text(
        "<?php header('Content-Type: application/octet-stream');\n"
        "echo file_get_contents('php://input');\n")
    return docroot


def measure(servers: dict[str, Callable], rounds: int,  # type: ignore[type-arg]
            load: Callable[[str], tuple[int, float]], path: str = "/4k.html",
            own_cpu: bool = False, scheme: str = "http") -> Result:
    """load(url) -> (requests done, seconds taken); CPU is read around it (``own_cpu``:
    the server process alone, not its children)."""
    results: Result = {name: [] for name in servers}
    with tempfile.TemporaryDirectory(prefix="emberd-bench-") as tmp:
        work = Path(tmp)
        docroot = make_docroot(work)
        for r in range(rounds):
            for name, start in servers.items():
                port = free_port()
                with start(work, docroot, port) as proc:
                    url = f"{scheme}://127.0.0.1:{port}{path}"
                    load(url)  # warm up
                    before = cpu_seconds(proc.pid, tree=not own_cpu)
                    n, took = load(url)
                    cpu = cpu_seconds(proc.pid, tree=not own_cpu) - before
                results[name].append((n / took, cpu / n * 10_000))
                print(f"round {r + 1}: {name}: {n / took:,.0f} req/s, "
                      f"{cpu / n * 10_000:.3f} CPU-s per 10k", file=sys.stderr)
    return results


def table(results: Result) -> str:
    rows = ["| server | req/s (median) | CPU-s per 10k requests (median) | vs emberd CPU |",
            "|---|---|---|---|"]
    ours = statistics.median(c for _, c in results["emberd"])
    for name, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        rows.append(f"| {name} | {rps:,.0f} | {cpu:.3f} | {cpu / ours:.2f}x |")
    return "\n".join(rows)


def suite_h1(rounds: int) -> str:
    servers = {"emberd": emberd, "lighttpd": lighttpd,
               "bare asyncio+h11": bare("tests.bench.bare_h11")}
    if have_hypercorn():
        servers["hypercorn"] = hypercorn

    def load(url: str) -> tuple[int, float]:
        return wrk(url, 5, 8), 5.0

    return ("4 KB static GET, HTTP/1.1 keep-alive, `wrk -t1 -c8 -d5s`\n\n"
            + table(measure(servers, rounds, load)))


def suite_h2c(rounds: int) -> str:
    servers = {"emberd": emberd, "lighttpd": lighttpd,
               "bare asyncio+h2": bare("tests.bench.bare_h2")}
    if have_hypercorn():
        servers["hypercorn"] = hypercorn

    def load(url: str) -> tuple[int, float]:
        t0 = time.monotonic()
        n = h2load(url, 16, 8, 20_000)
        return n, time.monotonic() - t0

    return ("4 KB static GET, HTTP/2 prior knowledge, `h2load -c16 -m8 -n 20000`\n\n"
            + table(measure(servers, rounds, load)))


def suite_h2seq(rounds: int) -> str:
    """RSS after the first 1,000 and after 60,000 sequential requests on one connection."""
    from tests.h2client import H2Client

    rows = ["| round | RSS after 1,000 (kB) | RSS after 60,000 (kB) | growth (kB) |",
            "|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="emberd-bench-") as tmp:
        work = Path(tmp)
        docroot = make_docroot(work)
        for r in range(rounds):
            port = free_port()
            with emberd(work, docroot, port) as proc:
                client = H2Client(port)
                at_1000 = 0
                for i in range(60_000):
                    sid = client.request("/4k.html")
                    client.wait_ended(sid)
                    del client.streams[sid]
                    if i == 999:
                        at_1000 = rss_kb(proc.pid)
                end = rss_kb(proc.pid)
                client.close()
            rows.append(f"| {r + 1} | {at_1000} | {end} | {end - at_1000:+} |")
            print(f"round {r + 1}: {at_1000} -> {end} kB", file=sys.stderr)
    return "60,000 sequential 4 KB GETs on one HTTP/2 connection (h2 client in Python)\n\n" + \
        "\n".join(rows)


def suite_fcgi(rounds: int) -> str:
    servers = {"emberd": emberd_fcgi(True), "emberd keep-conn disabled": emberd_fcgi(False),
               "lighttpd": lighttpd_fcgi}
    out = []
    with tempfile.NamedTemporaryFile(prefix="emberd-bench-4k-") as f:
        f.write(b"p" * 4096)
        f.flush()
        for clients, streams, n in ((1, 1, 3_000), (4, 4, 5_000)):
            def load(url: str, c: int = clients, m: int = streams, k: int = n) -> tuple[int, float]:
                t0 = time.monotonic()
                done = h2load(url, c, m, k, f.name)
                return done, time.monotonic() - t0

            results = measure(servers, rounds, load, "/echo.php", own_cpu=True)
            out.append(f"`h2load -c{clients} -m{streams} -n {n} -d 4k.bin`\n\n" + table(results))
    return ("4 KB POST echoed by php-cgi (one process), HTTP/2 prior knowledge; CPU of the "
            "server process only (one request at a time is the bug-#3084 workload)\n\n"
            + "\n\n".join(out))


def certificate(work: Path) -> Path:
    """A self-signed P-256 certificate and key in one file (made once per work directory)."""
    pem = work / "bench.pem"
    if not pem.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "7", "-subj",
                        "/CN=localhost", "-keyout", str(work / "bench.key"), "-out",
                        str(work / "bench.crt")], capture_output=True, check=True)
        pem.write_bytes((work / "bench.crt").read_bytes() + (work / "bench.key").read_bytes())
    return pem


def emberd_tls(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
    return emberd(work, docroot, port, f'ssl.engine = "enable"\n'
                  f'ssl.pemfile = "{certificate(work)}"\n')


def lighttpd_tls(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
    return lighttpd(work, docroot, port, 'server.modules = ( "mod_mbedtls", "mod_staticfile" )\n'
                    f'ssl.engine = "enable"\nssl.pemfile = "{certificate(work)}"\n')


def s_time(url: str, seconds: int = 5) -> int:
    """Full handshakes (each a new session) done by ``openssl s_time -new`` in ``seconds``."""
    host = url.split("//", 1)[1].split("/", 1)[0]
    out = subprocess.run(["openssl", "s_time", "-connect", host, "-new", "-time",
                          str(seconds)], capture_output=True, text=True, timeout=seconds + 60,
                         check=True).stdout
    m = re.search(r"(\d+) connections in [\d.]+s", out)
    if m is None:
        raise RuntimeError(f"unexpected s_time output:\n{out}")
    return int(m.group(1))


def idle_rss(servers: dict[str, tuple[Callable, str]],  # type: ignore[type-arg]
             rounds: int) -> str:
    """VmRSS 2 s after start-up and after one request (for TLS: one handshake);
    ``servers`` maps a name to (start function, URL scheme)."""
    rows = ["| server | RSS after start (kB, median) | RSS after one request (kB, median) |",
            "|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="emberd-bench-") as tmp:
        work = Path(tmp)
        docroot = make_docroot(work)
        for name, (start, scheme) in servers.items():
            started, used = [], []
            for _ in range(rounds):
                port = free_port()
                with start(work, docroot, port) as proc:
                    time.sleep(2)
                    started.append(rss_kb(proc.pid))
                    subprocess.run(["curl", "-sk", "-o", "/dev/null",
                                    f"{scheme}://127.0.0.1:{port}/4k.html"], check=True)
                    time.sleep(1)
                    used.append(rss_kb(proc.pid))
            rows.append(f"| {name} | {statistics.median(started):,.0f} | "
                        f"{statistics.median(used):,.0f} |")
    return "\n".join(rows)


def suite_https(rounds: int) -> str:
    servers = {"emberd": emberd_tls, "lighttpd": lighttpd_tls}

    def load_h2(url: str) -> tuple[int, float]:
        t0 = time.monotonic()
        n = h2load(url, 16, 8, 20_000)
        return n, time.monotonic() - t0

    def load_h1(url: str) -> tuple[int, float]:
        return wrk(url, 5, 8), 5.0

    def load_handshakes(url: str) -> tuple[int, float]:
        return s_time(url, 5), 5.0

    h2 = table(measure(servers, rounds, load_h2, scheme="https"))
    h1 = table(measure(servers, rounds, load_h1, scheme="https"))
    hs = table(measure(servers, rounds, load_handshakes, scheme="https"))
    rss = idle_rss({"emberd, no TLS": (emberd, "http"),
                    "emberd, TLS (Mbed TLS)": (emberd_tls, "https"),
                    "lighttpd, no TLS": (lighttpd, "http"),
                    "lighttpd, TLS (mod_mbedtls)": (lighttpd_tls, "https")}, rounds)
    return ("4 KB static GET over TLS 1.2 (P-256 ECDSA certificate, ECDHE; both servers "
            "use Mbed TLS)\n\n"
            "TLS + HTTP/2, `h2load -c16 -m8 -n 20000`\n\n" + h2 +
            "\n\nTLS + HTTP/1.1 keep-alive, `wrk -t1 -c8 -d5s`\n\n" + h1 +
            "\n\nFull handshakes (new session each, `openssl s_time -new -time 5`; "
            "\"req/s\" is handshakes/s, CPU is per 10k handshakes)\n\n" + hs +
            "\n\nIdle RSS\n\n" + rss)


def emberd_with(extra: str) -> Callable:  # type: ignore[type-arg]
    def start(work: Path, docroot: Path, port: int):  # type: ignore[no-untyped-def]
        return emberd(work, docroot, port, extra)
    return start


def suite_knobs(rounds: int) -> str:
    """What smaller memory knobs cost: each variant against the defaults, over h2c."""
    out = []
    cases = (
        ("server.chunkqueue-chunk-sz", "server.chunkqueue-chunk-sz = 1024\n", "/256k.bin",
         (4, 4, 2_000)),
        ("server.chunkqueue-chunk-sz", "server.chunkqueue-chunk-sz = 1024\n", "/4k.html",
         (16, 8, 20_000)),
        ("h2.max-concurrent-streams", "h2.max-concurrent-streams = 2\n", "/4k.html",
         (4, 8, 20_000)),
    )
    for knob, extra, path, (c, m, n) in cases:
        def load(url: str, c: int = c, m: int = m, n: int = n) -> tuple[int, float]:
            t0 = time.monotonic()
            done = h2load(url, c, m, n)
            return done, time.monotonic() - t0

        servers = {"emberd": emberd, extra.strip(): emberd_with(extra)}
        out.append(f"`{knob}`, `h2load -c{c} -m{m} -n {n}` on {path}\n\n"
                   + table(measure(servers, rounds, load, path)))
    return "Knobs (emberd with defaults against one smaller value)\n\n" + "\n\n".join(out)


SUITES = {"h1": suite_h1, "h2c": suite_h2c, "h2seq": suite_h2seq, "fcgi": suite_fcgi,
          "https": suite_https, "knobs": suite_knobs}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suites", default="h1,h2c,h2seq,fcgi,https")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for tool in ("wrk", "h2load"):
        if not shutil.which(tool):
            print(f"{tool} is not installed (apt-get install wrk nghttp2-client)",
                  file=sys.stderr)
            return 1
    for name in args.suites.split(","):
        print(f"\n## {name}\n\n{SUITES[name](args.rounds if name != 'h2seq' else 1)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``make soak``: the lighttpd bug-#3084 workload against emberd, with its RSS curve.

    python -m emberd.tools.soak [--minutes M] [--compare lighttpd] [--out DIR] [options]

Environment (``make soak`` passes them through): ``SOAK_MINUTES`` (10),
``SOAK_COMPARE`` (empty, or ``lighttpd``), ``SOAK_OUT`` (``build/soak``).

Each *run* starts fresh processes -- emberd-control as a service on a unix
socket and emberd in front of it (``soak_servers``) -- and drives three
phases, one after another, while a thread samples every process's memory
every 2 s (``soak_sampler``):

1. **steady**: one connection, a 4 KB POST every 10 ms to emberd-control's
   ``/api/upload?name=soak.bin`` through the server, for ``SOAK_MINUTES``;
2. **burst**: 50 connections x 8 streams for 30 s;
3. **idle**: 3 minutes without traffic.

The runs are emberd over h2c, then emberd over HTTP/1.1, then (with
``SOAK_COMPARE=lighttpd``, when it is installed) the same two against
lighttpd in front of the same backend.  The load comes from h2load when
it is installed, otherwise from a built-in client (``soak_load``).  The
report (``soak_report``) goes to ``SOAK_OUT/soak.md`` and standard output,
the samples to ``soak.csv``, the picture to ``soak.png`` (``soak_plot``).

Exit status: 0 when every judged target is met (or none was judged), 1
when one is missed, 2 when the soak could not be carried out (a server
did not start or died, the steady phase's requests failed, bad options).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from .. import __version__
from ..core.memory import ALLOCATOR_ENVIRONMENT
from . import soak_load, soak_plot, soak_report
from .soak_load import H2C, HTTP11, Client, Target
from .soak_report import Plan, Run
from .soak_sampler import CsvSink, Sample, Sampler, clock
from .soak_servers import (
    EMBERD,
    LIGHTTPD,
    MAX_CONNECTIONS,
    UPLOAD_PATH,
    Stack,
    StartError,
    lighttpd_exe,
)

BODY_SIZE = 4096
MAX_MINUTES = 7 * 24 * 60  # a week: the soak is long, not endless
STEADY_FAILURES_ALLOWED = 0.01  # more failed steady requests than this fraction: no soak
PROTOCOL_NAMES = {"h2c": H2C, "h2": H2C, "h1": HTTP11, "http/1.1": HTTP11}
LABELS = {H2C: "h2c", HTTP11: "HTTP/1.1"}


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _number(text: str, limit: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= limit:
        raise argparse.ArgumentTypeError(f"{text} is not in (0, {limit:g}]")
    return value


def _upto(limit: float) -> Callable[[str], float]:
    """A positive number, at most ``limit``."""
    return lambda text: _number(text, limit)


def _count(limit: int) -> Callable[[str], int]:
    """A positive whole number, at most ``limit``."""
    def convert(text: str) -> int:
        value = _number(text, limit)
        if value != int(value):
            raise argparse.ArgumentTypeError(f"{text} is not a whole number")
        return int(value)
    return convert


def _protocols(text: str) -> list[str]:
    out = []
    for name in filter(None, (p.strip().lower() for p in text.split(","))):
        if name not in PROTOCOL_NAMES:
            raise argparse.ArgumentTypeError(f"unknown protocol {name!r}: h2c, h1")
        out.append(PROTOCOL_NAMES[name])
    if not out:
        raise argparse.ArgumentTypeError("no protocol given")
    return list(dict.fromkeys(out))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m emberd.tools.soak",
        description="The lighttpd bug-#3084 workload against emberd (and lighttpd), with "
                    "its memory sampled, plotted and judged.")
    ap.add_argument("--minutes", type=_upto(MAX_MINUTES), default=_env("SOAK_MINUTES", "10"),
                    help="length of the steady phase (env SOAK_MINUTES, default 10)")
    ap.add_argument("--compare", choices=("", "none", "lighttpd"),
                    default=_env("SOAK_COMPARE", ""),
                    help="also soak lighttpd with the same backend (env SOAK_COMPARE)")
    ap.add_argument("--out", type=Path, default=_env("SOAK_OUT", "build/soak"),
                    help="directory for soak.csv, soak.png, soak.md (env SOAK_OUT)")
    ap.add_argument("--rate", type=_upto(1000), default=100.0,
                    help="steady requests per second (default 100)")
    ap.add_argument("--burst-seconds", type=_upto(3600), default=30.0)
    ap.add_argument("--burst-connections", type=_count(MAX_CONNECTIONS), default=50,
                    help=f"at most {MAX_CONNECTIONS} (server.max-connections)")
    ap.add_argument("--burst-streams", type=_count(8), default=8,
                    help="requests in flight per HTTP/2 connection (at most 8, both "
                         "servers' stream limit)")
    ap.add_argument("--idle-seconds", type=_upto(86400), default=180.0)
    ap.add_argument("--interval", type=_upto(60), default=2.0,
                    help="seconds between memory samples (default 2)")
    ap.add_argument("--protocols", type=_protocols, default="h2c,h1",
                    help="comma-separated: h2c, h1 (default both, h2c first)")
    ap.add_argument("--client", choices=("auto", "h2load", "builtin"), default="auto",
                    help="load generator (auto: h2load when installed)")
    ap.add_argument("--progress-every", type=_upto(3600), default=30.0,
                    help="seconds between progress lines")
    ap.add_argument("--emberd-config", type=Path, default=None,
                    help="soak this emberd configuration (e.g. rootfs/etc/emberd/emberd.conf) "
                         "with the workload's settings forced over it, instead of the soak's "
                         "own")
    return ap.parse_args(argv)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_one(server: str, protocol: str, work: Path, plan: Plan, client: Client,
            body: Path, sink: CsvSink, args: argparse.Namespace) -> Run:
    """Fresh processes, three phases, samples throughout; problems are recorded, not raised."""
    run = Run(f"{server} {LABELS[protocol]}", server, protocol)
    say(f"[{run.label}] starting {server} and emberd-control (work dir {work})")
    try:
        with Stack(server, work, args.emberd_config) as stack:
            target = Target(stack.port, UPLOAD_PATH, body, protocol)
            sampler = Sampler(run.label, [(p.name, p.pid) for p in stack.processes],
                              plan.interval, sink, say, float(args.progress_every))
            try:
                _phases(run, stack, sampler, target, plan, client)
            finally:
                sampler.stop()
                run.samples = sampler.samples
    except StartError as exc:
        run.problems.append(str(exc))
    if run.problems:
        say(f"[{run.label}] PROBLEM: " + "; ".join(run.problems))
    return run


def _phases(run: Run, stack: Stack, sampler: Sampler, target: Target, plan: Plan,
            client: Client) -> None:
    say(f"[{run.label}] steady: {plan.rate:g} POST/s of {BODY_SIZE} bytes on one connection "
        f"for {clock(plan.steady_s)} ({client.name})")
    sampler.set_phase("steady", plan.steady_s)
    sampler.start()  # the first sample (t = 0) before the first request
    steady = run.loads["steady"] = client.steady(target, plan.rate, plan.steady_s)
    say(f"[{run.label}] steady done: {steady.requests:,} requests, {steady.ok:,} 2xx")
    if steady.requests == 0 or steady.failed > STEADY_FAILURES_ALLOWED * steady.requests:
        run.problems.append(f"steady phase: {steady.failed:,} of {steady.requests:,} "
                            f"requests failed {steady.statuses} {steady.note}".rstrip())
    if not _alive(run, stack):
        return
    sampler.set_phase("burst", plan.burst_s)
    say(f"[{run.label}] burst: {plan.burst_connections} connections x {plan.burst_streams} "
        f"streams for {clock(plan.burst_s)}")
    burst = run.loads["burst"] = client.burst(target, plan.burst_connections,
                                              plan.burst_streams, plan.burst_s)
    say(f"[{run.label}] burst done: {burst.requests:,} requests, {burst.ok:,} 2xx")
    if not _alive(run, stack):
        return
    sampler.set_phase("idle", plan.idle_s)
    say(f"[{run.label}] idle for {clock(plan.idle_s)}")
    end = time.monotonic() + plan.idle_s
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        if not _alive(run, stack):
            return
    sampler.stop()
    sampler.sample()  # exactly at the end of the idle phase


def _alive(run: Run, stack: Stack) -> bool:
    dead = stack.dead()
    for proc in dead:
        run.problems.append(f"{proc.name} (pid {proc.pid}) exited with status "
                            f"{proc.popen.returncode}:\n{proc.log_tail()}")
    return not dead


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: servers get stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(steady_s=args.minutes * 60, burst_s=args.burst_seconds,
                idle_s=args.idle_seconds, rate=args.rate,
                burst_connections=args.burst_connections, burst_streams=args.burst_streams,
                interval=args.interval)
    try:
        client = soak_load.choose(args.client, shutil.which("h2load"))
    except ValueError as exc:
        say(f"soak: {exc}")
        return 2
    if args.emberd_config is not None:
        if not args.emberd_config.is_file():
            say(f"soak: {args.emberd_config} does not exist")
            return 2
        args.emberd_config = args.emberd_config.resolve()
    servers = [EMBERD]
    context = []
    if args.compare == "lighttpd":
        if lighttpd_exe():
            servers.append(LIGHTTPD)
        else:
            say("soak: SOAK_COMPARE=lighttpd but lighttpd is not installed: not compared")
            context.append("lighttpd was asked for but is not installed: not compared")
    runs_planned = len(servers) * len(args.protocols)
    per_run = plan.steady_s + plan.burst_s + plan.idle_s
    say(f"soak: {runs_planned} run(s) of {clock(plan.steady_s)} steady + "
        f"{clock(plan.burst_s)} burst + {clock(plan.idle_s)} idle, about "
        f"{runs_planned * (per_run + 5) / 60:.0f} min in all; output in {args.out}/")
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="emberd-soak-") as tmp, \
            open(out / "soak.csv", "w", newline="") as csv_file:
        sink = CsvSink(csv_file)
        body = Path(tmp) / "4k.bin"
        body.write_bytes(bytes(range(256)) * (BODY_SIZE // 256))
        for server in servers:
            for protocol in args.protocols:
                work = Path(tmp) / f"{server}-{LABELS[protocol].replace('/', '')}"
                run = run_one(server, protocol, work, plan, client, body, sink, args)
                runs.append(run)
                samples += run.samples

    context = [
        f"{time.strftime('%Y-%m-%d %H:%M')}, emberd {__version__}, Python "
        f"{platform.python_version()}, Linux {platform.release()}, {os.cpu_count()} CPUs",
        f"steady: {plan.rate:g} POSTs/s of {BODY_SIZE} bytes to `{UPLOAD_PATH}` on one "
        f"connection, one at a time, for {clock(plan.steady_s)}; burst: "
        f"{plan.burst_connections} connections x {plan.burst_streams} streams for "
        f"{clock(plan.burst_s)}; idle: {clock(plan.idle_s)}",
        f"client: {client.name}; memory sampled every {plan.interval:g} s "
        "(VmRSS here; RssAnon and Pss in soak.csv)",
        "backend: emberd-control as its own service on a unix socket (fresh for each run); "
        "emberd and lighttpd forward `/api/` to it with FastCGI",
        ("emberd: the soak's own configuration (emberd's defaults; " if args.emberd_config
         is None else f"emberd: `{args.emberd_config}` with the soak's settings over it (")
        + f"max-connections {MAX_CONNECTIONS}, no per-connection request cap, bodies "
          "streamed, keep-conn); lighttpd the same; emberd started as on the device, "
          "with " + " ".join(f"{k}={v}" for k, v in ALLOCATOR_ENVIRONMENT.items()),
        *context,
    ]
    summaries = [s for run in runs for s in soak_report.summarize(run, plan)]
    report = soak_report.markdown(runs, summaries, plan, context)
    (out / "soak.md").write_text(report)
    print(report)
    if soak_plot.available():
        soak_plot.plot(samples, out / "soak.png",
                       f"emberd memory soak: {clock(plan.steady_s)} steady, "
                       f"{clock(plan.burst_s)} burst, {clock(plan.idle_s)} idle")
        say(f"soak: wrote {out}/soak.csv, soak.png, soak.md")
    else:
        say(f"soak: wrote {out}/soak.csv, soak.md; no soak.png: matplotlib is not installed "
            "(pip install -e '.[soak]', or make soak)")
    return soak_report.exit_code(runs, summaries)


if __name__ == "__main__":
    raise SystemExit(main())

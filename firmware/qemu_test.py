#!/usr/bin/env python3
"""make qemu-test ARCH=...: boot the test image, run the smoke tests, measure, power off.

1. QEMU (TCG) boots ``build/firmware/<arch>/`` with user-mode networking
   (``restrict=on``: the guest reaches nothing) and two forwards on the
   host's 127.0.0.1: emberd's port 80 and the test channel's 8081.  QEMU
   always runs under ``timeout``; this script ends it only by its own pid.
2. Boot time: from starting QEMU to emberd's first 200 answer.
3. ``pytest tests/qemu`` (the smoke tests) against the guest.
4. emberd's idle VmRSS in the guest (after it served HTTP/1.1 and h2c, then
   a few idle seconds), then the bug-#3084 workload for a minute --
   ``h2load -c1 -m1 --rps=100 -D 60 -d body4k.bin`` POSTing 4 KB every
   10 ms over h2c to the control API's upload (to /index.html while
   emberd-control is not in the image) -- and VmRSS again.
5. ``poweroff`` in the guest (rcK stops emberd through S50emberd); QEMU exits.

A boot that fails prints the guest console; a failing test prints the end
of the console and of emberd's error log.  The figures go to stdout and to
``build/firmware/<arch>/qemu-report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from fw import arches  # noqa: E402
from tests.qemu import device  # noqa: E402
from tests.qemu.guest import ERRORLOG, Guest  # noqa: E402

BOOT_TIMEOUT = 90.0      # TCG on a busy 2-core CI runner; a good boot takes 5-8 s
QEMU_LIFETIME = 1200     # hard cap on the whole run (timeout(1) around QEMU)
# bug #3084: one client, one stream at a time, a 4 KB POST every 10 ms.  The
# issue's run is -n 6000 (a minute at 100/s); a TCG guest does not keep up
# with that through emberd-control (~35 uploads/s), so the run is timed
# instead: one minute of the workload (--soak-requests N: exactly N requests).
SOAK = ["-c1", "-m1", "--rps=100"]
MIB = 1024.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def qemu_command(arch: arches.Arch, image: Path, port: int, channel: int,
                 interactive: bool, smp: int = 1) -> list[str]:
    net = (f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:80,"
           f"hostfwd=tcp:127.0.0.1:{channel}-:8081")
    lifetime = 4 * 3600 if interactive else QEMU_LIFETIME
    return ["timeout", "--kill-after=10", str(lifetime),
            arch.qemu_system, "-M", arch.qemu_machine, "-cpu", arch.qemu_cpu,
            "-smp", str(smp), "-m", "256", "-nographic", "-no-reboot",
            "-kernel", str(image / "vmlinuz"), "-initrd", str(image / "initrd.cpio.gz"),
            "-append", f"console={arch.console} quiet panic=-1",
            "-netdev", net, "-device", "virtio-net-pci,netdev=n0,romfile=",
            "-device", "virtio-rng-pci"]


class Run:
    def __init__(self, arch: arches.Arch, image: Path) -> None:
        self.arch = arch
        self.image = image
        self.console = image / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.guest = Guest(free_port(), free_port(), image)
        self.report: dict[str, object] = {"arch": arch.name}
        self.smp = int(os.environ.get("EMBERD_QEMU_SMP", "1"))

    def start(self) -> float:
        cmd = qemu_command(self.arch, self.image, self.guest.port, self.guest.channel_port,
                           interactive=False, smp=self.smp)
        log = self.console.open("wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()
        # first answer: poll emberd through the forward (slirp accepts at once
        # and drops the connection while nothing listens in the guest)
        while time.monotonic() - started < BOOT_TIMEOUT:
            if self.proc.poll() is not None:
                self.fail_boot(f"QEMU exited with status {self.proc.returncode} during boot")
            if self.guest.http_ok("/", timeout=2.0):
                return time.monotonic() - started
            time.sleep(0.05)
        self.fail_boot(f"no HTTP answer from emberd within {BOOT_TIMEOUT:.0f} s")
        raise AssertionError  # not reached

    def console_text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def fail_boot(self, why: str) -> None:
        print(f"\nBOOT FAILED ({self.arch.name}): {why}\n--- guest console "
              f"({self.console}) ---\n{self.console_text()}--- end of console ---",
              flush=True)
        self.stop()
        raise SystemExit(1)

    def dump_guest_state(self) -> None:
        print("--- end of the guest console ---")
        print("\n".join(self.console_text().splitlines()[-40:]))
        try:
            _, log = self.guest.sh(f"tail -n 40 {ERRORLOG}; /etc/init.d/S50emberd status",
                                   timeout=20)
            print(f"--- {ERRORLOG} (tail) and status ---\n{log}")
        except OSError as exc:
            print(f"(test channel unreachable: {exc})")

    def stop(self) -> None:
        """Power the guest off; end QEMU (by its pid) if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        t0 = time.monotonic()
        try:
            self.guest.poweroff()
            self.proc.wait(timeout=60)
            self.report["poweroff_seconds"] = round(time.monotonic() - t0, 1)
            return
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"guest did not power off ({exc}); stopping QEMU (pid {self.proc.pid})")
        # the pid is timeout(1)'s, which passes SIGTERM on to QEMU
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def pytest(self) -> int:
        env = {**os.environ, "EMBERD_QEMU_PORT": str(self.guest.port),
               "EMBERD_QEMU_CHANNEL_PORT": str(self.guest.channel_port),
               "EMBERD_QEMU_IMAGE_DIR": str(self.image), "EMBERD_QEMU_ARCH": self.arch.name}
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                               "tests/qemu"], cwd=REPO, env=env).returncode

    def warm_up(self) -> None:
        """One HTTP/1.1 and one h2c request: 'idle' means after serving both."""
        for extra in ([], ["--http2-prior-knowledge"]):
            subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "20", *extra,
                            self.guest.url + "/"], check=True, timeout=30)

    def soak(self, requests: int = 0) -> dict[str, object]:
        body = self.image / "body4k.bin"
        body.write_bytes(os.urandom(4096))
        if "emberd-control" in self.guest.manifest.get("commands", []):  # type: ignore[operator]
            path = device.upload_path("bug3084.bin")
            # one Authorization for the whole run: a Digest nonce lives 600 s
            device.provision(self.guest)
            headers = [*device.CHANGE_HEADERS, *device.authorization(self.guest, "POST", path)]
            extra = [a for k, v in headers for a in ("-H", f"{k}: {v}")]
            note = f"to the control API's upload ({path})"
        else:
            path, extra = device.FALLBACK_UPLOAD, []
            note = (f"to {path}: emberd-control is not in this image "
                    "(a POST to a static file returns the file)")
        soak = [*SOAK, *(["-n", str(requests)] if requests else ["-D", "60"])]
        print(f"bug-#3084 run: h2load {' '.join(soak)} -d body4k.bin, POSTing 4 KB {note}",
              flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(["h2load", *soak, "-d", str(body), *extra, self.guest.url + path],
                              capture_output=True, text=True, timeout=900)
        elapsed = time.monotonic() - t0
        out = proc.stdout
        m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", out)
        codes = re.search(r"status codes: (\d+) 2xx", out)
        result: dict[str, object] = {
            "target": path, "seconds": round(elapsed, 1),
            "requests": int(m.group(1)) if m else None,
            "succeeded": int(m.group(3)) if m else None,
            "failed": int(m.group(4)) if m else None,
            "status_2xx": int(codes.group(1)) if codes else None,
        }
        # with -D, h2load counts a request still in flight when time is up among the
        # status codes but not in "total": 2xx may exceed the total by the requests in flight
        if proc.returncode != 0 or not m or result["succeeded"] != result["requests"] \
                or codes is None or not 0 <= int(codes.group(1)) - int(m.group(1)) <= 1:
            print(out, proc.stderr)
            raise AssertionError(f"the bug-#3084 run did not succeed: {result}")
        return result


def interactive(arch: arches.Arch, image: Path) -> int:
    port, channel = free_port(), free_port()
    print(f"emberd: http://127.0.0.1:{port}/   test channel: http://127.0.0.1:{channel}/\n"
          "console below (Enter for a shell; Ctrl-A X ends QEMU)", flush=True)
    return subprocess.run(qemu_command(arch, image, port, channel, interactive=True)).returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="aarch64")
    p.add_argument("--image", type=Path, help="default: build/firmware/<arch>")
    p.add_argument("--interactive", action="store_true", help="console on this terminal")
    p.add_argument("--no-soak", action="store_true", help="skip the one-minute run")
    p.add_argument("--soak-requests", type=int, default=0,
                   help="run the workload for N requests instead of one minute")
    args = p.parse_args(argv)
    arch = arches.get(args.arch)
    image = (args.image or REPO / "build" / "firmware" / arch.name).resolve()
    for f in ("vmlinuz", "initrd.cpio.gz", "manifest.json"):
        if not (image / f).exists():
            raise SystemExit(f"{image / f} is missing: run `make image ARCH={arch.name}` first")
    for tool in (arch.qemu_system, "timeout", "curl", "h2load"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found (apt-get install qemu-system-arm curl "
                             "nghttp2-client)")
    if args.interactive:
        return interactive(arch, image)

    run = Run(arch, image)
    ok = False
    try:
        boot = run.start()
        run.report["boot_to_first_response_s"] = round(boot, 2)
        print(f"{arch.name}: first HTTP answer {boot:.2f} s after QEMU started", flush=True)
        run.report["rss_after_boot_kib"] = run.guest.rss_kib()[0]
        rc = run.pytest()
        run.report["smoke_tests"] = "passed" if rc == 0 else f"failed (pytest exit {rc})"
        if rc != 0:
            run.dump_guest_state()
            return rc
        run.warm_up()
        time.sleep(3)
        rss, hwm = run.guest.rss_kib()
        run.report.update(idle_rss_kib=rss, idle_hwm_kib=hwm)
        if not args.no_soak:
            run.report["soak"] = run.soak(args.soak_requests)
            rss2, hwm2 = run.guest.rss_kib()
            run.report.update(soak_rss_kib=rss2, soak_hwm_kib=hwm2)
        ok = True
    except AssertionError as exc:
        print(f"FAILED: {exc}")
        run.dump_guest_state()
        return 1
    finally:
        run.stop()
        (image / "qemu-report.json").write_text(json.dumps(run.report, indent=1) + "\n")
    r = run.report
    lines = [f"qemu-test {arch.name}: {'PASSED' if ok else 'FAILED'}",
             f"  boot to first HTTP response: {r['boot_to_first_response_s']} s (target <= 10 s)",
             f"  emberd VmRSS after boot: {int(r['rss_after_boot_kib']) / MIB:.1f} MiB",  # type: ignore[call-overload]
             f"  emberd idle VmRSS (served h1 + h2c): {int(r['idle_rss_kib']) / MIB:.1f} MiB "  # type: ignore[call-overload]
             f"(VmHWM {int(r['idle_hwm_kib']) / MIB:.1f} MiB)"]  # type: ignore[call-overload]
    if "soak" in r:
        s = r["soak"]
        assert isinstance(s, dict)
        lines.append(f"  after the bug-#3084 run ({s['requests']} POSTs of 4 KB to "
                     f"{s['target']} in {s['seconds']} s): VmRSS "
                     f"{int(r['soak_rss_kib']) / MIB:.1f} MiB "  # type: ignore[call-overload]
                     f"(VmHWM {int(r['soak_hwm_kib']) / MIB:.1f} MiB)")  # type: ignore[call-overload]
    if "poweroff_seconds" in r:
        lines.append(f"  powered off in {r['poweroff_seconds']} s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The booted QEMU guest, seen from the host.

Two forwarded ports on 127.0.0.1: emberd's port 80, and the test image's
test channel (busybox httpd on guest port 8081, ``/cgi-bin/sh`` runs a shell
command as root; firmware/skeleton/etc/init.d/S90testchannel).  The channel
is how tests read ``/proc`` in the guest (emberd's VmRSS), run the init
script's actions, and power the guest off.  It exists only in the test
image, never on a device.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PIDFILE = "/run/emberd.pid"
INIT = "/etc/init.d/S50emberd"
CONTROL_INIT = "/etc/init.d/S51emberd-control"
ERRORLOG = "/var/log/emberd/error.log"


@dataclass
class Guest:
    port: int             # emberd, guest port 80
    channel_port: int     # the test channel, guest port 8081
    image_dir: Path       # build/firmware/<arch>: manifest.json, rootfs/ as it went in

    @classmethod
    def from_env(cls) -> Guest:
        """The guest that ``make qemu-test`` booted (it sets these variables)."""
        return cls(int(os.environ["EMBERD_QEMU_PORT"]),
                   int(os.environ["EMBERD_QEMU_CHANNEL_PORT"]),
                   Path(os.environ["EMBERD_QEMU_IMAGE_DIR"]))

    @property
    def manifest(self) -> dict[str, object]:
        path = self.image_dir / "manifest.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def sh(self, command: str, timeout: float = 60.0) -> tuple[int, str]:
        """Run ``command`` with sh in the guest, as root: (exit status, output)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.channel_port}/cgi-bin/sh", data=command.encode(),
            method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status = int(resp.headers.get("X-Exit-Status", "255"))
            return status, resp.read().decode("utf-8", "replace")

    def check(self, command: str, timeout: float = 60.0) -> str:
        """Like sh(), but the command must succeed."""
        rc, out = self.sh(command, timeout)
        assert rc == 0, f"guest: {command!r} exited with {rc}:\n{out}"
        return out

    def emberd_pid(self) -> int | None:
        rc, out = self.sh(f"cat {PIDFILE}")
        return int(out) if rc == 0 and out.strip().isdigit() else None

    def proc_status(self, pid: int | None = None) -> dict[str, str]:
        """/proc/PID/status of emberd (or PID) as a dict."""
        pid = pid or self.emberd_pid()
        assert pid, "emberd has no pid file in the guest"
        out = self.check(f"cat /proc/{pid}/status")
        return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}

    def rss_kib(self) -> tuple[int, int]:
        """emberd's (VmRSS, VmHWM) in KiB."""
        st = self.proc_status()
        return int(st["VmRSS"].split()[0]), int(st["VmHWM"].split()[0])

    def http_ok(self, path: str = "/", timeout: float = 5.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
                return bool(resp.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_http(self, timeout: float = 30.0, path: str = "/") -> float:
        """Seconds until emberd answers 200 on ``path``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.http_ok(path, timeout=2.0):
                return time.monotonic() - start
            time.sleep(0.1)
        raise AssertionError(f"emberd did not answer on {self.url}{path} within {timeout} s")

    def poweroff(self) -> None:
        """busybox poweroff: rcK stops the services (S50emberd stop), then the VM ends."""
        self.sh("(sleep 0.5; poweroff) </dev/null >/dev/null 2>&1 &", timeout=10)

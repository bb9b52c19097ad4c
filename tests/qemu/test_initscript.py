"""/etc/init.d/S50emberd in the guest, started by busybox init as on a device.

Each test leaves emberd serving: the ones that restart it wait until it answers.
"""

from __future__ import annotations

import time

from .guest import ERRORLOG, INIT, Guest


def wait_new_pid(guest: Guest, old: int | None, timeout: float = 60.0) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pid = guest.emberd_pid()
        if pid is not None and pid != old and guest.http_ok():
            return pid
        time.sleep(0.5)
    _, log = guest.sh(f"tail -n 20 {ERRORLOG}")
    raise AssertionError(f"emberd was not serving again with a new pid within {timeout} s:\n{log}")


def test_runs_as_www_data(emberd_serving: Guest) -> None:
    st = emberd_serving.proc_status()
    assert st["Uid"].split() == ["33"] * 4
    assert st["Gid"].split() == ["33"] * 4


def test_pid_file_names_emberd(emberd_serving: Guest) -> None:
    pid = emberd_serving.emberd_pid()
    cmdline = emberd_serving.check(f"tr '\\0' ' ' </proc/{pid}/cmdline")
    assert "/usr/bin/emberd -D -f /etc/emberd/emberd.conf" in cmdline


def test_status_reports_running(emberd_serving: Guest) -> None:
    rc, out = emberd_serving.sh(f"{INIT} status")
    assert rc == 0, out
    assert f"emberd is running (pid {emberd_serving.emberd_pid()}" in out


def test_log_is_on_a_size_capped_tmpfs(emberd_serving: Guest) -> None:
    mounts = emberd_serving.check("grep \" $(readlink -f /var/log/emberd) \" /proc/mounts")
    assert " tmpfs " in mounts and "size=1024k" in mounts, mounts
    assert "started (pid" in emberd_serving.check(f"cat {ERRORLOG}")
    # emberd can reopen its log after dropping privileges (SIGHUP)
    assert emberd_serving.check(f"stat -c %U {ERRORLOG}").strip() == "www-data"


def test_reload_keeps_the_process(emberd_serving: Guest) -> None:
    pid = emberd_serving.emberd_pid()
    rc, out = emberd_serving.sh(f"{INIT} reload")
    assert rc == 0 and "OK" in out, out
    end = time.monotonic() + 20
    while "configuration reloaded" not in emberd_serving.check(f"cat {ERRORLOG}"):
        assert time.monotonic() < end, "no 'configuration reloaded' in the error log"
        time.sleep(0.5)
    assert emberd_serving.emberd_pid() == pid
    assert emberd_serving.http_ok()


def test_reload_refuses_a_broken_configuration(emberd_serving: Guest) -> None:
    conf = "/etc/emberd/emberd.conf"
    pid = emberd_serving.emberd_pid()
    broken = 'server.max-connections := "lots"'
    emberd_serving.check(f"cp {conf} /tmp/emberd.conf.good && echo '{broken}' >> {conf}")
    try:
        rc, out = emberd_serving.sh(f"{INIT} reload")
        assert rc == 1 and "FAIL" in out and "server.max-connections" in out, out
        rc, out = emberd_serving.sh(f"{INIT} restart")
        assert rc == 1 and "FAIL" in out, out
    finally:
        emberd_serving.check(f"cp /tmp/emberd.conf.good {conf}")
    assert emberd_serving.emberd_pid() == pid, "a broken configuration stopped emberd"
    assert emberd_serving.http_ok()


def test_log_is_rotated_when_it_grows(emberd_serving: Guest) -> None:
    g = emberd_serving
    g.check(f"head -c 300000 /dev/zero | tr '\\0' x >>{ERRORLOG}")
    # what the supervisor's ticker sends every EMBERD_LOG_CHECK (60) seconds
    g.check("kill -USR2 $(cat /run/emberd.supervisor.pid)")
    end = time.monotonic() + 20
    while g.sh(f"test -f {ERRORLOG}.1")[0] != 0:
        assert time.monotonic() < end, "error.log was not rotated"
        time.sleep(0.5)
    assert int(g.check(f"wc -c <{ERRORLOG}.1")) >= 300000
    assert int(g.check(f"wc -c <{ERRORLOG}")) < 4096
    assert "log rotated" in g.check(f"cat {ERRORLOG}")
    g.check(f"rm {ERRORLOG}.1")
    # emberd still writes to the (truncated) log
    g.check(f"{INIT} reload")
    while "configuration reloaded" not in g.check(f"cat {ERRORLOG}"):
        assert time.monotonic() < end + 20, "emberd no longer writes to its log"
        time.sleep(0.5)


def test_started_again_after_a_crash(emberd_serving: Guest) -> None:
    old = emberd_serving.emberd_pid()
    emberd_serving.check(f"kill -KILL {old}")
    new = wait_new_pid(emberd_serving, old)
    assert new != old
    log = emberd_serving.check(f"cat {ERRORLOG}")
    assert f"emberd (pid {old}) exited with status 137" in log, log


def test_restart_action(emberd_serving: Guest) -> None:
    old = emberd_serving.emberd_pid()
    rc, out = emberd_serving.sh(f"{INIT} restart")
    assert rc == 0, out
    wait_new_pid(emberd_serving, old)


def test_stop_then_start(emberd_serving: Guest) -> None:
    rc, out = emberd_serving.sh(f"{INIT} stop")
    assert rc == 0 and "OK" in out, out
    rc, out = emberd_serving.sh(f"{INIT} status")
    assert rc == 3, out
    assert not emberd_serving.http_ok(timeout=3)
    rc, out = emberd_serving.sh(f"{INIT} start")
    assert rc == 0 and "OK" in out, out
    wait_new_pid(emberd_serving, None)


def test_control_script_is_harmless_without_emberd_control(emberd_serving: Guest) -> None:
    """S51emberd-control goes into every image; without the backend it only says so."""
    g = emberd_serving
    hidden = g.sh("test -e /usr/bin/emberd-control")[0] == 0
    if hidden:   # the running backend keeps running: only its executable moves
        g.check("mv /usr/bin/emberd-control /tmp/emberd-control.aside")
    try:
        for action in ("start", "status", "reload", "stop"):
            rc, out = g.sh(f"/etc/init.d/S51emberd-control {action}")
            assert rc == 0 and "not installed" in out, (action, out)
    finally:
        if hidden:
            g.check("mv /tmp/emberd-control.aside /usr/bin/emberd-control")

"""The emberd command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

EMBERD = str(Path(sys.executable).parent / "emberd")
GOOD = 'server.document-root = "/srv"\nserver.port = 8080\n'


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EMBERD, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def test_syntax_check(write):
    conf = write("e.conf", GOOD)
    r = run("-t", "-f", conf)
    assert (r.returncode, r.stdout, r.stderr) == (0, "Syntax OK\n", "")


def test_syntax_check_does_not_validate_values(write):
    conf = write("e.conf", 'server.port = "x"\n')
    assert run("-t", "-f", conf).returncode == 0
    r = run("-tt", "-f", conf)
    assert r.returncode == 1
    assert f'{conf}:1:1: error: server.port: expected an integer 0..65535, found string "x"' in r.stderr


def test_syntax_error_names_file_line_column(write):
    conf = write("e.conf", 'server.port = 80\n$HTTP["url"] = "/" { }\n')
    r = run("-t", "-f", conf)
    assert r.returncode == 1
    assert r.stderr == (f"{conf}:2:14: error: only == =~ =^ =$ != !~ are allowed in a "
                        "condition\n")
    assert r.stdout == ""


def test_stdin_config():
    r = run("-tt", "-f", "-", stdin=GOOD)
    assert (r.returncode, r.stdout) == (0, "Syntax OK\n")
    r = run("-t", "-f", "-", stdin="a = (\n")
    assert r.returncode == 1 and r.stderr.startswith("-:1:5: error:")


def test_warnings_go_to_stderr_and_do_not_fail(write):
    conf = write("e.conf", GOOD + "server.tagg = 1\n")
    r = run("-tt", "-f", conf)
    assert r.returncode == 0
    assert f"{conf}:3:1: warning: unknown config-key: server.tagg (ignored)" in r.stderr


def test_print_config(write):
    conf = write("e.conf", GOOD + '$HTTP["url"] =^ "/api" { server.max-request-size = 64 }\n')
    r = run("-p", "-f", conf)
    assert r.returncode == 0
    assert "server.port = 8080\n" in r.stdout
    assert "server.max-read-idle = 60  # default\n" in r.stdout
    assert '$HTTP["url"] =^ "/api" {\n    server.max-request-size = 64\n}\n' in r.stdout
    again = run("-tt", "-f", "-", stdin=r.stdout)
    assert again.returncode == 0, again.stderr


def test_print_refuses_a_bad_config(write):
    conf = write("e.conf", GOOD + "server.max-fds = 1\n")
    r = run("-p", "-f", conf)
    assert r.returncode == 1 and r.stdout == ""
    assert "server.max-fds: 1 fds is out of range 32..1048576" in r.stderr


def test_missing_file():
    r = run("-t", "-f", "/nonexistent/emberd.conf")
    assert r.returncode == 1
    assert "cannot read configuration /nonexistent/emberd.conf" in r.stderr


def test_version():
    r = run("-v")
    assert r.returncode == 0 and r.stdout.startswith("emberd/")


def test_features_in_lighttpds_format():
    r = run("-V")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert "\t+ PCRE support (regular expressions through Python's re)" in lines
    assert any(line.strip() in ("+ IPv6 support", "- IPv6 support") for line in lines)
    assert "Modules:" in lines


@pytest.mark.parametrize("args", [[], ["-x"], ["-f"], ["-t", "extra"]])
def test_usage_errors(args):
    r = run(*args)
    assert r.returncode == 2
    assert "usage:" in r.stderr


def test_help():
    r = run("-h")
    assert r.returncode == 0 and "-tt" in r.stdout


def test_device_config_is_valid():
    r = run("-tt", "-f", str(ROOT / "rootfs/etc/emberd/emberd.conf"))
    assert r.returncode == 0, r.stderr
    # the only remark: no user file yet (there is no default password)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "warning: auth.backend.htdigest.userfile" in lines[0]
    assert "emberd-passwd --digest" in lines[0]

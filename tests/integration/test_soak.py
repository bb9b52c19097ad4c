"""``make soak`` in miniature: the real emberd, emberd-control (and Debian's lighttpd) under
the bug-#3084 workload for seconds instead of minutes.

Only structure is asserted -- the files, their columns, the runs, processes and phases,
sizes and counts within bounds that no machine can miss -- never how fast anything was
or whether memory stayed flat: that is what the real soak is for.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emberd.tools.soak_plot import available as matplotlib_available
from emberd.tools.soak_sampler import FIELDS
from tests.conftest import ROOT

STEADY_S, BURST_S, IDLE_S, RATE, INTERVAL = 6, 3, 3, 50, 1
MINI = ["--burst-seconds", str(BURST_S), "--burst-connections", "8", "--burst-streams", "4",
        "--idle-seconds", str(IDLE_S), "--rate", str(RATE), "--interval", str(INTERVAL),
        "--progress-every", "3"]
HAVE_LIGHTTPD = shutil.which("lighttpd") is not None or Path("/usr/sbin/lighttpd").exists()


def soak(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "out"
    environ = {**os.environ, "SOAK_MINUTES": str(STEADY_S / 60), "SOAK_COMPARE": "",
               "SOAK_OUT": str(out), "TMPDIR": str(tmp_path), **env}
    r = subprocess.run([sys.executable, "-m", "emberd.tools.soak", *MINI, *args],
                       capture_output=True, text=True, timeout=600, env=environ, cwd=ROOT,
                       check=False)
    return r, out


def check_outputs(r: subprocess.CompletedProcess[str], out: Path, tmp_path: Path,
                  runs: dict[str, set[str]]) -> None:
    """The CSV, the table and the picture of a soak of ``runs`` (label -> its processes)."""
    assert r.returncode == 0, r.stdout + r.stderr
    # -- soak.csv: a sample of every process of every run, all through the three phases
    with open(out / "soak.csv", newline="") as f:
        rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == FIELDS
    assert {row["run"] for row in rows} == set(runs)
    pids: dict[tuple[str, str], set[str]] = {}
    for label, processes in runs.items():
        mine = [row for row in rows if row["run"] == label]
        assert {row["process"] for row in mine} == processes
        for process in processes:
            series = [row for row in mine if row["process"] == process]
            times = [float(row["t_s"]) for row in series]
            assert times == sorted(times) and times[0] < 1.0
            phases = [row["phase"] for row in series]
            assert list(dict.fromkeys(phases)) == ["steady", "burst", "idle"]
            planned = (STEADY_S + BURST_S + IDLE_S) / INTERVAL
            assert planned / 2 <= len(series) <= planned + 120  # (clients may overrun)
            for row in series:
                rss, anon, pss = (int(row[k]) for k in ("vmrss_kb", "rssanon_kb", "pss_kb"))
                assert 1024 < rss < 512 * 1024, row
                assert 0 < anon <= rss, row
                assert 0 < pss <= rss * 1.05 + 64, row
            pids[label, process] = {row["pid"] for row in series}
            assert len(pids[label, process]) == 1  # one process all along
    all_pids = [pid for found in pids.values() for pid in found]
    assert len(all_pids) == len(set(all_pids))  # every run starts fresh processes
    # -- soak.md (also printed): a row per process, the load, and nothing judged
    table = (out / "soak.md").read_text()
    assert table.strip() in r.stdout
    for label, processes in runs.items():
        for process in processes:
            # start, at 1:00 (the phase is shorter), end, slope (CI), burst peak, after idle
            assert re.search(rf"^\| {re.escape(label)} \| {process} \| [\d,]+ \| n/a \| [\d,]+ "
                             r"\| [^|]+ \| [\d,]+ \| [\d,]+ \|", table, re.M), (label, table)
        steady = re.search(rf"^\| {re.escape(label)} \| steady \| [^|]+ \| ([\d,]+) \| ([\d,]+) "
                           r"\| 0 \|", table, re.M)
        assert steady is not None, table
        requests, ok = (int(g.replace(",", "")) for g in steady.groups())
        assert 0 < ok == requests <= RATE * STEADY_S + 2  # the rate caps the count
        assert re.search(rf"^\| {re.escape(label)} \| burst \| [^|]+ \| [\d,]+ \|", table, re.M)
    assert "Result: nothing judged" in table
    assert "not judged (soak < 10 min)" in table and "not judged (idle < 3:00)" in table
    # -- soak.png, when matplotlib is there (make soak installs it; make test may not)
    if matplotlib_available():
        assert (out / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "soak.png").stat().st_size > 10_000
    else:
        assert "no soak.png: matplotlib is not installed" in r.stderr
    # -- and nothing left behind: no temp directory, no process of ours
    assert not list(tmp_path.glob("emberd-soak-*"))
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(tmp_path).encode() not in cmdline.read_bytes()
        except OSError:
            continue


@pytest.mark.slow
def test_mini_soak(tmp_path):
    """SOAK_MINUTES, SOAK_COMPARE and SOAK_OUT from the environment, as make passes them;
    h2load when installed (CI installs it), both protocols, lighttpd compared."""
    r, out = soak(tmp_path, SOAK_COMPARE="lighttpd")
    runs = {"emberd h2c": {"emberd", "emberd-control"},
            "emberd HTTP/1.1": {"emberd", "emberd-control"}}
    if HAVE_LIGHTTPD:
        runs |= {"lighttpd h2c": {"lighttpd", "emberd-control"},
                 "lighttpd HTTP/1.1": {"lighttpd", "emberd-control"}}
    check_outputs(r, out, tmp_path, runs)
    client = "h2load" if shutil.which("h2load") else "built-in"
    assert f"client: {client}" in (out / "soak.md").read_text()
    # progress: every phase of every run is announced
    for label in runs:
        for phase in ("steady", "burst", "idle"):
            assert f"[{label}] {phase}" in r.stderr


@pytest.mark.slow
def test_mini_soak_with_the_built_in_client(tmp_path):
    r, out = soak(tmp_path, "--client", "builtin")
    check_outputs(r, out, tmp_path, {"emberd h2c": {"emberd", "emberd-control"},
                                     "emberd HTTP/1.1": {"emberd", "emberd-control"}})
    assert "client: built-in (h2, h11)" in (out / "soak.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--burst-connections", "65"], "not in (0, 64]"),
    (["--burst-streams", "9"], "not in (0, 8]"),
    (["--minutes", "0"], "not in (0,"),
    (["--protocols", "h3"], "unknown protocol"),
    (["--compare", "nginx"], "invalid choice"),
    ([], "'ten' is not a number"),
])
def test_bad_options(tmp_path, args, message):
    r, out = soak(tmp_path, *args, **({} if args else {"SOAK_MINUTES": "ten"}))
    assert r.returncode == 2 and message in r.stderr
    assert not out.exists()

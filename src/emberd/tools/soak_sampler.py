"""Memory samples of the processes under soak, every few seconds, to CSV.

A ``Sampler`` thread reads, for each process, ``VmRSS`` and ``RssAnon``
from ``/proc/PID/status`` and ``Pss`` from ``/proc/PID/smaps_rollup`` on a
fixed schedule (``t0 + k * interval``, so a slow read does not make the
series drift), labels each sample with the phase the run is in, hands
each batch to a sink (the CSV writer, which flushes) and keeps it for the
report.  Reading these files costs the sampled process nothing.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..core import memory

FIELDS = ("run", "phase", "t_s", "time", "process", "pid", "vmrss_kb", "rssanon_kb", "pss_kb")


@dataclass(frozen=True, slots=True)
class Sample:
    run: str  # e.g. "emberd h2c"
    phase: str  # steady, burst, idle
    t: float  # seconds since the run's steady phase began
    process: str
    pid: int
    vmrss_kb: int
    rssanon_kb: int
    pss_kb: int
    time: str = ""  # wall clock, ISO 8601 (for lining the CSV up with logs)

    def row(self) -> list[str]:
        return [self.run, self.phase, f"{self.t:.3f}", self.time, self.process, str(self.pid),
                str(self.vmrss_kb), str(self.rssanon_kb), str(self.pss_kb)]


def clock(seconds: float) -> str:
    """m:ss"""
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def read_memory(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS, RssAnon, Pss) in kB, or None when the process is gone."""
    status = memory.proc_status(pid)
    if "VmRSS" not in status:
        return None
    return status["VmRSS"], status.get("RssAnon", 0), memory.pss_kb(pid) or 0


class CsvSink:
    """Writes samples as CSV rows (header once), flushing after each batch."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(FIELDS)

    def __call__(self, batch: Iterable[Sample]) -> None:
        self.writer.writerows(s.row() for s in batch)
        self.stream.flush()


def read_csv(path: Path) -> list[Sample]:
    """Samples back from a CSV this module wrote (to plot or report it again)."""
    with open(path, newline="") as f:
        return [Sample(r["run"], r["phase"], float(r["t_s"]), r["process"], int(r["pid"]),
                       int(r["vmrss_kb"]), int(r["rssanon_kb"]), int(r["pss_kb"]), r["time"])
                for r in csv.DictReader(f)]


class Sampler:
    """Samples ``processes`` (name, pid) every ``interval`` seconds in a thread of its own.

    ``phase`` is set by the thread that drives the load; ``start()`` takes the
    first sample at once (t = 0), ``stop()`` takes none after it returns.
    ``progress`` (if given) gets a line every ``progress_every`` seconds.
    """

    def __init__(self, run: str, processes: Sequence[tuple[str, int]], interval: float,
                 sink: Callable[[Iterable[Sample]], None],
                 progress: Callable[[str], None] | None = None,
                 progress_every: float = 30.0) -> None:
        self.run = run
        self.processes = list(processes)
        self.interval = interval
        self.sink = sink
        self.progress = progress
        self.progress_every = progress_every
        self.phase = "steady"
        self.phase_started = 0.0  # seconds since t0
        self.phase_seconds = 0.0  # planned length, for the progress lines
        self.samples: list[Sample] = []
        self.t0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"soak sampler {run}",
                                        daemon=True)
        self._last_progress = -1e9

    def set_phase(self, name: str, seconds: float) -> None:
        self.phase_started = self.elapsed() if self.t0 else 0.0
        self.phase_seconds = seconds
        self.phase = name

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join()

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def sample(self) -> list[Sample]:
        t = self.elapsed()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        batch = []
        for name, pid in self.processes:
            got = read_memory(pid)
            if got is not None:
                batch.append(Sample(self.run, self.phase, t, name, pid, *got, time=stamp))
        self.samples.extend(batch)
        self.sink(batch)
        if self.progress is not None and t - self._last_progress >= self.progress_every:
            self._last_progress = t
            mem = "  ".join(f"{s.process} {s.vmrss_kb / 1024:.1f} MB" for s in batch)
            self.progress(f"[{self.run}] {self.phase} {clock(t - self.phase_started)} of "
                          f"{clock(self.phase_seconds)}  RSS: {mem}")
        return batch

    def _loop(self) -> None:
        k = 1
        while not self._stop.wait(max(0.0, self.t0 + k * self.interval - time.monotonic())):
            self.sample()
            k += 1
            # after a stall (a suspended machine) skip the missed slots instead of catching up
            k = max(k, int((time.monotonic() - self.t0) / self.interval) + 1)

"""The soak's verdict: per process figures, the targets, and the Markdown table.

For every run (a server and a protocol) and every process in it, from the
VmRSS samples:

* RSS at the start of the steady phase, at 1 minute, and at its end (the
  pre-burst RSS);
* the least-squares slope in KB/min over the steady phase after the first
  minute (after its first half when the phase is shorter than 2 minutes),
  with its 95 % confidence interval (``soak_stats``);
* the peak during the burst, and the RSS at the end of the idle phase
  (3 minutes after the burst by default).

Targets (judged for emberd and emberd-control in emberd's runs; lighttpd's
runs and emberd-control behind lighttpd are for comparison):

* slope < 1 KB/min -- judged only when the steady phase lasts at least
  10 minutes: a shorter soak reports its slope but does not judge it (the
  first minutes of a Python process are its warm-up, and the fit is too
  short to mean anything);
* RSS at the end of the idle phase <= pre-burst RSS + 1 MB -- judged only
  when the idle phase lasts at least 3 minutes (emberd's maintenance tick
  runs every 64 s: a shorter wait measures the tick, not the server).

Sizes are the kernel's kB (KiB), written "KB" as in the bug report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .soak_load import LoadResult
from .soak_sampler import Sample, clock
from .soak_stats import Fit, fit_line

SLOPE_LIMIT = 1.0  # KB/min after the first minute (bug #3084: lighttpd 1.4.59 grew ~150)
SLOPE_MIN_STEADY = 600.0  # seconds of steady load before the slope is judged
SETTLE = 60.0  # seconds of warm-up left out of the fit
BURST_MARGIN_KB = 1024  # RSS after the idle phase may exceed the pre-burst RSS by this
BURST_MIN_IDLE = 180.0  # seconds of idle before the burst target is judged
JUDGED = ("emberd", "emberd-control")
MIN_FIT_POINTS = 3

MET, MISSED, NOT_JUDGED = "met", "MISSED", "not judged"


@dataclass(frozen=True, slots=True)
class Plan:
    """What the soak was asked to do, in seconds and counts."""

    steady_s: float
    burst_s: float
    idle_s: float
    rate: float
    burst_connections: int
    burst_streams: int
    interval: float

    @property
    def settle_s(self) -> float:
        """The warm-up left out of the slope: 1 minute, half the phase when that is short."""
        return SETTLE if self.steady_s >= 2 * SETTLE else self.steady_s / 2


@dataclass(slots=True)
class Run:
    """One server with one protocol: what was sampled, what the clients said, what broke."""

    label: str
    server: str
    protocol: str
    samples: list[Sample] = field(default_factory=list)
    loads: dict[str, LoadResult] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def judged(self) -> bool:
        return self.server == "emberd"


@dataclass(frozen=True, slots=True)
class Verdict:
    state: str  # MET, MISSED, NOT_JUDGED, or "" (a comparison, not a target)
    why: str = ""

    def __str__(self) -> str:
        return f"{self.state} ({self.why})" if self.why else self.state


@dataclass(frozen=True, slots=True)
class Summary:
    run: str
    process: str
    start_kb: int | None
    at_1min_kb: int | None
    end_kb: int | None  # end of the steady phase: the pre-burst RSS
    fit: Fit | None
    burst_peak_kb: int | None
    after_kb: int | None  # end of the idle phase
    slope: Verdict
    burst: Verdict


def _processes(samples: Iterable[Sample]) -> list[str]:
    return list(dict.fromkeys(s.process for s in samples))


def summarize(run: Run, plan: Plan) -> list[Summary]:
    out = []
    for process in _processes(run.samples):
        mine = [s for s in run.samples if s.process == process]
        steady = [s for s in mine if s.phase == "steady"]
        burst = [s for s in mine if s.phase == "burst"]
        idle = [s for s in mine if s.phase == "idle"]
        start = steady[0].vmrss_kb if steady else None
        end = steady[-1].vmrss_kb if steady else None
        at_1min = None
        if steady and plan.steady_s >= SETTLE:
            at_1min = min(steady, key=lambda s: abs(s.t - SETTLE)).vmrss_kb
        fit = None
        settled = [s for s in steady if s.t >= plan.settle_s]
        if len(settled) >= MIN_FIT_POINTS and settled[-1].t > settled[0].t:
            fit = fit_line([s.t / 60 for s in settled], [float(s.vmrss_kb) for s in settled])
        peak = max(s.vmrss_kb for s in burst) if burst else None
        after = idle[-1].vmrss_kb if idle else None
        judged = run.judged and process in JUDGED
        out.append(Summary(run.label, process, start, at_1min, end, fit, peak, after,
                           _slope_verdict(judged, fit, plan),
                           _burst_verdict(judged, end, after, plan)))
    return out


def _slope_verdict(judged: bool, fit: Fit | None, plan: Plan) -> Verdict:
    if not judged:
        return Verdict("")
    if plan.steady_s < SLOPE_MIN_STEADY:
        return Verdict(NOT_JUDGED, f"soak < {SLOPE_MIN_STEADY / 60:.0f} min")
    if fit is None:
        return Verdict(NOT_JUDGED, "too few samples")
    if fit.slope < SLOPE_LIMIT:
        return Verdict(MET)
    return Verdict(MISSED, f"{fit.slope:+.1f} KB/min >= {SLOPE_LIMIT:g}")


def _burst_verdict(judged: bool, before: int | None, after: int | None,
                   plan: Plan) -> Verdict:
    if not judged:
        return Verdict("")
    if plan.idle_s < BURST_MIN_IDLE:
        return Verdict(NOT_JUDGED, f"idle < {clock(BURST_MIN_IDLE)}")
    if before is None or after is None:
        return Verdict(NOT_JUDGED, "no samples")
    if after <= before + BURST_MARGIN_KB:
        return Verdict(MET)
    return Verdict(MISSED, f"{after - before:+,} KB > {BURST_MARGIN_KB:+,}")


def exit_code(runs: Sequence[Run], summaries: Sequence[Summary]) -> int:
    """2 when a run could not be carried out, 1 when a judged target was missed, else 0."""
    if any(r.problems for r in runs):
        return 2
    if any(MISSED in (s.slope.state, s.burst.state) for s in summaries):
        return 1
    return 0


def _kb(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _slope(fit: Fit | None) -> str:
    if fit is None:
        return "n/a"
    if math.isnan(fit.low):
        return f"{fit.slope:+.2f}"
    return f"{fit.slope:+.2f} ({fit.low:+.2f} … {fit.high:+.2f})"


def _targets(s: Summary) -> str:
    parts = [f"{name} {v}" for name, v in (("slope", s.slope), ("burst", s.burst)) if v.state]
    return "; ".join(parts) or "comparison"


def rss_table(summaries: Sequence[Summary], plan: Plan) -> str:
    rows = [f"| run | process | start | at 1:00 | end of soak | slope after "
            f"{clock(plan.settle_s)} (KB/min, 95 % CI) | burst peak | "
            f"{clock(plan.idle_s)} after burst | targets |",
            "|---|---|--:|--:|--:|--:|--:|--:|---|"]
    for s in summaries:
        rows.append(f"| {s.run} | {s.process} | {_kb(s.start_kb)} | {_kb(s.at_1min_kb)} | "
                    f"{_kb(s.end_kb)} | {_slope(s.fit)} | {_kb(s.burst_peak_kb)} | "
                    f"{_kb(s.after_kb)} | {_targets(s)} |")
    return "\n".join(rows)


def load_table(runs: Sequence[Run]) -> str:
    rows = ["| run | phase | client | requests | 2xx | failed | no answer | req/s | note |",
            "|---|---|---|--:|--:|--:|--:|--:|---|"]
    for run in runs:
        for phase, r in run.loads.items():
            other = ", ".join(f"{n:,} {k}" for k, n in sorted(r.statuses.items()) if k != "2xx")
            failed = f"{r.failed:,}" + (f" ({other})" if other else "")
            rows.append(f"| {run.label} | {phase} | {r.tool} | {r.requests:,} | {r.ok:,} | "
                        f"{failed} | {r.errors:,} | {r.rate:,.1f} | {r.note} |")
    return "\n".join(rows)


def verdict_line(runs: Sequence[Run], summaries: Sequence[Summary]) -> str:
    states = [v.state for s in summaries for v in (s.slope, s.burst) if v.state]
    missed = states.count(MISSED)
    if any(r.problems for r in runs):
        return "Result: the soak could not be carried out as planned (see Problems)."
    if missed:
        return f"Result: {missed} target(s) MISSED."
    if MET in states:
        judged = "all judged targets met" + (
            "; some not judged" if NOT_JUDGED in states else "")
        return f"Result: {judged}."
    return "Result: nothing judged (the soak was shorter than the targets need)."


def markdown(runs: Sequence[Run], summaries: Sequence[Summary], plan: Plan,
             context: Sequence[str]) -> str:
    """The whole report: context lines, the RSS table, the load table, targets, problems."""
    parts = ["# emberd memory soak (lighttpd bug #3084 workload)", "",
             *[f"- {line}" for line in context], "",
             "## RSS (VmRSS, KB)", "", rss_table(summaries, plan), "",
             "## Load", "", load_table(runs), "",
             "## Targets", "",
             f"- slope after the first minute < {SLOPE_LIMIT:g} KB/min for emberd and "
             f"emberd-control, judged when the soak lasts at least "
             f"{SLOPE_MIN_STEADY / 60:.0f} minutes",
             f"- {clock(BURST_MIN_IDLE)} after the burst: RSS <= pre-burst RSS (end of soak) "
             f"+ {BURST_MARGIN_KB // 1024} MB, judged when the idle phase lasts that long",
             "- lighttpd's runs are a comparison; the confidence interval assumes independent "
             "samples, which RSS samples are not (it is optimistic)",
             "", verdict_line(runs, summaries), ""]
    problems = [f"- {r.label}: {p}" for r in runs for p in r.problems]
    if problems:
        parts += ["## Problems", "", *problems, ""]
    return "\n".join(parts)

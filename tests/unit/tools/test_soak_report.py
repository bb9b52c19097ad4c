"""The soak report: figures per process from samples, the targets and when they are judged."""

from __future__ import annotations

import pytest

from emberd.tools.soak_load import LoadResult
from emberd.tools.soak_report import (
    MET,
    MISSED,
    NOT_JUDGED,
    Plan,
    Run,
    exit_code,
    markdown,
    summarize,
)
from emberd.tools.soak_sampler import Sample


def plan(steady_s: float = 600, idle_s: float = 180) -> Plan:
    return Plan(steady_s=steady_s, burst_s=30, idle_s=idle_s, rate=100, burst_connections=50,
                burst_streams=8, interval=2)


def samples(run: str, process: str, p: Plan, steady, burst, idle) -> list[Sample]:
    """steady(t), burst(t), idle(t) -> RSS in kB, sampled every 2 s through the phases."""
    out, t = [], 0.0
    for phase, length, rss in (("steady", p.steady_s, steady), ("burst", p.burst_s, burst),
                               ("idle", p.idle_s, idle)):
        end = t + length
        while t < end:
            out.append(Sample(run, phase, t, process, 1, int(rss(t)), 0, 0))
            t += 2
    out.append(Sample(run, "idle", t, process, 1, int(idle(t)), 0, 0))
    return out


def emberd_run(p: Plan, growth_per_min: float = 0.0, kept_after_burst: int = 0) -> Run:
    run = Run("emberd h2c", "emberd", "h2c")
    end = p.steady_s
    run.samples = samples(run.label, "emberd", p,
                          lambda t: 20_000 + (t < 20) * -1_000 + growth_per_min * t / 60,
                          lambda t: 30_000,
                          lambda t: 20_000 + growth_per_min * end / 60 + kept_after_burst)
    run.samples += samples(run.label, "emberd-control", p, lambda t: 24_000,
                           lambda t: 26_000, lambda t: 24_100)
    run.loads["steady"] = LoadResult("h2load", 600, 60_000, 60_000)
    return run


def test_figures_of_a_flat_run():
    p = plan()
    by_process = {s.process: s for s in summarize(emberd_run(p), p)}
    s = by_process["emberd"]
    assert (s.start_kb, s.at_1min_kb, s.end_kb) == (19_000, 20_000, 20_000)
    assert s.fit is not None and s.fit.slope == 0.0  # the warm-up step is left out
    assert s.burst_peak_kb == 30_000 and s.after_kb == 20_000
    assert s.slope.state == MET and s.burst.state == MET
    assert by_process["emberd-control"].after_kb == 24_100


def test_growth_and_kept_burst_memory_are_missed():
    p = plan()
    run = emberd_run(p, growth_per_min=5, kept_after_burst=2_000)
    s = summarize(run, p)[0]
    assert s.fit is not None and s.fit.slope == pytest.approx(5, abs=0.05)
    assert s.slope.state == MISSED and s.burst.state == MISSED
    assert exit_code([run], summarize(run, p)) == 1


def test_the_burst_margin_is_one_megabyte():
    p = plan()
    ok = summarize(emberd_run(p, kept_after_burst=1024), p)[0]
    over = summarize(emberd_run(p, kept_after_burst=1025), p)[0]
    assert ok.burst.state == MET and over.burst.state == MISSED


def test_short_phases_are_reported_but_not_judged():
    p = plan(steady_s=30, idle_s=10)
    run = emberd_run(p, growth_per_min=500, kept_after_burst=5_000)
    s = summarize(run, p)[0]
    assert s.at_1min_kb is None  # the phase is shorter than a minute
    assert s.fit is not None and s.fit.n == 7  # fitted from t = 16 s: after the first half
    assert s.slope.state == NOT_JUDGED and "10 min" in s.slope.why
    assert s.burst.state == NOT_JUDGED and "3:00" in s.burst.why
    assert exit_code([run], summarize(run, p)) == 0


def test_a_short_soak_still_judges_the_burst():
    p = plan(steady_s=60)
    s = summarize(emberd_run(p, kept_after_burst=3_000), p)[0]
    assert s.slope.state == NOT_JUDGED and s.burst.state == MISSED


def test_lighttpd_is_a_comparison():
    p = plan()
    run = Run("lighttpd h2c", "lighttpd", "h2c")
    run.samples = samples(run.label, "lighttpd", p, lambda t: 2_600 + t, lambda t: 9_000,
                          lambda t: 9_000)
    s = summarize(run, p)[0]
    assert s.slope.state == "" and s.burst.state == ""
    assert exit_code([run], [s]) == 0


def test_problems_make_exit_status_2_and_a_section():
    p = plan()
    run = emberd_run(p, growth_per_min=5)
    run.problems.append("emberd (pid 1) exited with status -11")
    summaries = summarize(run, p)
    assert exit_code([run], summaries) == 2
    text = markdown([run], summaries, p, ["context line"])
    assert "## Problems" in text and "exited with status -11" in text


def test_markdown_has_a_row_per_process_and_the_load():
    p = plan()
    run = emberd_run(p)
    text = markdown([run], summarize(run, p), p, ["context line"])
    assert "- context line" in text
    rows = [line for line in text.splitlines() if line.startswith("| emberd h2c |")]
    assert len(rows) == 3  # emberd, emberd-control, the steady load
    assert "| emberd h2c | emberd | 19,000 | 20,000 | 20,000 | +0.00 (+0.00 … +0.00) | " \
           "30,000 | 20,000 | slope met; burst met |" in rows
    assert "| emberd h2c | steady | h2load | 60,000 | 60,000 | 0 | 0 | 100.0 |  |" in rows
    assert "Result: all judged targets met." in text

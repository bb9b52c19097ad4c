"""The soak's picture: VmRSS over time, one panel per run, one line per process, phases shaded.

matplotlib is a tool dependency (the ``soak`` extra, which ``make soak``
installs), imported only here and only when drawing.  The picture can be
drawn again from the CSV:

    python -m emberd.tools.soak_plot build/soak/soak.csv build/soak/soak.png
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .soak_sampler import Sample, read_csv

PROCESS_COLORS = {"emberd": "tab:red", "emberd-control": "tab:blue", "lighttpd": "tab:green"}
PHASE_COLORS = {"steady": "tab:olive", "burst": "tab:orange", "idle": "tab:gray"}


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def phase_spans(samples: Sequence[Sample]) -> list[tuple[str, float, float]]:
    """(phase, start, end) in seconds: a phase runs from its first sample to the next
    phase's first sample (the last one to its own last sample)."""
    spans: list[tuple[str, float, float]] = []
    for s in sorted(samples, key=lambda s: s.t):
        if spans and spans[-1][0] == s.phase:
            spans[-1] = (s.phase, spans[-1][1], s.t)
        else:
            if spans:
                spans[-1] = (spans[-1][0], spans[-1][1], s.t)
            spans.append((s.phase, s.t, s.t))
    return spans


def plot(samples: Sequence[Sample], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    runs = list(dict.fromkeys(s.run for s in samples))
    fig, axes = plt.subplots(max(1, len(runs)), 1, figsize=(11, 2.2 + 2.6 * len(runs)),
                             squeeze=False)
    for ax, run in zip(axes[:, 0], runs, strict=False):
        mine = [s for s in samples if s.run == run]
        phases_seen = []
        for phase, start, end in phase_spans(mine):
            ax.axvspan(start / 60, end / 60, color=PHASE_COLORS.get(phase, "tab:purple"),
                       alpha=0.12, linewidth=0)
            if phase not in phases_seen:
                phases_seen.append(phase)
        for process in dict.fromkeys(s.process for s in mine):
            points = [s for s in mine if s.process == process]
            ax.plot([s.t / 60 for s in points], [s.vmrss_kb / 1024 for s in points],
                    label=process, color=PROCESS_COLORS.get(process), linewidth=1.4)
        handles, _labels = ax.get_legend_handles_labels()
        handles += [Patch(color=PHASE_COLORS.get(p, "tab:purple"), alpha=0.25, label=p)
                    for p in phases_seen]
        ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5),
                  fontsize="small")
        ax.set_title(run)
        ax.set_ylabel("VmRSS (MB)")
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("minutes since the start of the steady phase")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m emberd.tools.soak_plot SOAK.csv OUT.png", file=sys.stderr)
        return 2
    plot(read_csv(Path(args[0])), Path(args[1]), "emberd memory soak")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

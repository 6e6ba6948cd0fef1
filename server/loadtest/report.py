"""The report of a load test: a table on the terminal, ``report.json`` and two PNG plots.

Built from the merged :class:`~server.loadtest.figures.Figures` of all users, the run's
settings and the server's own samples (``--metrics-url``). The JSON holds every figure
(count, p50, p95, p99, max, mean in milliseconds), the rates, the counts by kind, the timeline
and what went wrong, so a benchmark script reads its numbers from it (``bench/capacity.py``).
Plots: latency over time with the arrival rate of scans, and the latency distribution
(percentile curves from the HDR histograms). Nothing here imports Locust.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from server.loadtest.figures import FIGURES, PERCENTILES, TIMELINE_FIGURES, Figures

REPORT_VERSION = 1
#: Figures drawn in the distribution plot (those of a scan, and the connection).
DISTRIBUTION = ("connect", "classified", "first_token", "bins", "end_to_end", "chat_done",
                "live_hint", "pong")


def build(figures: Figures, meta: dict[str, Any], server: dict[str, Any] | None) -> dict[str, Any]:
    """The report as plain data (what ``report.json`` holds)."""
    duration = max(float(meta.get("duration_s") or 0.0), 1e-9)
    latencies = {}
    for name, what in FIGURES.items():
        summary = figures.summary(name)
        if summary is not None:
            latencies[name] = {"what": what, **summary}
    counts = {kind: dict(sorted(c.items())) for kind, c in sorted(figures.counts.items())}
    scans = counts.get("scans", {})
    completed = scans.get("completed", 0)
    errors = counts.get("errors", {})
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        **meta,
        "ok": not figures.fatal and not errors,
        "fatal": list(figures.fatal),
        "latency_ms": latencies,
        "rates": {
            "scans_completed_per_s": completed / duration,
            "scans_started_per_s": figures.total("scans_started") / duration,
            "messages_received_per_s": figures.total("messages_received") / duration,
            "messages_sent_per_s": figures.total("messages_sent") / duration,
        },
        "scans": scans,
        "errors": errors,
        "closes": counts.get("closes", {}),
        "resumes": counts.get("resumes", {}),
        "chats": counts.get("chats", {}),
        "counts": counts,
        "timeline": timeline(figures),
        "server": server,
    }
    return report


def timeline(figures: Figures) -> list[dict[str, Any]]:
    if not figures.timeline:
        return []
    first = min(figures.timeline)
    rows = []
    for sec in sorted(figures.timeline):
        second = figures.timeline[sec]
        row: dict[str, Any] = {"t": sec - first, "unix": sec}
        for kind in ("scans_started", "scans_finished", "messages_received", "messages_sent"):
            row[kind] = second.counts.get(kind, 0)
        for name in TIMELINE_FIGURES:
            hist = second.histograms.get(name)
            if hist is not None and hist.get_total_count():
                row[f"{name}_p50_ms"] = hist.get_value_at_percentile(50)
                row[f"{name}_p99_ms"] = hist.get_value_at_percentile(99)
        rows.append(row)
    return rows


def table(report: dict[str, Any]) -> str:
    """The report as the terminal shows it."""
    lines = [
        f"Waste Coach load test: scenario {report.get('scenario')}, {report.get('users')} users, "
        f"{report.get('duration_s', 0):.1f} s against {report.get('host')}",
        "",
        f"{'figure (ms)':<18}{'count':>9}{'p50':>10}{'p95':>10}{'p99':>10}{'max':>10}",
    ]
    for name, row in report["latency_ms"].items():
        cells = "".join(f"{row[f'p{q:g}']:>10.1f}" for q in PERCENTILES)
        lines.append(f"{name:<18}{int(row['count']):>9}{cells}{row['max']:>10.1f}")
    rates = report["rates"]
    lines += [
        "",
        f"scans completed {report['scans'].get('completed', 0)} "
        f"({rates['scans_completed_per_s']:.2f}/s); by status {report['scans'] or '{}'}",
        f"messages received {rates['messages_received_per_s']:.1f}/s, "
        f"sent {rates['messages_sent_per_s']:.1f}/s",
        f"errors by code {report['errors'] or 'none'}",
        f"close codes {report['closes'] or 'none'}; resumes {report['resumes'] or 'none'}",
    ]
    if report["chats"]:
        lines.append(f"chat outcomes {report['chats']}")
    server = report.get("server")
    if server:
        per = server.get("rss_bytes_per_session")
        lines.append(
            "server: "
            + (f"{per / 1024:.1f} KiB per open session "
               f"(sessions {server['rss_per_session_between'][0]:.0f} -> "
               f"{server['rss_per_session_between'][1]:.0f}); " if per is not None else "")
            + (f"CPU {server['cpu_cores_mean']:.2f} cores mean, "
               f"{server['cpu_cores_max']:.2f} max; " if "cpu_cores_mean" in server else "")
            + f"{len(server['samples'])} scrapes, {server['scrapes_failed']} failed"
        )
    if report["fatal"]:
        lines += ["", "THE RUN FAILED:"] + [f"  {reason}" for reason in report["fatal"]]
    elif report["errors"]:
        lines += ["", "errors were met (see errors by code): the run does not pass"]
    return "\n".join(lines)


def plot(figures: Figures, report: dict[str, Any], out: Path) -> list[str]:
    """Writes the two plots; returns their file names (none when there is nothing to draw)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    written = []
    rows = report["timeline"]
    if rows:
        fig, ax = plt.subplots(figsize=(10, 5))
        ts = [r["t"] for r in rows]
        for name in TIMELINE_FIGURES:
            for q, style in (("p50", "-"), ("p99", "--")):
                key = f"{name}_{q}_ms"
                pts = [(r["t"], r[key]) for r in rows if key in r]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                            label=f"{name} {q}")
        ax.set_xlabel("seconds into the run")
        ax.set_ylabel("latency (ms)")
        rate = ax.twinx()
        rate.bar(ts, [r["scans_started"] for r in rows], width=0.9, alpha=0.2, color="grey",
                 label="scans started/s (arrival rate)")
        rate.set_ylabel("scans started per second")
        handles = ax.get_legend_handles_labels()
        extra = rate.get_legend_handles_labels()
        ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize=8)
        ax.set_title(f"Latency over time, scenario {report.get('scenario')}")
        fig.tight_layout()
        fig.savefig(out / "latency_over_time.png", dpi=100)
        plt.close(fig)
        written.append("latency_over_time.png")
    drawn = False
    fig, ax = plt.subplots(figsize=(10, 5))
    quantiles = [50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]
    for name in DISTRIBUTION:
        hist = figures.histograms.get(name)
        if hist is None or not hist.get_total_count():
            continue
        xs = [1 / (1 - q / 100) if q < 100 else 1e5 for q in quantiles]
        ys = [hist.get_value_at_percentile(q) / 1000 for q in quantiles]
        ax.plot(xs, ys, marker="o", label=name)
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ticks = [1 / (1 - q / 100) if q < 100 else 1e5 for q in quantiles]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"p{q:g}" if q < 100 else "max" for q in quantiles])
        ax.set_ylabel("latency (ms)")
        ax.set_title("Latency distribution (HDR histograms, all users)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "latency_distribution.png", dpi=100)
        written.append("latency_distribution.png")
    plt.close(fig)
    return written


def write(figures: Figures, meta: dict[str, Any], server: dict[str, Any] | None,
          out: Path) -> dict[str, Any]:
    """Writes ``report.json`` and the plots into ``out`` and returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = build(figures, meta, server)
    try:
        report["plots"] = plot(figures, report, out)
    except (OSError, ValueError) as exc:  # a plot must never cost the numbers
        report["plots"] = []
        report["plot_error"] = str(exc)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    return report


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON")

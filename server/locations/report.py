"""Human-readable summary of a normalisation report (snapshot build and import share it)."""

from __future__ import annotations

from server.locations.normalize import Report


def _lines(title: str, counts: dict[str, int]) -> list[str]:
    if not counts:
        return [f"{title}: none"]
    total = sum(counts.values())
    width = max(len(k) for k in counts)
    out = [f"{title}: {total}"]
    out.extend(f"  {key:<{width}}  {n:>6}" for key, n in sorted(counts.items()))
    return out


def format_report(report: Report) -> str:
    lines: list[str] = []
    lines += _lines("read (rows per source)", dict(report.read))
    lines += _lines("kept (points per kind)", dict(report.kept))
    lines += _lines("merged duplicates", dict(report.merged))
    lines += _lines("repaired", dict(report.repaired))
    lines += _lines("rejected", dict(report.rejected))
    if report.reject_samples:
        lines.append("rejected, examples:")
        lines.extend(f"  [{r.reason}] {r.source}: {r.detail}" for r in report.reject_samples)
    return "\n".join(lines)

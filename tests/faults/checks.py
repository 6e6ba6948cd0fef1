"""The invariants every fault test checks afterwards, written once.

For the sessions of a :class:`~tests.faults.load.Load` and the ``scans`` table:

* per session and epoch, the logged events' seq run 1, 2, 3, ... with no gap and no duplicate,
  across all the connections (resumes) of that epoch;
* every ``scan.accepted`` has exactly one ``scan.done``, nothing of a scan comes after its
  ``scan.done``, and a ``scan.done`` never comes without ``scan.accepted``. The documented
  exception: scans in flight when the client was told its epoch is gone (``resumed: false``
  after a resume, or close 1011) have no end;
* every scan the client saw end has a row with the same status (a scan that failed with
  ``internal`` or ``rate_limited`` may have none: it never ran or could not be saved); no row
  has ended for a scan the client never saw end, except in a session whose epoch was lost;
* every close code the server sent is documented (no 1006 unless the test allows it);
* nothing is left unsettled (the caller waited a bounded time).
"""

from __future__ import annotations

import collections
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.load import DOCUMENTED_CLOSES, LoadSession
from tests.faults.services import PrivatePostgres

TERMINAL = {"completed", "cancelled", "failed"}

#: Summaries of this run's tests, printed at the end of the pytest run (see conftest).
SUMMARIES: list[dict[str, Any]] = []


def db_rows(pg: PrivatePostgres, session_ids: set[str]) -> dict[tuple[str, str], str]:
    """``(session_id, request_id) -> status`` of the scans of these sessions."""
    if not session_ids:
        return {}
    quoted = ",".join("'" + s.replace("'", "''") + "'" for s in sorted(session_ids))
    out = pg.psql(f"SELECT session_id, request_id, status FROM scans "
                  f"WHERE session_id IN ({quoted})")
    rows = {}
    for line in out.splitlines():
        if line.strip():
            session_id, request_id, status = line.split("\t")
            rows[(session_id, request_id)] = status
    return rows


def session_ids(sessions: list[LoadSession]) -> set[str]:
    return {ready["session_id"] for s in sessions for _, ready, _ in s.readies}


def lost_sessions(sessions: list[LoadSession]) -> set[str]:
    """Sessions whose epoch the client was told is gone."""
    lost = set()
    for s in sessions:
        epochs_lost = {epoch for epoch, _, _ in s.epochs_lost}
        for _, ready, _ in s.readies:
            if ready["epoch"] in epochs_lost:
                lost.add(ready["session_id"])
    return lost


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return not self.violations

    def explain(self, limit: int = 40) -> str:
        shown = self.violations[:limit]
        more = len(self.violations) - len(shown)
        return "\n".join(shown) + (f"\n... and {more} more" if more > 0 else "")


def check_sessions(
    sessions: list[LoadSession],
    rows: dict[tuple[str, str], str] | None,
    *,
    allowed_closes: set[int | None] | None = None,
) -> Verdict:
    verdict = Verdict()
    v = verdict.violations
    allowed = set(DOCUMENTED_CLOSES) if allowed_closes is None else allowed_closes
    lost_sids = lost_sessions(sessions)
    seen_end: set[tuple[str, str]] = set()
    ended: dict[tuple[str, str], dict[str, Any]] = {}
    statuses: collections.Counter[str] = collections.Counter()
    close_codes: collections.Counter[str] = collections.Counter()
    accepted_total = lost_total = 0

    for s in sessions:
        v.extend(f"{s.name}: {a}" for a in s.anomalies)
        # -- seq per epoch, across connections
        per_epoch: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
        for r in s.received:
            seq = r.event.get("seq", 0)
            if seq:
                per_epoch[(r.session_id, r.epoch)].append(seq)
        for (sid, epoch), seqs in per_epoch.items():
            if seqs != list(range(1, len(seqs) + 1)):
                dupes = [q for q, n in collections.Counter(seqs).items() if n > 1]
                gaps = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
                v.append(f"{s.name} session {sid} epoch {epoch}: seq not 1..n "
                         f"(duplicates {dupes[:10]}, missing {gaps[:10]}, "
                         f"first out of order at {_first_bad(seqs)})")
        # -- per scan
        by_scan: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
        for r in s.received:
            rid = r.event.get("request_id")
            if isinstance(rid, str) and rid in s.scans and r.event.get("seq", 0):
                by_scan[(r.session_id, rid)].append(r.event)
        for (sid, rid), events in by_scan.items():
            kinds = [e["type"] for e in events]
            n_acc, n_done = kinds.count("scan.accepted"), kinds.count("scan.done")
            if n_acc > 1 or n_done > 1:
                v.append(f"{s.name} {rid}: {n_acc} scan.accepted, {n_done} scan.done")
            if n_done and not n_acc:
                v.append(f"{s.name} {rid}: scan.done without scan.accepted")
            # An `error` may follow: it answers a later message (a resent scan.start, a late
            # cancel), it is not an event of the scan (section 5).
            after = [k for k in kinds[kinds.index("scan.done") + 1:] if k != "error"] \
                if n_done else []
            if after:
                v.append(f"{s.name} {rid}: events after scan.done: {after}")
            if n_acc and kinds[0] != "scan.accepted":
                v.append(f"{s.name} {rid}: first event is {kinds[0]}, not scan.accepted")
            if n_done:
                done = events[kinds.index("scan.done")]
                seen_end.add((sid, rid))
                ended[(sid, rid)] = done
        for record in s.scans.values():
            if record.accepted_at is None:
                if record.refused is None and record.lost is None:
                    v.append(f"{s.name} {record.request_id}: sent, never accepted nor refused")
                continue
            accepted_total += 1
            if record.status is not None:
                statuses[record.status] += 1
                if record.status == "failed" and record.error:
                    statuses["failed:" + str(record.error.get("code"))] += 1
            elif record.lost is not None:
                lost_total += 1
            else:
                v.append(f"{s.name} {record.request_id}: accepted at "
                         f"{_t(record.accepted_at)}, no scan.done, not declared lost")
        for c in s.closes:
            close_codes[str(c.code)] += 1
            if c.code not in allowed:
                v.append(f"{s.name} conn {c.conn}: closed with {c.code} {c.reason!r} at {_t(c.at)}")

    # -- database against what the clients saw
    if rows is not None:
        for (sid, rid), done in ended.items():
            status = done["status"]
            row = rows.get((sid, rid))
            code = (done.get("error") or {}).get("code")
            optional = status == "failed" and code in ("internal", "rate_limited")
            if row is None and not optional:
                v.append(f"scan {sid}/{rid} ended {status} for the client but has no row")
            elif row is not None and row != status:
                v.append(f"scan {sid}/{rid} ended {status} for the client, row says {row}")
        for (sid, rid), status in rows.items():
            if status in TERMINAL and (sid, rid) not in seen_end and sid not in lost_sids:
                v.append(f"row {sid}/{rid} is {status} but the client never saw it end")

    verdict.stats = {
        "sessions": len(sessions),
        "connections": sum(s.conn for s in sessions),
        "scans_accepted": accepted_total,
        "scan_outcomes": dict(statuses),
        "scans_lost_with_epoch": lost_total,
        "epochs_lost": sum(len(s.epochs_lost) for s in sessions),
        "close_codes": dict(close_codes),
        "connect_errors": sum(len(s.connect_errors) for s in sessions),
        "db_rows": None if rows is None else len(rows),
    }
    return verdict


def _first_bad(seqs: list[int]) -> int | None:
    for i, q in enumerate(seqs):
        if q != i + 1:
            return i
    return None


def _t(at: float | None) -> str:
    return "-" if at is None else time.strftime("%H:%M:%S", time.localtime(at)) + \
        f".{int((at % 1) * 1000):03d}"


def record_summary(name: str, directory: Path, data: dict[str, Any]) -> Path:
    """Print the summary with a clear prefix and write it as JSON: into ``directory`` and,
    when ``WASTECOACH_FAULT_SUMMARY`` names a file, appended there as one JSON line."""
    summary = {"test": name, **data}
    text = json.dumps(summary, sort_keys=True, default=str)
    print(f"FAULT-SUMMARY {text}")
    SUMMARIES.append(summary)
    path = directory / "fault-summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    target = os.environ.get("WASTECOACH_FAULT_SUMMARY")
    if target:
        with open(target, "a") as out:
            out.write(text + "\n")
    return path
